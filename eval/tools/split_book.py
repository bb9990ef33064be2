"""Give every question of the book question set a seeded random dev/test split.

Usage: python eval/tools/split_book.py [eval/book_questions.jsonl] [--seed 20261129] [--dev 0.6]

Stratified by language and by answerable/unanswerable: inside each of the four groups the
questions (in id order) are shuffled with random.Random(seed) and the first round(dev * n)
become dev, the rest test. The file is rewritten in id order with `split` set; every other
field is kept as it is. Same seed, same questions -> same split.

Batches written as extra dev questions (ids starting with a prefix of DEV_ONLY, e.g. `b3-`) are
not drawn: they stay dev, and the draw over the other questions is the one it was without them.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

SEED = 20261129
DEV_SHARE = 0.6
DEV_ONLY = ("b3-",)  # extra dev batches: always dev, left out of the stratified draw


def assign_splits(questions: list[dict], seed: int = SEED, dev: float = DEV_SHARE) -> list[dict]:
    groups: dict[tuple[str, bool], list[str]] = {}
    split = {q["id"]: "dev" for q in questions if q["id"].startswith(DEV_ONLY)}
    for q in sorted(questions, key=lambda q: q["id"]):
        if q["id"] in split:
            continue
        groups.setdefault((q["lang"], bool(q["relevant"])), []).append(q["id"])
    rng = random.Random(seed)
    for key in sorted(groups):
        ids = groups[key]
        rng.shuffle(ids)
        n_dev = round(dev * len(ids))
        split.update({qid: "dev" if i < n_dev else "test" for i, qid in enumerate(ids)})
    return [{**q, "split": split[q["id"]]} for q in sorted(questions, key=lambda q: q["id"])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("questions", nargs="?", type=Path,
                    default=Path(__file__).resolve().parents[1] / "book_questions.jsonl")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--dev", type=float, default=DEV_SHARE, help="share of each group that goes to dev")
    args = ap.parse_args(argv)
    try:
        lines = args.questions.read_text(encoding="utf-8").splitlines()
        questions = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as e:
        print(f"error: cannot read {args.questions} ({e}); pass a JSONL question set", file=sys.stderr)
        return 2
    out = assign_splits(questions, args.seed, args.dev)
    args.questions.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in out), encoding="utf-8")
    n_dev = sum(q["split"] == "dev" for q in out)
    print(f"{len(out)} questions: {n_dev} dev, {len(out) - n_dev} test (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
