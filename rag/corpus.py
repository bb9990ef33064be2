"""Read markdown chapter files into sections and blocks with exact character offsets.

Files are parsed with markdown-it-py (CommonMark, tables, dollar math); its token line maps
give every block's span in the file as read (no newline translation), so `file_text[start:end]`
is always the text itself. A heading inside a code fence, a block quote or a list is not a
section heading.

Section ids follow the shared contract: a numbered heading is its number (`5.3`), a number
reused in a chapter gets `~2`, `~3`..., local numbering restarted under a deeper section and
unnumbered headings nested under a numbered one belong to it, other unnumbered headings are
named by their title. Everything unusual is reported as a `Warning` (see `Report`).
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin

from .lang import CJK_CHAR
from .text import normalize
from .types import Block, RagError, Section

log = logging.getLogger(__name__)

_NUMBERED = re.compile(r"(\d{1,4}(?:\.\d{1,4})+)\.?(?:\s+|(?=\D)|$)")
_CHAPTER_FILE = re.compile(r"^(ch\d\d)(?:_|\.|$)", re.I)
_TOC_LINE = re.compile(r"^\s*[-*+]\s+(\d+(?:\.\d+)+)\b")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_REFERENCES = re.compile(r"reference|参考文献|参考资料|bibliography|further reading|相关文献|引用文献", re.I)
_TASK_ITEM = re.compile(r"^\s*[-*+]\s+\[[ xX]\]")
_LANG_DIRS = ("zh", "en")
_NOT_CHAPTERS = ("readme.md", "notice.md", "license.md")


@dataclass
class Report:
    """What a build met: warnings by kind, each with its first examples."""

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    MAX_EXAMPLES = 3

    def warn(self, kind: str, message: str) -> None:
        log.info("%s", message)  # all of them are in the build report (`rag build`, manifest.json)
        self.counts[kind] += 1
        ex = self.examples.setdefault(kind, [])
        if len(ex) < self.MAX_EXAMPLES:
            ex.append(message)

    def to_dict(self) -> dict:
        return {kind: {"count": n, "examples": self.examples[kind]} for kind, n in sorted(self.counts.items())}


def read_text(path: Path) -> str:
    """Return a chapter file's text exactly as stored (no newline translation; a BOM is kept)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RagError(f"cannot read {path}: {e.strerror}. Check the path and its permissions.") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RagError(
            f"{path} is not UTF-8 text (bad byte at offset {e.start}). Re-save it as UTF-8."
        ) from None
    if not text.replace("\ufeff", "").strip():
        raise RagError(f"{path} is empty. Add the chapter text or remove the file from the corpus.")
    return text


def chapter_id(source: str) -> str:
    """`chNN` from a `chNN_...` file name (any folder), else the file stem without language suffix."""
    name = PurePosixPath(source).name
    m = _CHAPTER_FILE.match(name)
    if m:
        return m.group(1).lower()
    for suffix in (".zh.md", ".en.md", ".md"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def file_language(name: str, text: str) -> str:
    """The folder (`zh/`, `en/`), the suffix (`.en.md`), else 'zh' if the text has Chinese characters."""
    parts = PurePosixPath(name).parts
    for folder in parts[:-1]:
        if folder in _LANG_DIRS:
            return folder
    suffixes = PurePosixPath(name).suffixes
    if len(suffixes) >= 2 and suffixes[-2] in (".en", ".zh"):
        return suffixes[-2][1:]
    return "zh" if CJK_CHAR.search(text) else "en"


_MD = MarkdownIt("commonmark", {"html": True}).enable("table").use(dollarmath_plugin, allow_space=True,
                                                                   allow_digits=True, double_inline=True)


class Lines:
    """Character offsets of the lines of a text, split as markdown-it splits them (CRLF, CR, LF)."""

    def __init__(self, text: str):
        self.starts = [0]
        self.ends = []
        for m in _NEWLINE.finditer(text):
            self.ends.append(m.start())
            self.starts.append(m.end())
        self.ends.append(len(text))

    def span(self, first: int, last: int) -> tuple[int, int]:
        """[s, e) of lines first..last-1, without the final newline."""
        last = min(max(last, first + 1), len(self.ends))
        return self.starts[min(first, len(self.starts) - 1)], self.ends[last - 1]

    def start(self, line: int) -> int:
        return self.starts[line] if line < len(self.starts) else self.ends[-1]


@dataclass(frozen=True)
class Heading:
    level: int
    title: str  # normalized
    start: int  # the heading line(s)
    end: int
    body: int  # where the text after it starts


def parse_blocks(text: str) -> tuple[list[Heading], list[Block]]:
    """The section headings (top level only) and all leaf blocks of a markdown text, in order."""
    lines = Lines(text)
    tokens = _MD.parse(text.replace("\ufeff", " "))  # a BOM is not text; same length keeps offsets
    headings, blocks = [], []
    context: list[str] = []  # enclosing list items / block quotes
    table_head = None  # an indented code block of tab-separated cells: maybe a table's header row
    for i, t in enumerate(tokens):
        if t.type in ("list_item_open", "blockquote_open"):
            context.append(t.type)
        elif t.type in ("list_item_close", "blockquote_close"):
            context.pop()
        if t.map is None:
            continue
        s, e = lines.span(*t.map)
        if t.type == "heading_open":
            title = normalize(tokens[i + 1].content)
            blocks.append(Block("heading", s, e))
            if not context and title:
                headings.append(Heading(int(t.tag[1]), title, s, e, lines.start(t.map[1])))
        elif t.type == "paragraph_open":
            kind = "item" if "list_item_open" in context else "quote" if context else "paragraph"
            if blocks and blocks[-1] is table_head and s == table_head.end + 1 and "\t" in text[s:lines.ends[t.map[0]]]:
                # A tab-indented header row right above tab-separated rows (§10.4 of the chapter):
                # one table, although CommonMark reads the indented header line as code.
                head_start = table_head.start + len(text[table_head.start:table_head.end]) - \
                    len(text[table_head.start:table_head.end].lstrip())
                blocks[-1] = Block(kind, head_start, e)
            else:
                blocks.append(Block(kind, s, e))
        elif t.type == "tr_open":
            blocks.append(Block("row", s, e))
        elif t.type == "code_block" and all("\t" in line.strip() for line in text[s:e].splitlines()):
            blocks.append(Block("code", s, e))
            table_head = blocks[-1]
        elif t.type == "code_block" and CJK_CHAR.search(text, s, e):
            # Chinese prose indented by a tab (the book indents paragraphs so): CommonMark reads
            # an indented block as code, but code is not written in Chinese.
            blocks.append(Block("paragraph", s, e))
        elif t.type in ("fence", "code_block"):
            blocks.append(Block("code", s, e))
        elif t.type == "html_block":
            blocks.append(Block("html", s, e))
        elif t.type in ("math_block", "math_block_label"):
            blocks.append(Block("math", s, e))
    return headings, [b for b in blocks if b.end > b.start]


def parse_sections(text: str, source: str, report: Report | None = None,
                   seen: dict[str, tuple[str, int]] | None = None,
                   parsed: tuple[list[Heading], list[Block]] | None = None) -> list[Section]:
    """Split a markdown chapter into sections (see the module doc).

    `seen` maps the ids already used in this chapter and language (earlier files of the same
    chapter) to their first heading and count, so a reused number gets `~2`; `report` collects
    the warnings.
    """
    report = report if report is not None else Report()
    seen = seen if seen is not None else {}
    chapter = chapter_id(source)
    headings, blocks = parsed or parse_blocks(text)
    if not headings:
        report.warn("no headings", f"{source} has no markdown headings; indexing it as one section")
        stem = PurePosixPath(source).name.split(".")[0]
        return [Section(id=stem, title=stem, source=source, start=0, end=len(text), chapter=chapter)]
    first_text = next((b for b in blocks if b.kind != "heading" and text[b.start:b.end].strip().upper() != "[TOC]"),
                      None)
    if first_text is not None and first_text.start < headings[0].start:
        report.warn("text before first heading",
                     f"{source}: text before its first heading is not indexed ({text[first_text.start:first_text.start + 40]!r})")

    numbers = [m.group(1) for h in headings if (m := _NUMBERED.match(h.title))]
    chapter_number = str(int(chapter[2:])) if _CHAPTER_FILE.match(chapter + "_") else \
        (Counter(n.split(".")[0] for n in numbers).most_common(1) or [(None, 0)])[0][0]
    number_set = set(numbers)

    # Group headings into sections: a heading opens a section unless it is nested under an open
    # numbered section and is unnumbered or numbered locally (not in this chapter's numbering).
    groups: list[list[Heading]] = []
    for h in headings:
        m = _NUMBERED.match(h.title)
        local = m is not None and m.group(1).split(".")[0] != chapter_number
        if groups and _NUMBERED.match(groups[-1][0].title) and h.level > groups[-1][0].level and (not m or local):
            groups[-1].append(h)
            continue
        groups.append([h])

    starts = [b.start for b in blocks]
    sections: list[Section] = []
    parents: list[tuple[int, str]] = []  # (level, title) of enclosing headings that have no text
    for n, group in enumerate(groups):
        head = group[0]
        end = groups[n + 1][0].start if n + 1 < len(groups) else len(text)
        while parents and parents[-1][0] >= head.level:
            parents.pop()
        m = _NUMBERED.match(head.title)
        if m:
            sid, title = m.group(1), head.title[m.end():].strip() or m.group(1)
        else:
            title = head.title
            sid = title.rstrip("：:").strip() or title
        body = [b for b in blocks[bisect_left(starts, head.body):bisect_left(starts, end)] if b.kind != "heading"]
        body_text = [ln for b in body for ln in _NEWLINE.split(text[b.start:b.end]) if ln.strip()]
        toc = [_TOC_LINE.match(ln) for ln in body_text]
        if body_text and all(m_ and m_.group(1) in number_set for m_ in toc):
            report.warn("table of contents", f"{source}: the list under {head.title!r} repeats the headings; skipped")
            body_text = []
        if m and m.group(1).split(".")[0] != chapter_number:
            report.warn("number outside chapter", f"{source}: §{sid} {title!r} is numbered outside chapter "
                                                  f"{chapter_number}; kept as {chapter}/{sid}")
        # Every numbered heading takes its id, so a reused number is reported even when one of the
        # two has no text; an unnumbered heading only when it is a section.
        if not body_text and not m:
            parents.append((head.level, head.title))
            continue
        if sid in seen:
            first, count = seen[sid]
            seen[sid] = (first, count + 1)
            new = f"{sid}~{count + 1}"
            report.warn("reused number" if m else "reused heading", f"{source}: {chapter}/{sid} is used twice: {first!r} and {head.title!r}; "
                                         f"the later one is {chapter}/{new}")
            sid = new
        else:
            seen[sid] = (head.title, 1)
        if not body_text:
            parents.append((head.level, head.title))
            continue
        kind = "text"
        if _REFERENCES.search(title):
            kind = "references"
        elif "TODO" in title.upper() or sum(bool(_TASK_ITEM.match(ln)) for ln in body_text) * 2 >= len(body_text):
            kind = "checklist"
        sections.append(Section(id=sid, title=title, source=source, start=head.body, end=end, chapter=chapter,
                                kind=kind, parents=tuple(t for _, t in parents)))
    if not sections:
        report.warn("only headings", f"{source} has {len(headings)} headings and no text under them; "
                                     f"nothing to index")
    return sections


def find_chapters(corpus_dir: Path) -> list[Path]:
    """The markdown files of a corpus directory and its subfolders, in name order.

    README.md, NOTICE.md and LICENSE.md describe a corpus (its source, its licence); they are not chapters.
    """
    if not corpus_dir.is_dir():
        raise RagError(f"corpus directory {corpus_dir} does not exist. Pass --corpus DIR with your .md chapters.")
    files = sorted((p for p in corpus_dir.rglob("*.md") if p.is_file() and p.name.lower() not in _NOT_CHAPTERS),
                   key=lambda p: p.relative_to(corpus_dir).as_posix())
    if not files:
        raise RagError(f"{corpus_dir} has no .md files. Put chapters there as markdown with headings.")
    return files


@dataclass
class Corpus:
    """A corpus directory read once: sections, chunks, sentences, texts and the build's warnings.

    `files` is the manifest's record of the files (sha256, language), keyed by path relative to
    the corpus directory (`zh/ch05_....md`, or the file name for a flat corpus).
    """

    sections: list[Section]
    chunks: list
    sentences: list[dict]
    files: dict
    texts: dict[str, str]
    report: Report


def _on_heading_line(text: str, start: int) -> bool:
    """Whether offset start is on a heading line (`# ...`) of text."""
    return text[text.rfind("\n", 0, start) + 1:start].lstrip().startswith("#")


def read_corpus(corpus_dir: Path, max_chars: int | None = None) -> Corpus:
    """Read, parse and chunk every chapter file of a corpus directory (each file read once)."""
    import hashlib

    from .chunking import MAX_CHARS, chunk_sections, sentence_spans

    max_chars = max_chars or MAX_CHARS
    report = Report()
    sections, chunks, sentences, files, texts = [], [], [], {}, {}
    seen: dict[tuple[str, str], dict] = {}
    for path in find_chapters(corpus_dir):
        source = path.relative_to(corpus_dir).as_posix()
        text = texts[source] = read_text(path)
        lang = file_language(source, text)
        chapter = chapter_id(source)
        parsed = parse_blocks(text)
        file_sections = parse_sections(text, source, report, seen.setdefault((chapter, lang), {}), parsed)
        blocks = parsed[1]
        starts = [b.start for b in blocks]
        sections += file_sections
        chunks += chunk_sections(text, file_sections, blocks, lang, first_id=len(chunks), max_chars=max_chars)
        for sec in file_sections:
            for a, z, block, item in sentence_spans(text, sec, blocks, starts):
                sentences.append({"source": source, "chapter": chapter, "section": sec.id, "title": sec.title,
                                  "lang": lang, "kind": sec.kind, "start": a, "end": z, "text": text[a:z],
                                  "block": block, "item": item, "heading": _on_heading_line(text, a)})
        files[source] = {"sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "lang": lang}
    if not sections:
        raise RagError(f"{corpus_dir} has no text under its headings. Add chapter text to the .md files.")
    return Corpus(sections, chunks, sentences, files, texts, report)
