"""Choose the answer composer's weights by 5-fold cross-validation on the dev splits.

    python eval/tools/cv.py --book-index /tmp/book-index [--chapter-index index]

One parameter set for the bundled chapter and the whole book. Questions: the answerable dev
questions with gold evidence of eval/questions.jsonl (on the chapter's index; heading copies left
out, follow-ups with their history) and of eval/book_questions.jsonl (on a whole-book index).
A question scores (evidence hit + quote precision) / 2 (rag.evaluate.evidence_scores; no quote:
0); the objective is the mean over each set, averaged over the two sets, so the chapter's 70
questions weigh as much as the book's 228.

Each set is cut into 5 folds (seed 12); fold f of the union is fold f of both. Every fold picks its
setting on the other four by coordinate ascent over GRID (start: the shipped values; each round
tries every value of each parameter in turn, keeping a change only when it raises the objective,
until a round changes nothing), and is scored with it; the CV score is the mean held-out score.
The chosen values are the coordinate-ascent optimum on all dev questions. Scores are memoised per
setting, and retrieval is run once per question (the composer's weights do not change it).
Abstention is not involved (a question is always composed). Retrieval weights are chosen by
eval/tools/cv_weights.py, the abstention models by `python -m rag.abstain --book-index DIR`.

Prints the CV score, per set and language the dev figures (evidence hit, quote precision, first
citation) of the shipped and the chosen values, each fold's choice and a warning for a chosen
value on the edge of its grid.
"""

from __future__ import annotations

import argparse
import importlib
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

A = importlib.import_module("rag.answer")  # (the package re-exports a function of the same name)
R = importlib.import_module("rag.retriever")
from rag.evaluate import evidence_scores, read_questions, resolve_relevant, with_duplicates  # noqa: E402

FOLDS, SEED = 5, 12
GRID = {
    "KEEP_RATIO": (0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.01),
    "SHAPE_BONUS": (0.0, 0.1, 0.15, 0.25, 0.4),
    "SECOND_SECTION_RATIO": (0.8, 0.85, 0.9, 0.95, 1.01),
    "SECTION_WEIGHT": (0.0, 0.25, 0.5, 1.0, 2.0),
    "MAX_QUOTES": (1, 2, 3, 4),
    "dense_zh": (0.1, 0.2, 0.3, 0.5, 0.7),
    "dense_en": (0.1, 0.2, 0.3, 0.5, 0.7),
    "dense_cross": (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
    "PAIR_WEIGHT": (0.0, 0.25, 0.5, 0.75, 1.0),
    "LOCAL_IDF": (0.0, 0.5, 1.0, 2.0),
    "TRANSLATED_WORD_WEIGHT": (0.0, 0.25, 0.5, 1.0),
}


def current() -> dict:
    """The shipped values of the grid's parameters."""
    return {name: A.SENTENCE_DENSE_WEIGHT[name[6:]] if name.startswith("dense_") else getattr(A, name)
            for name in GRID}


def apply(setting: dict) -> None:
    for name, value in setting.items():
        if name.startswith("dense_"):
            A.SENTENCE_DENSE_WEIGHT[name[6:]] = value
        else:
            setattr(A, name, value)


def dev_questions(path: Path, r) -> list[dict]:
    """The answerable dev questions with gold evidence (heading copies aside), ids qualified."""
    qs = [q for q in read_questions(path) if q.get("split") == "dev"]
    qs = with_duplicates(resolve_relevant(qs, r.section_keys), r.duplicates)
    return [q for q in qs if q["relevant"] and q.get("evidence") and not q.get("heading_copy")]


class QuestionSet:
    """A question set on its index, with retrieval done once per question."""

    def __init__(self, name: str, path: Path, index: Path):
        self.name = name
        self.r = R.Retriever.load(index)
        self.questions = dev_questions(path, self.r)
        # English questions about chapters without an English translation (answered from the Chinese)
        english = {rec["chapter"] for rec in self.r.index.sentences if rec["lang"] == "en"}
        self.untranslated = {q["id"] for q in self.questions
                             if q["lang"] == "en" and not {k.split("/")[0] for k in q["relevant"]} & english}
        history = {q["id"]: [A.answer(t["question"], self.r) for t in q.get("history", [])] for q in self.questions}
        self.analyses = {q["id"]: A.analyse(q["question"], self.r, history=history[q["id"]]) for q in self.questions}

    def measure(self, q: dict) -> dict:
        """hit, precision and first-citation correctness of the composer's quotes for q, as set now."""
        a = self.analyses[q["id"]]
        chosen, translated = A.compose(a, q["lang"], self.r)
        s = A._sentences(self.r)
        quotes = [A._citation(s.recs[i], translated, self.r.title_en).to_dict() for i in chosen]
        ev = evidence_scores(quotes, q["evidence"])
        first = bool(quotes) and quotes[0]["id"] in q["relevant"]  # relevant ids are resolved (qualified)
        return {"hit": ev["hit"], "precision": ev["precision"] or 0.0, "first": float(first)}


def folds(items: list, k: int = FOLDS) -> list[list]:
    idx = list(range(len(items)))
    random.Random(SEED).shuffle(idx)
    return [[items[i]["id"] for i in idx[f::k]] for f in range(k)]


class Objective:
    """Per-question scores of settings, memoised; the objective over any subset of questions."""

    def __init__(self, sets: list[QuestionSet]):
        self.sets = sets
        self.memo: dict[tuple, dict[str, dict[str, float]]] = {}

    def scores(self, setting: dict) -> dict[str, dict[str, float]]:
        key = tuple(sorted(setting.items()))
        if key not in self.memo:
            apply(setting)
            self.memo[key] = {qs.name: {q["id"]: qs.measure(q) for q in qs.questions} for qs in self.sets}
        return self.memo[key]

    def value(self, setting: dict, keep) -> float:
        """Mean over the sets of the mean (hit + precision) / 2 of the questions `keep` accepts."""
        per = self.scores(setting)
        means = []
        for qs in self.sets:
            vals = [(m["hit"] + m["precision"]) / 2 for qid, m in per[qs.name].items() if keep(qs.name, qid)]
            means.append(sum(vals) / len(vals))
        return sum(means) / len(means)

    def ascend(self, start: dict, keep) -> dict:
        """Coordinate ascent over GRID from `start` (ties keep the current value)."""
        best, best_value = dict(start), self.value(start, keep)
        changed = True
        while changed:
            changed = False
            for name, values in GRID.items():
                for v in values:
                    trial = {**best, name: v}
                    val = self.value(trial, keep)
                    if val > best_value + 1e-9:
                        best, best_value, changed = trial, val, True
        return best


def figures(obj: Objective, setting: dict) -> dict[str, dict[str, float]]:
    """Per set and language (and for English questions on untranslated chapters, "en-zh"): mean
    evidence hit, quote precision and first citation on dev."""
    per = obj.scores(setting)
    out = {}
    for qs in obj.sets:
        for lang in ("zh", "en", "en-zh", "all"):
            ms = [per[qs.name][q["id"]] for q in qs.questions
                  if lang in ("all", q["lang"]) or (lang == "en-zh" and q["id"] in qs.untranslated)]
            if not ms:
                continue
            out[f"{qs.name}/{lang}"] = {k: sum(m[k] for m in ms) / len(ms) for k in ("hit", "precision", "first")} \
                | {"n": len(ms)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--book-index", required=True, help="an index of the whole book (rag build --corpus book)")
    ap.add_argument("--chapter-index", default=str(ROOT / "index"), help="an index of the bundled chapter")
    args = ap.parse_args(argv)
    saved = current()
    sets = [QuestionSet("chapter", ROOT / "eval" / "questions.jsonl", Path(args.chapter_index)),
            QuestionSet("book", ROOT / "eval" / "book_questions.jsonl", Path(args.book_index))]
    obj = Objective(sets)
    fold_ids = {qs.name: folds(qs.questions) for qs in sets}
    held = []
    for f in range(FOLDS):
        def train(name, qid, f=f):
            return qid not in fold_ids[name][f]

        def test(name, qid, f=f):
            return qid in fold_ids[name][f]
        choice = obj.ascend(saved, train)
        held.append(obj.value(choice, test))
        print(f"fold {f}: held-out {held[-1]:.3f} with {choice}", flush=True)
    chosen = obj.ascend(saved, lambda name, qid: True)
    everything = lambda name, qid: True  # noqa: E731
    print(f"CV (mean held-out (hit + precision) / 2, averaged over the two sets): {sum(held) / len(held):.3f}")
    print(f"shipped {saved}: dev {obj.value(saved, everything):.3f}")
    print(f"chosen  {chosen}: dev {obj.value(chosen, everything):.3f}")
    for label, setting in (("shipped", saved), ("chosen", chosen)):
        for group, m in figures(obj, setting).items():
            print(f"  {label:8} {group:13} n={m['n']:3}  evidence hit {m['hit']:.3f}  "
                  f"quote precision {m['precision']:.3f}  first citation {m['first']:.3f}")
    for name, values in GRID.items():
        if len(values) > 1 and chosen[name] in (values[0], values[-1]):
            print(f"warning: {name} = {chosen[name]} is on the edge of its grid {values}")
    apply(saved)


if __name__ == "__main__":
    main()
