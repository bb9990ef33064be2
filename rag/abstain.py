"""Calibrated abstention: does the corpus (the chapter, or the book) answer this question?

A logistic regression (numpy) on a few features of the question and its retrieval:

    cov_chapter   IDF-weighted share of the question's items found anywhere in the corpus
                  (answer.coverage: an English word also where the Chinese it translates to is)
    cov_sections  the same share within the two best sections only
    top           the best section's score;  margin  its lead over the second
    title         the best cosine similarity of the question to a section title
    sentence      the best cosine similarity of the question to a sentence of the best section
    items         log(1 + number of content items): "x" or "help" has one
    keyword       1 when the question has no question word (a bare keyword query)

**One model per corpus scale.** These features mean different things in a 15-section chapter
and a 707-section book: a bare keyword is a generic word in the chapter (迁移, "transfer": 4
unanswerable dev questions, no answerable one) and names a section in the book (book dev: 35% of
the answerable questions are keyword queries, 20% of the unanswerable); every question finds
most of its words somewhere in the book (cov_chapter of unanswerable questions: chapter 0.28,
book 0.58); the two best of 707 sections hold less of a question than two of 15. One model
fitted on both sets ranks the chapter's bare topic word above answerable chapter questions. So
abstain.json holds a model per question set: "chapter" fitted on the dev split of
eval/questions.jsonl (index/), "book" on the dev split of eval/book_questions.jsonl (a book
index). An index uses the model whose corpus is nearest its own in sections, on a log scale
(the chapter's model up to about 100 sections, the book's above).

**Threshold by expected cost.** Each model's L2 strength is chosen by 5-fold cross-validation
(log loss, classes weighted alike); its threshold minimises the cost per question of its set
(COSTS) over the out-of-fold probabilities of REPEATS cross-validations (a single split moves
the optimum; the threshold sits midway between the two probabilities around it). COSTS:
answering a question the corpus does not answer costs 3, abstaining on one it answers costs 1.
An abstention still lists the three closest sections; an answer to an unanswerable question
says "the chapter answers this in §X" and quotes it. A 2:1 cost the other way (abstaining
worse) was stated first: on the chapter it answers the generic and near-topic questions the
product must decline (tests/test_answer.py: "transfer", "总结一下这一章", the transformer attention
question; so do 1:1 and 1:2), and on the book, where 8% of the dev questions are unanswerable,
it abstains on almost nothing (5 of 20 unanswerable). Refit with other costs: --costs A:U.

The coefficients and the out-of-fold figures per language live in abstain.json beside this file.
Refit after changing the retriever, the features or a question set, with one command (a book
index first: `rag build --corpus book --index DIR`):

    python -m rag.abstain --book-index DIR     # fit both models, print the CV figures, write abstain.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).resolve().parent / "abstain.json"
FEATURES = ("cov_chapter", "cov_sections", "top", "margin", "title", "sentence", "items", "keyword")
# What a wrong decision costs, per question.
COSTS = {"answerable_abstains": 1.0, "unanswerable_answered": 3.0}
L2_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
FOLDS = 5
REPEATS = 5  # cross-validations (seeds SEED, SEED + 1, ...) whose out-of-fold costs are averaged
SEED = 12
# The question sets, one model each (their dev splits): name -> file under eval/
SETS = {"chapter": "questions.jsonl", "book": "book_questions.jsonl"}


def features(query: str, qtype: str, qv: np.ndarray, section_scores: np.ndarray, r) -> dict:
    """The classifier's features for a (resolved) query and its section scores, and the number of
    sections of the corpus (which model reads them)."""
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
        "sections": len(section_scores),
    }


@lru_cache(maxsize=1)
def models() -> dict:
    """The fitted models by question set, from abstain.json."""
    from .types import RagError

    try:
        m = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
        assert list(m["features"]) == list(FEATURES) and m["models"]
        for one in m["models"].values():
            assert len(one["coef"]) == len(FEATURES) and one["sections"] > 0 and "threshold" in one
        return m["models"]
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise RagError(f"{MODEL_FILE} is missing or does not match this version. Refit it: "
                       "python -m rag.abstain --book-index DIR") from None


def model_for(sections: int, fitted: dict | None = None) -> dict:
    """The model whose corpus is nearest a corpus of `sections` sections (log scale)."""
    fitted = fitted or models()
    n = math.log(max(1, sections))
    return min(fitted.values(), key=lambda m: (abs(n - math.log(m["sections"])), m["sections"]))


def probability(f: dict, m: dict | None = None) -> float:
    """P(the corpus answers the question) from its features (classes weighted alike in the fit);
    by the model of the corpus's scale unless `m` is given."""
    m = m or model_for(int(f["sections"]))
    x = (np.array([f[k] for k in FEATURES]) - np.array(m["mean"])) / np.array(m["std"])
    return float(1.0 / (1.0 + math.exp(-(float(x @ np.array(m["coef"])) + m["intercept"]))))


def answerable(f: dict) -> bool:
    m = model_for(int(f["sections"]))
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
    return [np.array(sorted(f), dtype=int) for f in folds]


def out_of_fold(X: np.ndarray, y: np.ndarray, l2: float, k: int = FOLDS, seed: int = SEED) -> np.ndarray:
    p = np.zeros(len(y))
    for test in _folds(y, k, seed):
        train = np.setdiff1d(np.arange(len(y)), test)
        mean, std = _standardise(X[train])
        coef, b = fit_logistic((X[train] - mean) / std, y[train], l2)
        p[test] = 1 / (1 + np.exp(-(((X[test] - mean) / std) @ coef + b)))
    return p


def expected_cost(p: np.ndarray, y: np.ndarray, t: float, costs: dict = COSTS) -> float:
    """The cost per question when the questions with p < t abstain."""
    abstain = np.asarray(p) < t
    return float((costs["answerable_abstains"] * np.sum(abstain & (y == 1))
                  + costs["unanswerable_answered"] * np.sum(~abstain & (y == 0))) / len(y))


def choose_threshold(ps: list[np.ndarray], y: np.ndarray, costs: dict = COSTS) -> float:
    """The threshold of least expected cost averaged over the probability vectors `ps` (one per
    cross-validation); of equal costs the lowest (answering most). It sits midway between the
    probability it is decided at and the next lower one, where every vector decides alike."""
    cands = np.unique(np.concatenate([np.round(p, 6) for p in ps]))
    cands = np.append(cands, 1.0 + 1e-6)  # above every probability: abstain on everything
    cost = [np.mean([expected_cost(p, y, t, costs) for p in ps]) for t in cands]
    i = int(np.argmin(np.round(cost, 9)))
    below = cands[i - 1] if i else 0.0
    return float((below + cands[i]) / 2)


def fit(X: np.ndarray, y: np.ndarray, langs=None, costs: dict = COSTS) -> dict:
    """Fit one model on feature rows X (FEATURES' order) and answerable y; return it with its
    out-of-fold figures per language (mean over the REPEATS cross-validations)."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    langs = np.asarray(langs) if langs is not None else np.full(len(y), "all")
    cv = {}
    for l2 in L2_GRID:
        p = np.clip(out_of_fold(X, y, l2), 1e-6, 1 - 1e-6)
        cv[l2] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    l2 = min(cv, key=lambda x: (round(cv[x], 4), -x))
    ps = [out_of_fold(X, y, l2, seed=SEED + i) for i in range(REPEATS)]
    t = choose_threshold(ps, y, costs)
    figures = {}
    for lang in sorted(set(langs)):
        ans, una = (langs == lang) & (y == 1), (langs == lang) & (y == 0)
        figures[str(lang)] = {
            "answerable": int(ans.sum()), "unanswerable": int(una.sum()),
            "answerable_abstain": round(float(np.mean([np.sum(p[ans] < t) for p in ps]) / max(1, ans.sum())), 4),
            "abstain_recall": round(float(np.mean([np.sum(p[una] < t) for p in ps]) / max(1, una.sum())), 4)}
    mean, std = _standardise(X)
    coef, b = fit_logistic((X - mean) / std, y, l2)
    return {"mean": mean.tolist(), "std": std.tolist(), "coef": coef.tolist(), "intercept": b,
            "threshold": t, "l2": l2,
            "cv": {"folds": FOLDS, "repeats": REPEATS, "seed": SEED,
                   "log_loss_by_l2": {str(k): round(v, 4) for k, v in cv.items()},
                   "expected_cost": round(float(np.mean([expected_cost(p, y, t, costs) for p in ps])), 4),
                   "n": len(y), "answerable": int(y.sum()), "out_of_fold": figures}}


def dataset(questions: list[dict], r) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows, answerable and language of the questions on retriever r (a follow-up is
    analysed with its history: the previous question and its gold sections)."""
    from .answer import analyse

    X = np.array([[f[k] for k in FEATURES] for f in
                  (analyse(q["question"], r, history=q.get("history")).features for q in questions)])
    return X, np.array([1.0 if q["relevant"] else 0.0 for q in questions]), np.array([q["lang"] for q in questions])


def _costs(text: str) -> dict:
    try:
        a, u = (float(x) for x in text.split(":"))
        assert a > 0 and u > 0
    except (ValueError, AssertionError):
        raise argparse.ArgumentTypeError(f"--costs takes two positive numbers A:U, not {text!r}") from None
    return {"answerable_abstains": a, "unanswerable_answered": u}


def main(argv: list[str] | None = None) -> int:
    from .evaluate import ROOT, read_questions
    from .index import DEFAULT_INDEX
    from .retriever import Retriever
    from .types import RagError

    ap = argparse.ArgumentParser(prog="python -m rag.abstain", description=(
        "Fit the abstention models on the dev splits of the chapter's and the book's question sets "
        "and write rag/abstain.json."))
    ap.add_argument("--book-index", required=True,
                    help="an index of the book (build one: rag build --corpus book --index DIR)")
    ap.add_argument("--chapter-index", default=str(DEFAULT_INDEX), help="the chapter's index (default: index/)")
    ap.add_argument("--costs", type=_costs, default=COSTS, metavar="A:U",
                    help="cost of abstaining on an answerable question : of answering an unanswerable one "
                         f"(default {COSTS['answerable_abstains']:g}:{COSTS['unanswerable_answered']:g})")
    args = ap.parse_args(argv)
    indexes = {"chapter": args.chapter_index, "book": args.book_index}
    fitted = {}
    try:
        for name, file in SETS.items():
            r = Retriever.load(indexes[name])
            questions = [q for q in read_questions(ROOT / "eval" / file) if q.get("split") == "dev"]
            fitted[name] = {"sections": len(r.section_keys), "questions": f"eval/{file} (dev)",
                            **fit(*dataset(questions, r), costs=args.costs)}
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    MODEL_FILE.write_text(json.dumps({"features": list(FEATURES), "costs": args.costs, "models": fitted},
                                     indent=1) + "\n", encoding="utf-8")
    models.cache_clear()
    print(json.dumps({name: m["cv"] for name, m in fitted.items()}, indent=1))
    for name, m in fitted.items():
        print(f"{name} ({m['sections']} sections): l2 {m['l2']}, threshold {m['threshold']:.4f}", file=sys.stderr)
    print(f"wrote {MODEL_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
