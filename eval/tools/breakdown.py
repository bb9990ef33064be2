"""Hybrid retrieval and answer metrics of a question set by group, with 95% bootstrap intervals.

Usage: python eval/tools/breakdown.py eval/book_questions.jsonl --index DIR [--split test]

Groups: all, zh, en, and English split by chapter into those the book translates (ch01-04)
and the rest (a question counts by the chapter of its first gold id). Per group: hit@1 and
MRR@10 (answerable questions), first-citation accuracy (answerable: the answer does not
abstain and its first citation is a gold section), abstention recall (unanswerable questions
the answer abstains on) and the abstention rate on answerable ones. Intervals: percentile
bootstrap over questions, 2,000 resamples, seed 0. `rag eval` gives the same point figures for
all/zh/en; this adds the chapter split and the intervals.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag.answer import answer  # noqa: E402
from rag.evaluate import hit_at, mrr_at, read_questions, resolve_relevant  # noqa: E402
from rag.retriever import Retriever  # noqa: E402

TRANSLATED = {"ch01", "ch02", "ch03", "ch04"}


def interval(values: list[float], n: int = 2000, seed: int = 0) -> tuple[float, float]:
    if not values:
        return (0.0, 0.0)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(n))
    return means[int(0.025 * n)], means[int(0.975 * n) - 1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("questions", type=Path)
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--split", default="test")
    args = ap.parse_args(argv)
    retriever = Retriever.load(args.index)
    questions = [q for q in read_questions(args.questions) if args.split == "all" or q.get("split") == args.split]
    questions = resolve_relevant(questions, retriever.section_keys)
    rows = []
    for q in questions:
        hits = retriever.search(q["question"], k=10, mode="hybrid")
        run = {h.id: h.score for h in hits}
        qrel = {s: 1 for s in q["relevant"]}
        a = answer(q["question"], retriever)
        chapter = q["relevant"][0].split("/")[0] if q["relevant"] else None
        rows.append({"lang": q["lang"], "chapter": chapter, "answerable": bool(q["relevant"]),
                     "hit@1": hit_at(qrel, run, 1) if qrel else None, "mrr@10": mrr_at(qrel, run, 10) if qrel else None,
                     "cited": float(not a.abstained and bool(a.citations) and a.citations[0].id in q["relevant"]),
                     "abstained": float(a.abstained)})
    groups = {"all": rows, "zh": [r for r in rows if r["lang"] == "zh"], "en": [r for r in rows if r["lang"] == "en"],
              "en ch01-04": [r for r in rows if r["lang"] == "en" and r["chapter"] in TRANSLATED],
              "en other chapters": [r for r in rows if r["lang"] == "en" and r["chapter"] and r["chapter"] not in TRANSLATED]}
    print(f"{args.questions} ({args.split}), hybrid, 95% bootstrap intervals\n")
    print(f"{'group':18} {'n':>4} {'hit@1':>20} {'MRR@10':>20} {'1st citation':>20} {'abstain on unans.':>22} {'abstain on ans.':>8}")
    for name, rs in groups.items():
        ans = [r for r in rs if r["answerable"]]
        una = [r for r in rs if not r["answerable"]]
        cells = []
        for vals in ([r["hit@1"] for r in ans], [r["mrr@10"] for r in ans], [r["cited"] for r in ans]):
            lo, hi = interval(vals)
            cells.append(f"{sum(vals) / max(1, len(vals)):.3f} [{lo:.2f}, {hi:.2f}]")
        abst = [r["abstained"] for r in una]
        lo, hi = interval(abst)
        cells.append(f"{sum(abst) / len(abst):.2f} [{lo:.2f}, {hi:.2f}] n={len(una)}" if una else "-")
        cells.append(f"{sum(r['abstained'] for r in ans) / max(1, len(ans)):.3f}")
        print(f"{name:18} {len(ans):>4} {cells[0]:>20} {cells[1]:>20} {cells[2]:>20} {cells[3]:>22} {cells[4]:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
