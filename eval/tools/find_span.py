"""Find the exact span of a sentence (or list item / table row) of a corpus file from a piece of its text.

    python eval/tools/find_span.py corpus/ch10_transfer_learning.zh.md "负迁移(Negative Transfer)指的是"

prints {"source", "start", "end", "text"} for the whole sentence that contains the piece, as the
`evidence` field of eval/questions.jsonl wants it. The sentences are chosen by reading the
section; this only computes offsets. `--row` takes the whole line (a list item or table row).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rag.chunking import split_sentences  # noqa: E402


def read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def find_span(path: Path, piece: str, row: bool = False, root: Path = ROOT / "corpus") -> dict:
    text = read(path)
    at = text.find(piece)
    if at < 0 or text.find(piece, at + 1) >= 0:
        raise SystemExit(f"error: {piece!r} occurs {text.count(piece)} times in {path}; give a unique piece.")
    line_start = text.rfind("\n", 0, at) + 1
    line_end = text.find("\n", at)
    line_end = len(text) if line_end < 0 else line_end
    if row:
        s, e = line_start, line_end
        body = text[s:e]
        lead = len(body) - len(body.lstrip(" \t-*+0123456789.)、"))
        s, e = s + lead, s + len(body.rstrip())
    else:
        s, e = next((s, e) for s, e in split_sentences(text, line_start, line_end) if s <= at < e)
    return {"source": path.resolve().relative_to(root.resolve()).as_posix(), "start": s, "end": e, "text": text[s:e]}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--row"]
    if len(args) != 2:
        raise SystemExit(__doc__)
    print(json.dumps(find_span(Path(args[0]), args[1], "--row" in sys.argv), ensure_ascii=False))
