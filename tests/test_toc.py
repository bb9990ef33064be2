"""book/toc.en.tsv: one reviewed English title for every heading of the book's Chinese chapters."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TOC = REPO / "book" / "toc.en.tsv"
BOOK = REPO / "book"
COLUMNS = ["chapter", "file", "line", "number", "zh", "en"]

_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NUMBER = re.compile(r"^\d+(?:\.\d+)*$")
# CJK ideographs, CJK punctuation and full-width forms (a stray （ or ？ is untranslated text too).
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef]")


def read_toc() -> list[dict]:
    with TOC.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def book_headings(text: str) -> list[tuple[int, str]]:
    """(1-based line, heading text) of every non-empty ATX heading outside fenced code."""
    out, fence = [], None
    for n, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if m := _FENCE.match(line):
            if fence is None:
                fence = m.group(1)
            elif line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            continue
        if fence is None and (h := _HEADING.match(line)) and (h.group(2) or "").strip():
            out.append((n, h.group(2).strip()))
    return out


def heading_text(row: dict) -> str:
    return row["number"] + " " + row["zh"] if row["number"] else row["zh"]


def same_heading(written: str, row: dict) -> bool:
    """The heading as written is the row's number (with its '.', '、' or space separator) + zh text."""
    if not row["number"]:
        return written == row["zh"]
    rest = written[len(row["number"]):] if written.startswith(row["number"]) else None
    return rest is not None and rest.lstrip(".、．").strip() == row["zh"]


def test_toc_rows_are_well_formed():
    rows = read_toc()
    assert len(rows) > 800  # every heading of the book, not a sample
    seen = set()
    for r in rows:
        where = f"{r['file']}:{r['line']}"
        assert r["file"].startswith("zh/") and r["file"].endswith(".md"), where
        assert r["chapter"] == r["file"][3:7] and re.fullmatch(r"ch\d\d", r["chapter"]), where
        assert r["line"].isdigit() and int(r["line"]) >= 1, where
        assert r["number"] == "" or _NUMBER.match(r["number"]), where
        assert r["zh"].strip() == r["zh"] and r["zh"], where
        assert r["en"].strip() == r["en"] and r["en"], f"{where}: empty English title"
        assert not _CJK.search(r["en"]), f"{where}: English title has CJK text: {r['en']!r}"
        # a question stays a question
        assert r["zh"].endswith(("？", "?")) == r["en"].endswith("?"), f"{where}: {r['zh']!r} -> {r['en']!r}"
        assert (r["file"], r["line"]) not in seen, f"{where} twice"
        seen.add((r["file"], r["line"]))


def test_toc_matches_the_book_headings():
    zh_dir = BOOK / "zh"
    if not zh_dir.is_dir():
        reason = f"{zh_dir} is absent (the book is shipped by the book branch); cannot check toc rows against it"
        print(reason)
        pytest.skip(reason)
    rows = read_toc()
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    files = sorted(p for p in zh_dir.glob("*.md"))
    assert sorted(by_file) == [f"zh/{p.name}" for p in files], "toc files != book/zh files"
    for p in files:
        headings = book_headings(p.read_text(encoding="utf-8"))
        toc = by_file[f"zh/{p.name}"]
        # every heading of the file, in document order, at the line the row names
        assert [int(r["line"]) for r in toc] == [n for n, _ in headings], p.name
        for r, (n, written) in zip(toc, headings):
            assert same_heading(written, r), f"{p.name}:{n}: book has {written!r}, toc has {heading_text(r)!r}"


def test_same_heading_separators():
    row = {"number": "1", "zh": "placeholder"}
    assert same_heading("1.placeholder", row) and same_heading("1. placeholder", row)
    assert same_heading("10.4.1新手原则。", {"number": "10.4.1", "zh": "新手原则。"})
    assert not same_heading("10.4.2深度优先原则。", {"number": "10.4.1", "zh": "深度优先原则。"})
    assert not same_heading("参考文献", {"number": "", "zh": "参考"})
    assert book_headings("# a\n```\n# not\n```\n## 5.1 b\n#\n") == [(1, "a"), (5, "5.1 b")]

