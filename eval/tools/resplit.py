"""Assign eval/questions.jsonl's dev/test split at random (seeded) and flag heading copies.

    python eval/tools/resplit.py [--seed 12] [--test-share 0.5]

A question *copies a heading* when its similarity to the title of one of its relevant sections
(in the question's language, the author's name in brackets dropped) is at least HEADING_COPY:
the Dice coefficient of their character bigrams (Chinese) or of their content words (English).
Such questions get "heading_copy": true and are left out of both splits' metrics (rag eval
counts them separately). The split is drawn per language and per answerable / not answerable,
so each split has the same mix; follow-up questions are split the same way.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rag.evaluate import resolve_relevant  # noqa: E402
from rag.lang import STOP_EN  # noqa: E402
from rag.types import section_key  # noqa: E402

HEADING_COPY = 0.6
QUESTIONS = ROOT / "eval" / "questions.jsonl"


def _bigrams(text: str) -> set[str]:
    t = re.sub(r"[\W_]+", "", text.lower())
    return {t[i:i + 2] for i in range(len(t) - 1)}


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP_EN}


def similarity(question: str, title: str, lang: str) -> float:
    title = re.sub(r"\s*[(（][^()（）]*[)）]\s*$", "", title)
    a, b = (_bigrams(question), _bigrams(title)) if lang == "zh" else (_words(question), _words(title))
    return 2 * len(a & b) / (len(a) + len(b)) if a and b else 0.0


def titles() -> dict[tuple[str, str], str]:
    """{(chapter-qualified section id, language): title} of the index's sections."""
    out = {}
    for line in (ROOT / "index" / "sections.jsonl").read_text(encoding="utf-8").splitlines():
        s = json.loads(line)
        out[(section_key(s["chapter"], s["id"]), "en" if s["source"].endswith(".en.md") else "zh")] = s["title"]
    return out


def main(seed: int = 12, test_share: float = 0.5) -> None:
    qs = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
    t = titles()
    keys = sorted({key for key, _ in t})
    for q, resolved in zip(qs, resolve_relevant(qs, keys)):
        sim = max((similarity(q["question"], t.get((s, q["lang"]), ""), q["lang"])
                   for s in resolved["relevant"]), default=0.0)
        q.pop("heading_copy", None)
        if sim >= HEADING_COPY:
            q["heading_copy"] = True
    rng = random.Random(seed)
    groups: dict[tuple, list[dict]] = {}
    for q in qs:
        groups.setdefault((q["lang"], bool(q["relevant"]), "history" in q), []).append(q)
    for key in sorted(groups):
        g = groups[key]
        rng.shuffle(g)
        n_test = round(len(g) * test_share)
        for i, q in enumerate(g):
            q["split"] = "test" if i < n_test else "dev"
    with open(QUESTIONS, "w", encoding="utf-8", newline="\n") as f:
        for q in qs:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    n_copy = sum(q.get("heading_copy", False) for q in qs)
    print(f"{len(qs)} questions, {n_copy} copy a heading (similarity >= {HEADING_COPY}); "
          f"dev {sum(q['split'] == 'dev' for q in qs)}, test {sum(q['split'] == 'test' for q in qs)}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[args.index("--seed") + 1]) if "--seed" in args else 12,
         float(args[args.index("--test-share") + 1]) if "--test-share" in args else 0.5)
