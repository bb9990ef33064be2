"""Throwaway prototype (issue 11): sections, chunks, questions and the dev/test split.

Sections use eval/check_questions.py's rules (copied from branch qbook1): numbered headings
outside code fences, body up to the next section heading, empty bodies skipped.
"""
from __future__ import annotations

import json
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from check_questions import parse_file  # noqa: E402

BOOK = Path("/work/shared/book")
REPO = HERE.parent.parent
CACHE = Path("/tmp/proto11")
CACHE.mkdir(exist_ok=True)
SEED = 11
CHUNK = 600


@dataclass
class Sec:
    qid: str      # qualified id; project chapter uses "proj/10.3"
    lang: str     # language of the text
    title: str
    body: str
    source: str
    line: int     # 1-based line of the heading
    corpus: str   # "book" or "proj"


def _parse(path: Path, root: Path, seen: dict, lang: str, corpus: str) -> list[Sec]:
    text = open(path, encoding="utf-8", newline="").read()
    out = []
    for s in parse_file(path, root, seen):
        body = text[s.body_start:s.body_end].strip()
        if not body:
            continue
        qid = s.id.rstrip("：:")
        if corpus == "proj":
            qid = "proj/" + qid.split("/", 1)[1]
        line = text[:s.body_start].rstrip("\n").count("\n") + 1
        out.append(Sec(qid, lang, s.title, body, s.source, line, corpus))
    return out


def book_sections() -> list[Sec]:
    out, seen = [], {}
    for p in sorted((BOOK / "zh").glob("*.md")):
        out += _parse(p, BOOK, seen, "zh", "book")
    zh_ids = {s.qid for s in out}
    seen = {}
    for p in sorted((BOOK / "en").glob("*.md")):
        out += [s for s in _parse(p, BOOK, seen, "en", "book") if s.qid in zh_ids]
    return out


def proj_sections() -> list[Sec]:
    root = REPO / "corpus"
    out = []
    for lang in ("zh", "en"):
        out += _parse(root / f"ch10_transfer_learning.{lang}.md", root, {}, lang, "proj")
    return out


def chunks(body: str, size: int = CHUNK) -> list[str]:
    """Greedy packing of paragraphs into ~size-char chunks; long paragraphs cut hard."""
    paras = []
    for p in re.split(r"\n\s*\n", body):
        p = p.strip()
        while len(p) > 1.5 * size:
            paras.append(p[:size])
            p = p[size:]
        if p:
            paras.append(p)
    out, cur = [], ""
    for p in paras:
        if cur and len(cur) + len(p) + 1 > size:
            out.append(cur)
            cur = p
        else:
            cur = f"{cur}\n{p}" if cur else p
    if cur:
        out.append(cur)
    return out


def book_questions() -> list[dict]:
    qs = []
    for f in ("q1.jsonl", "q2.jsonl"):
        qs += [json.loads(l) for l in open(CACHE / f, encoding="utf-8") if l.strip()]
    rng = random.Random(SEED)
    for lang in ("zh", "en"):
        group = sorted((q for q in qs if q["lang"] == lang), key=lambda q: q["id"])
        rng.shuffle(group)
        cut = round(0.6 * len(group))
        for i, q in enumerate(group):
            q["split"] = "dev" if i < cut else "test"
    for q in qs:
        chs = {r.split("/")[0] for r in q["relevant"]}
        if q["lang"] == "zh":
            q["group"] = "zh"
        else:
            q["group"] = "en-tr" if chs and chs <= {"ch01", "ch02", "ch03", "ch04"} else "en-other"
    return qs


def proj_questions() -> list[dict]:
    qs = [json.loads(l) for l in open(REPO / "eval/questions.jsonl", encoding="utf-8") if l.strip()]
    for q in qs:
        q["relevant"] = ["proj/" + r for r in q["relevant"]]
        q["group"] = "p-" + q["lang"]
    return qs


def toc() -> dict[tuple[str, int], str]:
    """(zh file, heading line) -> English title, from book/toc.en.tsv on branch toc."""
    out = {}
    for i, line in enumerate(open(CACHE / "toc.en.tsv", encoding="utf-8")):
        if i == 0:
            continue
        ch, f, ln, num, zh, en = line.rstrip("\n").split("\t")
        out[(f, int(ln))] = en
    return out
