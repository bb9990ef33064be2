"""Check eval/book_questions_part2.jsonl (book chapters ch10-ch19) against the book's files.

Usage: python eval/check_questions_part2.py [QUESTIONS] [--book DIR]

Checks, per question: the record's fields and values; every `relevant` id is a section of its
chapter (ATX headings outside code fences; a number reused inside a chapter gets `~2`, `~3` in
file order, files sorted by name; restarted local numbering and unnumbered headings nested under
a numbered heading belong to it; a nested number that extends the enclosing one, like ch12's old
10.6.1 under 10.6, is a section); every evidence span is exact (`text == file_text[start:end]`,
file read as UTF-8 with newline=""), lies inside one of the question's gold sections and outside
code blocks, does not start or end inside markup ($...$, **, <...>, links) and holds no HTML tag,
image link, entity or zero-width character; and the question is not too close to its gold
heading (character-bigram Jaccard > 0.5 is an error). Prints counts by chapter, language and
kind. Exit status 1 on any error.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BOOK = Path("/work/shared/book")
KINDS = {"definition", "why", "how", "list", "comparison", "yesno", "keyword", "rambling",
         "detail", "typo", "offtopic", "nearby"}
NUMBER = re.compile(r"^\s*(?:&emsp;|\s)*(\d+(?:\.\d+)+)\.?(?!\d)")
CHAPTER = re.compile(r"^(ch\d\d)_")
MARKUP = re.compile(r"\$\$.*?\$\$|\$[^$\n]*\$|\*\*|<[^>\n]+>|!?\[[^\]\n]*\]\([^)\n]*\)|&[a-z]+;")
FORBIDDEN = re.compile(r"<[a-zA-Z/][^>\n]*>|!\[|&[a-z]+;|[\u200b\u200c\u200d\ufeff]")


@dataclass
class Section:
    id: str          # qualified id, e.g. "ch13/13.5~2"
    source: str      # "zh/<file>.md"
    start: int       # char offset of the heading line
    end: int         # char offset where the next section starts
    title: str       # heading text without its number


def read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def line_starts(text: str) -> list[int]:
    starts = [0]
    for m in re.finditer("\n", text):
        starts.append(m.end())
    return starts


FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$")


def fenced(text: str) -> list[tuple[int, int]]:
    """Character ranges of fenced code blocks (fence lines included)."""
    out, fence, start, pos = [], None, 0, 0
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not line.strip()[len(m.group(1)):].strip():
                out.append((start, pos + len(line)))
                fence = None
        elif m:
            fence, start = m.group(1), pos
        pos += len(line) + 1
    if fence:
        out.append((start, len(text)))
    return out


def headings(text: str) -> list[tuple[int, int, str]]:
    """(char offset, level, title) of every ATX heading outside code fences.

    Line based on purpose: the book has two headings (ch11 11.3.4 and 11.3.6) right after a
    `<center>` caption line, which CommonMark reads as part of that HTML block; the book means
    them as headings, so they count here.
    """
    out, fence, pos = [], None, 0
    for line in text.split("\n"):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not line.strip()[len(m.group(1)):].strip():
                fence = None
        elif m:
            fence = m.group(1)
        else:
            h = HEADING.match(line.rstrip("\r"))
            if h:
                out.append((pos, len(h.group(1)), (h.group(2) or "").strip()))
        pos += len(line) + 1
    return out


def book_sections(book: Path) -> dict[str, list[Section]]:
    """Sections of every chapter of the Chinese book, in chapter file order."""
    chapters: dict[str, list[Section]] = {}
    seen: dict[str, Counter] = {}
    for path in sorted((book / "zh").glob("*.md")):
        m = CHAPTER.match(path.name)
        chapter = m.group(1) if m else path.stem
        chap_no = str(int(chapter[2:])) if m else ""
        text = read(path)
        secs = chapters.setdefault(chapter, [])
        counts = seen.setdefault(chapter, Counter())
        current_level, current_number = None, ""
        for start, level, title in headings(text):
            num = NUMBER.match(title)
            number = num.group(1) if num else None
            nested = current_level is not None and level > current_level
            if (number and nested and number.split(".")[0] != chap_no
                    and not number.startswith(current_number + ".")):
                number = None          # restarted local numbering: belongs to the current section
            if number is None and nested:
                continue               # unnumbered heading nested under a section: part of it
            name = number or re.sub(r"[#*&;\s]+|emsp", "", title)
            counts[name] += 1
            qid = f"{chapter}/{name}" + (f"~{counts[name]}" if counts[name] > 1 else "")
            bare = title[num.end():].strip() if (num and number) else title
            if secs and secs[-1].source == f"zh/{path.name}":
                secs[-1].end = start
            secs.append(Section(qid, f"zh/{path.name}", start, len(text), bare))
            current_level, current_number = level, number or ""
    return chapters


def bigrams(s: str) -> set[str]:
    s = re.sub(r"[\W_]+", "", s.lower())
    return {s[i:i + 2] for i in range(len(s) - 1)}


def jaccard(a: str, b: str) -> float:
    x, y = bigrams(a), bigrams(b)
    return len(x & y) / len(x | y) if x and y else 0.0


def inside_markup(text: str, pos: int) -> bool:
    ls = text.rfind("\n", 0, pos) + 1
    le = text.find("\n", pos)
    le = len(text) if le < 0 else le
    for m in MARKUP.finditer(text, ls, le):
        if m.start() < pos < m.end():
            return True
    return False


def check(questions: Path, book: Path) -> int:
    chapters = book_sections(book)
    by_id = {s.id: s for secs in chapters.values() for s in secs}
    texts: dict[str, str] = {}
    errors: list[str] = []
    ids: set[str] = set()
    records = []
    for n, line in enumerate(read(questions).splitlines(), 1):
        if not line.strip():
            continue
        q = json.loads(line)
        records.append(q)
        where = f"line {n} ({q.get('id')})"
        allowed = {"id", "question", "lang", "relevant", "kind", "evidence", "split", "history"}
        if set(q) - allowed or not {"id", "question", "lang", "relevant", "kind"} <= set(q):
            errors.append(f"{where}: fields {sorted(q)}")
        if q["id"] in ids:
            errors.append(f"{where}: duplicate id")
        ids.add(q["id"])
        if q["lang"] not in ("zh", "en"):
            errors.append(f"{where}: lang {q['lang']!r}")
        has_cjk = bool(re.search(r"[\u4e00-\u9fff]", q["question"]))
        if (q["lang"] == "zh") != has_cjk:
            errors.append(f"{where}: lang {q['lang']} but CJK={has_cjk}")
        if q["kind"] not in KINDS:
            errors.append(f"{where}: kind {q['kind']!r}")
        rel = q["relevant"]
        if (not rel) != (q["kind"] in ("offtopic", "nearby")):
            errors.append(f"{where}: kind {q['kind']} with relevant {rel}")
        if not rel:
            if q.get("evidence"):
                errors.append(f"{where}: evidence on an unanswerable question")
            continue
        gold = []
        for r in rel:
            if r not in by_id:
                errors.append(f"{where}: unknown section {r}")
            else:
                gold.append(by_id[r])
                sim = jaccard(q["question"], by_id[r].title)
                if sim > 0.5:
                    errors.append(f"{where}: too close to heading of {r} "
                                  f"({sim:.2f}: {by_id[r].title!r})")
        ev = q.get("evidence") or []
        if not 1 <= len(ev) <= 3:
            errors.append(f"{where}: {len(ev)} evidence spans")
        for e in ev:
            src = e["source"]
            if src not in texts:
                p = book / src
                if not p.is_file():
                    errors.append(f"{where}: no file {src}")
                    continue
                texts[src] = read(p)
            t = texts[src]
            s, end = e["start"], e["end"]
            if t[s:end] != e["text"]:
                errors.append(f"{where}: span {s}:{end} of {src} is {t[s:end]!r}")
            if not any(g.source == src and g.start <= s and end <= g.end for g in gold):
                errors.append(f"{where}: span {s}:{end} not inside gold sections {rel}")
            if any(a <= s < b for a, b in fenced(t)):
                errors.append(f"{where}: span {s}:{end} lies in a code block")
            if inside_markup(t, s) or inside_markup(t, end):
                errors.append(f"{where}: span {s}:{end} starts or ends inside markup")
            if FORBIDDEN.search(e["text"]):
                errors.append(f"{where}: span holds a tag/entity/zero-width char: {e['text']!r}")
            if e["text"].count("**") % 2 or e["text"].count("$") % 2:
                errors.append(f"{where}: span cuts bold or math markup: {e['text']!r}")
            if e["text"] != e["text"].strip() or not e["text"]:
                errors.append(f"{where}: span has outer whitespace or is empty")
    for e in errors:
        print("error:", e)
    answerable = [q for q in records if q["relevant"]]
    print(f"{len(records)} questions, {len(answerable)} answerable, "
          f"{len(records) - len(answerable)} unanswerable")
    chap = Counter(sorted({r.split('/')[0] for r in q["relevant"]}).__iter__().__next__()
                   for q in answerable)
    print("by chapter:", dict(sorted(chap.items())))
    print("by lang:", dict(Counter(q["lang"] for q in records)))
    print("by kind:", dict(sorted(Counter(q["kind"] for q in records).items())))
    print("answerable by chapter x lang:",
          dict(sorted(Counter((q["relevant"][0].split('/')[0], q["lang"])
                              for q in answerable).items())))
    return 1 if errors else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("questions", nargs="?", default=ROOT / "eval" / "book_questions_part2.jsonl",
                    type=Path)
    ap.add_argument("--book", type=Path,
                    default=ROOT / "book" if (ROOT / "book" / "zh").is_dir() else DEFAULT_BOOK)
    ap.add_argument("--sections", metavar="CHAPTER", help="list the section ids of a chapter")
    a = ap.parse_args()
    if a.sections:
        for s in book_sections(a.book).get(a.sections, []):
            print(f"{s.id}\t{s.source}\t{s.start}-{s.end}\t{s.title}")
        return 0
    return check(a.questions, a.book)


if __name__ == "__main__":
    sys.exit(main())
