"""Validate a book question set (JSONL) against the book's markdown files.

Usage:
    python eval/check_questions.py eval/book_questions_part1.jsonl [--book DIR]
    python eval/check_questions.py --sections ch05 [--book DIR]   # list a chapter's sections

Checks (see docs in CONTRACT / issue 9 item 7):
- JSON shape: required keys and types, lang, kind, ids unique;
- every relevant id ("ch05/5.3", "ch13/13.5~2") names a numbered heading of that chapter;
  numbered heading = markdown heading line `#{1,6} <number> title` outside code fences,
  a number reused inside a chapter gets ~2, ~3 ... on its later occurrences (files of a
  chapter in sorted name order);
- evidence spans are exact (text == file_text[start:end]), do not start or end inside markup
  ($...$, **, <...>, [..](..)), and lie inside the body of one of the gold sections;
- answerable questions have 1-3 evidence spans, unanswerable ones (relevant: []) none and kind
  offtopic/nearby;
- warns when a question is too similar to its gold heading (character-bigram Jaccard > 0.5).

Book default: ./book if it exists, else ../shared/book relative to the repository root.
Exit status 1 when any error is found (warnings alone do not fail).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

KINDS = {"definition", "why", "how", "list", "comparison", "yesno", "keyword", "rambling",
         "detail", "typo", "offtopic", "nearby"}
UNANSWERABLE_KINDS = {"offtopic", "nearby"}
HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
# a section number has at least two components ("5.3", "13.5.2"); "1. 简洁" is a list-like title
NUMBER = re.compile(r"^(\d+(?:\.\d+)+)\.?(?![\d])[ \t\u3000、:：]*")
FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
CHAPTER = re.compile(r"^(ch\d\d)_")
SIMILARITY_LIMIT = 0.5


@dataclass
class Section:
    id: str          # qualified, e.g. "ch05/5.3" or "ch13/13.5~2"
    title: str       # heading text without the number
    source: str      # "zh/ch05_....md"
    body_start: int  # offset just after the heading line
    body_end: int    # offset of the next section heading (or end of file)


def chapter_of(path: Path) -> str:
    m = CHAPTER.match(path.name)
    return m.group(1) if m else path.stem.split(".")[0]


def parse_sections(book: Path) -> dict[str, Section]:
    """Numbered sections of every file under book/zh and book/en, keyed by qualified id.

    Only zh files define the canonical ids; en files are parsed separately (see parse_file)."""
    sections: dict[str, Section] = {}
    seen: dict[str, int] = {}
    for path in sorted((book / "zh").glob("*.md")):
        for sec in parse_file(path, book, seen):
            sections[sec.id] = sec
    return sections


def parse_file(path: Path, book: Path, seen: dict[str, int]) -> list[Section]:
    chapter = chapter_of(path)
    chapter_no = int(chapter[2:]) if chapter[2:].isdigit() else None
    text = open(path, encoding="utf-8", newline="").read()
    source = path.relative_to(book).as_posix()
    out: list[Section] = []
    open_level = None  # level of the current numbered section heading
    open_number = None  # its number
    fence = None
    pos = 0
    for line in text.splitlines(keepends=True):
        start, pos = pos, pos + len(line)
        stripped = line.rstrip("\r\n")
        fm = FENCE.match(stripped)
        if fence:
            if fm and fm.group(1)[0] == fence[0] and len(fm.group(1)) >= len(fence):
                fence = None
            continue
        if fm:
            fence = fm.group(1)
            continue
        hm = HEADING.match(stripped)
        if not hm:
            continue
        level, title = len(hm.group(1)), hm.group(2).strip()
        nm = NUMBER.match(title)
        number = nm.group(1) if nm else None
        # restarted local numbering: "#### 1.1" under 17.9.1, "#### 2.1" under 17.9.2 -- a number
        # from another chapter whose first part is the last part of the enclosing section
        local = (number is not None and chapter_no is not None and open_number is not None
                 and int(number.split(".")[0]) != chapter_no and level > open_level
                 and number.split(".")[0] == open_number.split(".")[-1])
        if number is None or local:
            if open_level is not None and level > open_level:
                continue  # nested under the current numbered section: part of its body
            # unnumbered heading at or above the section level: a named section
            if out:
                out[-1].body_end = start
            out.append(Section(f"{chapter}/{title}", title, source, pos, len(text)))
            open_level, open_number = (None if level == 1 else level), None
            continue
        if out:
            out[-1].body_end = start
        n = seen.get(f"{chapter}/{number}", 0) + 1
        seen[f"{chapter}/{number}"] = n
        qid = f"{chapter}/{number}" + (f"~{n}" if n > 1 else "")
        out.append(Section(qid, title[nm.end():].strip(), source, pos, len(text)))
        open_level, open_number = level, number
    return out


def bigrams(s: str) -> set[str]:
    s = re.sub(r"[\s\W_]+", "", s.lower())
    return {s[i:i + 2] for i in range(len(s) - 1)} or ({s} if s else set())


def jaccard(a: str, b: str) -> float:
    x, y = bigrams(a), bigrams(b)
    return len(x & y) / len(x | y) if x | y else 0.0


def inside_markup(text: str, i: int) -> bool:
    """True if offset i (a span boundary) falls inside $..$, **..**, <..> or a [..](..) link."""
    line_start = text.rfind("\n", 0, i) + 1
    line_end = text.find("\n", i)
    line_end = len(text) if line_end < 0 else line_end
    line, k = text[line_start:line_end], i - line_start
    for pat in (r"\$\$.*?\$\$|\$[^$\n]+\$", r"\*\*[^*\n]+\*\*", r"<[^<>\n]+>", r"!?\[[^\]\n]*\]\([^)\n]*\)"):
        for m in re.finditer(pat, line):
            if m.start() < k < m.end():
                return True
    return False


def check(path: Path, book: Path) -> tuple[list[str], list[str]]:
    sections = parse_sections(book)
    texts: dict[str, str] = {}
    errors: list[str] = []
    warnings: list[str] = []
    ids: set[str] = set()
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        where = f"line {lineno}"
        try:
            q = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(f"{where}: invalid JSON ({exc})")
            continue
        missing = {"id", "question", "lang", "relevant", "kind", "evidence"} - q.keys()
        extra = set(q) - {"id", "question", "lang", "relevant", "kind", "evidence", "split", "history"}
        if missing or extra:
            errors.append(f"{where}: missing keys {sorted(missing)} / unknown keys {sorted(extra)}")
            continue
        where = f"line {lineno} ({q['id']})"
        if q["id"] in ids:
            errors.append(f"{where}: duplicate id")
        ids.add(q["id"])
        if not isinstance(q["question"], str) or not q["question"].strip():
            errors.append(f"{where}: empty question")
        if q["lang"] not in ("zh", "en"):
            errors.append(f"{where}: lang must be zh or en")
        if "split" in q and q["split"] not in ("dev", "test"):
            errors.append(f"{where}: split must be dev or test")
        if q["kind"] not in KINDS:
            errors.append(f"{where}: unknown kind {q['kind']!r}")
        rel = q["relevant"]
        if not isinstance(rel, list) or not all(isinstance(r, str) for r in rel):
            errors.append(f"{where}: relevant must be a list of strings")
            continue
        unknown = [r for r in rel if r not in sections]
        if unknown:
            errors.append(f"{where}: no such section {unknown}")
            continue
        ev = q["evidence"]
        if not rel:
            if q["kind"] not in UNANSWERABLE_KINDS:
                errors.append(f"{where}: relevant [] needs kind offtopic or nearby")
            if ev:
                errors.append(f"{where}: unanswerable question with evidence")
            continue
        if q["kind"] in UNANSWERABLE_KINDS:
            errors.append(f"{where}: kind {q['kind']} but relevant is not empty")
        if not isinstance(ev, list) or not 1 <= len(ev) <= 3:
            errors.append(f"{where}: needs 1-3 evidence spans")
            continue
        for span in ev:
            if set(span) != {"source", "start", "end", "text"}:
                errors.append(f"{where}: evidence keys must be source/start/end/text")
                continue
            src = span["source"]
            if src not in texts:
                f = book / src
                if not f.is_file():
                    errors.append(f"{where}: no such source {src}")
                    continue
                texts[src] = open(f, encoding="utf-8", newline="").read()
            text = texts[src]
            s, e = span["start"], span["end"]
            if text[s:e] != span["text"] or not span["text"].strip():
                errors.append(f"{where}: evidence text != {src}[{s}:{e}]")
                continue
            if span["text"] != span["text"].strip():
                warnings.append(f"{where}: evidence has leading/trailing whitespace")
            if inside_markup(text, s) or inside_markup(text, e):
                errors.append(f"{where}: evidence starts or ends inside markup: {span['text'][:40]!r}")
            if re.search(r"<[a-zA-Z/][^<>]*>|!\[[^\]]*\]\(|&[a-z]+;|&#\d+;", span["text"]):
                errors.append(f"{where}: evidence contains an HTML tag, entity or image link")
            if any(c in span["text"] for c in "\u200b\ufeff"):
                errors.append(f"{where}: evidence contains a zero-width character")
            if src.startswith("zh/"):
                if not any(sections[r].source == src and sections[r].body_start <= s and e <= sections[r].body_end
                           for r in rel):
                    errors.append(f"{where}: evidence {s}-{e} is not inside the body of {rel}")
            elif not src.startswith("en/"):
                errors.append(f"{where}: source must be zh/... or en/...")
        if not any(span.get("source", "").startswith("zh/") for span in ev):
            errors.append(f"{where}: needs at least one evidence span in the zh file")
        for r in rel:
            sim = jaccard(q["question"], sections[r].title)
            if sim > SIMILARITY_LIMIT:
                warnings.append(f"{where}: question too similar to heading of {r} "
                                f"({sim:.2f}): {sections[r].title!r}")
    return errors, warnings


def default_book() -> Path:
    root = Path(__file__).resolve().parent.parent
    for cand in (root / "book", root.parent.parent / "shared" / "book", root.parent / "shared" / "book"):
        if (cand / "zh").is_dir():
            return cand
    return root / "book"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("questions", nargs="?", type=Path)
    ap.add_argument("--book", type=Path, default=None)
    ap.add_argument("--sections", metavar="CHAPTER", help="list the sections of a chapter and exit")
    args = ap.parse_args(argv)
    book = args.book or default_book()
    if not (book / "zh").is_dir():
        print(f"error: no book at {book} (expected {book}/zh/*.md); pass --book DIR", file=sys.stderr)
        return 2
    if args.sections:
        for sec in parse_sections(book).values():
            if sec.id.startswith(args.sections + "/"):
                print(f"{sec.id:18} {sec.body_end - sec.body_start:6}  {sec.title}")
        return 0
    if args.questions is None or not args.questions.is_file():
        print("error: give the question file to check (e.g. eval/book_questions_part1.jsonl)", file=sys.stderr)
        return 2
    errors, warnings = check(args.questions, book)
    for w in warnings:
        print("warning:", w)
    for e in errors:
        print("error:", e)
    n = sum(1 for line in args.questions.read_text(encoding="utf-8").splitlines() if line.strip())
    print(f"{n} questions, {len(errors)} errors, {len(warnings)} warnings")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
