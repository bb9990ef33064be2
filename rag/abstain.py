"""Calibrated abstention: does the chapter answer this question?

A logistic regression (numpy) on a few features of the question and its retrieval:

    cov_chapter   IDF-weighted share of the question's items found anywhere in the chapter
    cov_sections  the same share within the two best sections only
    top           the best section's score;  margin  its lead over the second
    title         the best cosine similarity of the question to a section title
    sentence      the best cosine similarity of the question to a sentence of the best section
    items         log(1 + number of content items): "x" or "help" has one
    keyword       1 when the question has no question word (a bare keyword query)

It is fitted on the dev split of eval/questions.jsonl (answerable = 1), its L2 strength chosen
by 5-fold cross-validation (log loss), and the threshold on the out-of-fold probabilities: the
lowest that answers with precision >= TARGET_PRECISION. The coefficients live in abstain.json
beside this file. Refit after changing the retriever, the features or the question set:

    python -m rag.abstain            # fit on the dev split, print the CV figures, write abstain.json
"""

from __future__ import annotations

import json
import math
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).resolve().parent / "abstain.json"
FEATURES = ("cov_chapter", "cov_sections", "top", "margin", "title", "sentence", "items", "keyword")
TARGET_PRECISION = 0.97  # of answering: the share of answered questions the chapter answers
L2_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
FOLDS = 5
SEED = 12


def features(query: str, qtype: str, qv: np.ndarray, section_scores: np.ndarray, r) -> dict:
    """The classifier's features for a (resolved) query and its section scores."""
    from .answer import _items, _sentences, coverage
    from .lang import question_language

    s = _sentences(r)
    order = np.argsort(-section_scores, kind="stable")[:2]
    top = float(section_scores[order[0]]) if len(order) else 0.0
    second = float(section_scores[order[1]]) if len(order) > 1 else 0.0
    within = np.flatnonzero(np.isin(s.section, order))
    best = np.flatnonzero(s.section == order[0]) if len(order) else np.array([], dtype=int)
    lang = question_language(query)
    items, _ = _items(query, "zh" if lang == "zh" else "en", r)
    return {
        "cov_chapter": coverage(query, r),
        "cov_sections": coverage(query, r, within=within) if len(within) else 0.0,
        "top": top,
        "margin": top - second,
        "title": float(np.max(r.index.titles @ qv[0])) if len(r.index.titles) else 0.0,
        "sentence": float(np.max(s.vectors[best] @ qv[0])) if len(best) else 0.0,
        "items": math.log1p(len(items)),
        "keyword": float(qtype == "keyword"),
    }


@lru_cache(maxsize=1)
def model() -> dict:
    from .types import RagError

    try:
        m = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
        assert list(m["features"]) == list(FEATURES)
        return m
    except (OSError, ValueError, KeyError, AssertionError):
        raise RagError(f"{MODEL_FILE} is missing or does not match this version. Refit it: python -m rag.abstain") \
            from None


def probability(f: dict, m: dict | None = None) -> float:
    """P(the chapter answers the question) from its features."""
    m = m or model()
    x = (np.array([f[k] for k in FEATURES]) - np.array(m["mean"])) / np.array(m["std"])
    return float(1.0 / (1.0 + math.exp(-(float(x @ np.array(m["coef"])) + m["intercept"]))))


def answerable(f: dict) -> bool:
    m = model()
    return probability(f, m) >= m["threshold"]


# ---------------------------------------------------------------- fitting

def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, iters: int = 300) -> tuple[np.ndarray, float]:
    """Class-balanced, L2-penalised logistic regression by Newton's method (X standardised)."""
    n, d = X.shape
    w_pos, w_neg = n / (2 * max(1, y.sum())), n / (2 * max(1, n - y.sum()))
    sw = np.where(y == 1, w_pos, w_neg)
    A = np.hstack([X, np.ones((n, 1))])
    beta = np.zeros(d + 1)
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(A @ beta)))
        grad = A.T @ (sw * (p - y)) + reg * beta
        H = (A * (sw * p * (1 - p))[:, None]).T @ A + np.diag(reg) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(H, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def _standardise(X):
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1.0
    return mean, std


def _folds(y: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    folds = [[] for _ in range(k)]
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        for j, i in enumerate(idx):
            folds[j % k].append(i)
    return [np.array(sorted(f)) for f in folds]


def out_of_fold(X: np.ndarray, y: np.ndarray, l2: float, k: int = FOLDS, seed: int = SEED) -> np.ndarray:
    p = np.zeros(len(y))
    for test in _folds(y, k, seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        mean, std = _standardise(X[train])
        coef, b = fit_logistic((X[train] - mean) / std, y[train], l2)
        p[test] = 1 / (1 + np.exp(-(((X[test] - mean) / std) @ coef + b)))
    return p


def choose_threshold(p: np.ndarray, y: np.ndarray, target: float = TARGET_PRECISION) -> float:
    """The lowest threshold whose answered questions (p >= t) are answerable with precision >= target
    (answering as many as possible); the most precise one if none reaches it."""
    best, best_prec = None, -1.0
    for t in sorted(set(np.round(p, 6))):
        said = p >= t
        prec = float(y[said].mean()) if said.any() else 0.0
        if prec >= target:
            return float(t)
        if prec > best_prec:
            best, best_prec = float(t), prec
    return best if best is not None else 0.5


def fit(questions: list[dict], r) -> dict:
    """Fit on questions (answerable: non-empty 'relevant'); return the model with its CV figures."""
    from .answer import analyse

    X = np.array([[analyse(q["question"], r, history=q.get("history")).features[f] for f in FEATURES]
                  for q in questions])
    y = np.array([1.0 if q["relevant"] else 0.0 for q in questions])
    cv = {}
    for l2 in L2_GRID:
        p = np.clip(out_of_fold(X, y, l2), 1e-6, 1 - 1e-6)
        cv[l2] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    l2 = min(cv, key=lambda x: (round(cv[x], 4), -x))
    p = out_of_fold(X, y, l2)
    t = choose_threshold(p, y)
    said = p >= t
    mean, std = _standardise(X)
    coef, b = fit_logistic((X - mean) / std, y, l2)
    return {"features": list(FEATURES), "mean": mean.tolist(), "std": std.tolist(), "coef": coef.tolist(),
            "intercept": b, "threshold": t, "l2": l2,
            "cv": {"folds": FOLDS, "seed": SEED, "log_loss_by_l2": {str(k): round(v, 4) for k, v in cv.items()},
                   "n": len(y), "answerable": int(y.sum()),
                   "answer_precision": round(float(y[said].mean()) if said.any() else 0.0, 4),
                   "abstain_recall": round(float((~said & (y == 0)).sum() / max(1, (y == 0).sum())), 4),
                   "answerable_abstain": round(float((~said & (y == 1)).sum() / max(1, y.sum())), 4)}}


def main() -> int:
    from .evaluate import DEFAULT_QUESTIONS, read_questions
    from .retriever import load_fresh

    questions = [q for q in read_questions(DEFAULT_QUESTIONS) if q.get("split") == "dev"]
    m = fit(questions, load_fresh())
    MODEL_FILE.write_text(json.dumps(m, indent=1) + "\n", encoding="utf-8")
    model.cache_clear()
    print(json.dumps(m["cv"], indent=1))
    print(f"l2 {m['l2']}, threshold {m['threshold']:.4f}; wrote {MODEL_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
