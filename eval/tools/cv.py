"""Choose the retriever's and the composer's weights by 5-fold cross-validation on the dev split.

    python eval/tools/cv.py

For each grid: every fold picks the best setting on the other four folds and is scored with it;
the CV score is the mean held-out score, and the chosen value the best setting on all of dev.
Retrieval weights are scored by hit@1 (standalone dev questions, heading copies left out); the
composer's by the mean of evidence hit and quote precision over the answerable dev questions
(follow-ups with their history). Abstention is not involved: refit it afterwards
(python -m rag.abstain). Prints the table that eval/README.md reports.
"""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import importlib  # noqa: E402

A = importlib.import_module("rag.answer")  # (the package re-exports a function of the same name)
R = importlib.import_module("rag.retriever")
from rag.evaluate import DEFAULT_QUESTIONS, evidence_scores, read_questions, resolve_relevant  # noqa: E402

FOLDS, SEED = 5, 12


def folds(items: list, k: int = FOLDS) -> list[list]:
    idx = list(range(len(items)))
    random.Random(SEED).shuffle(idx)
    return [[items[i] for i in idx[f::k]] for f in range(k)]


def cross_validate(questions: list[dict], grid: list[dict], score) -> tuple[dict, float, float]:
    """(best setting on all questions, its score, mean held-out score of per-fold choices)."""
    per = {i: {q["id"]: score(q, setting) for q in questions} for i, setting in enumerate(grid)}
    held = []
    for f, test in enumerate(folds(questions)):
        test_ids = {q["id"] for q in test}
        best = max(per, key=lambda i: sum(v for qid, v in per[i].items() if qid not in test_ids))
        held.append(sum(per[best][q] for q in test_ids) / len(test_ids))
    best = max(per, key=lambda i: sum(per[i].values()))
    return grid[best], sum(per[best].values()) / len(questions), sum(held) / len(held)


def apply(setting: dict) -> None:
    for name, value in setting.items():
        if name.startswith("dense_"):
            R.DENSE_WEIGHT[name[6:]] = value
        elif name == "title":
            R.TITLE_WEIGHT = value
        else:
            setattr(A, name, value)


def main() -> None:
    r = R.load_fresh()
    dev = resolve_relevant([q for q in read_questions(DEFAULT_QUESTIONS) if q.get("split") == "dev"], r.section_keys)
    standalone = [q for q in dev if q["relevant"] and not q.get("history") and not q.get("heading_copy")]
    saved = {"dense_zh": R.DENSE_WEIGHT["zh"], "dense_en": R.DENSE_WEIGHT["en"], "title": R.TITLE_WEIGHT,
             "KEEP_RATIO": A.KEEP_RATIO, "SHAPE_BONUS": A.SHAPE_BONUS, "SECOND_SECTION_RATIO": A.SECOND_SECTION_RATIO}

    def hit1(q, setting):
        apply(setting)
        hits = r.search(q["question"], k=1)
        return float(bool(hits) and hits[0].id in q["relevant"])

    # the current setting first: on a tie it stays
    grid = [{"dense_zh": z, "dense_en": e, "title": t}
            for z, e, t in itertools.product((0.5, 0.3, 0.7), (0.3, 0.1, 0.5), (0.4, 0.0, 0.2, 0.6))]
    best, full, cv = cross_validate(standalone, grid, hit1)
    now = {k: saved[k] for k in ("dense_zh", "dense_en", "title")}
    was = sum(hit1(q, now) for q in standalone) / len(standalone)
    print(f"retrieval  chosen {best}: dev hit@1 {full:.3f}, CV {cv:.3f}; current {now}: dev {was:.3f}")
    apply({k: saved[k] for k in ("dense_zh", "dense_en", "title")})

    answerable = [q for q in dev if q["relevant"] and q.get("evidence") and not q.get("heading_copy")]
    history = {q["id"]: [A.answer(t["question"], r) for t in q.get("history", [])] for q in answerable}

    def quality(q, setting):
        apply(setting)
        a = A.analyse(q["question"], r, history=history[q["id"]])
        chosen, translated = A.compose(a, q["lang"], r)
        s = A._sentences(r)
        quotes = [A._citation(s.recs[i], translated).to_dict() for i in chosen]
        ev = evidence_scores(quotes, q["evidence"])
        return (ev["hit"] + (ev["precision"] or 0.0)) / 2

    grid = [{"KEEP_RATIO": k, "SHAPE_BONUS": b, "SECOND_SECTION_RATIO": t}
            for k, b, t in itertools.product((0.85, 0.8, 0.9, 0.95, 1.01), (0.15, 0.0, 0.1, 0.25), (0.9, 0.85, 0.95, 1.01))]
    best, full, cv = cross_validate(answerable, grid, quality)
    now = {k: saved[k] for k in ("KEEP_RATIO", "SHAPE_BONUS", "SECOND_SECTION_RATIO")}
    was = sum(quality(q, now) for q in answerable) / len(answerable)
    print(f"composer   chosen {best}: dev (hit+precision)/2 {full:.3f}, CV {cv:.3f}; current {now}: dev {was:.3f}")
    apply(saved)


if __name__ == "__main__":
    main()
