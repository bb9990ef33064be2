"""Read markdown chapter files into sections with exact character offsets (pure functions)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from .types import RagError, Section

log = logging.getLogger(__name__)

_HEADING = re.compile(r"^(#{1,4})[ \t]+(.+?)[ \t]*$", re.M)
_NUMBERED = re.compile(r"^(\d+(?:\.\d+)+)\.?\s*(.*)$")
# A table-of-contents line: a list item that starts with a section number.
_TOC_LINE = re.compile(r"^\s*[-*]\s+(\d+(?:\.\d+)+)\b")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def read_text(path: Path) -> str:
    """Return a chapter file's text exactly as stored (no newline translation)."""
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
    if not text.strip():
        raise RagError(f"{path} is empty. Add the chapter text or remove the file from the corpus.")
    return text


def file_language(name: str, text: str) -> str:
    """'en' for `*.en.md` or text without Chinese characters, else 'zh'."""
    suffixes = Path(name).suffixes
    if len(suffixes) >= 2 and suffixes[-2] in (".en", ".zh"):
        return suffixes[-2][1:]
    return "zh" if _CJK.search(text) else "en"


def parse_sections(text: str, source: str) -> list[Section]:
    """Split a markdown chapter into sections at its headings.

    A numbered heading (`## 10.3 ...`) starts section "10.3". An unnumbered heading nested
    under a numbered one belongs to it (a sub-block); an unnumbered heading elsewhere starts a
    section named by its title. Empty bodies and tables of contents are not sections. A file
    without headings is one section named after the file.
    """
    headings = list(_HEADING.finditer(text))
    if not headings:
        log.warning("%s has no markdown headings; indexing it as one section", source)
        stem = Path(source).name.split(".")[0]
        return [Section(id=stem, title=stem, source=source, start=0, end=len(text))]

    numbers = {m.group(1) for h in headings if (m := _NUMBERED.match(h.group(2)))}
    sections: list[Section] = []
    current: dict | None = None  # the open section: id, title, level, start
    for i, h in enumerate(headings):
        level, heading = len(h.group(1)), h.group(2)
        body_end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        numbered = _NUMBERED.match(heading)
        if not numbered and current and current["numbered"] and level > current["level"]:
            current["end"] = body_end  # sub-block of the open numbered section
            continue
        if current:
            sections.append(_close(current, text, source, numbers))
        if numbered:
            sid, title = numbered.group(1), numbered.group(2).strip() or numbered.group(1)
        else:
            sid = title = heading.strip()
            sid = sid.rstrip("：:").strip() or sid
        current = {"id": sid, "title": title, "level": level, "numbered": bool(numbered),
                   "start": h.end() + 1, "end": body_end}
    sections.append(_close(current, text, source, numbers))
    return [s for s in sections if s is not None]


def _close(cur: dict, text: str, source: str, numbers: set[str]) -> Section | None:
    start, end = min(cur["start"], len(text)), cur["end"]
    body = text[start:end]
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if not lines:
        return None
    toc = [_TOC_LINE.match(ln) for ln in lines]
    if all(m and m.group(1) in numbers for m in toc):
        return None  # a table of contents repeats the headings; it is not content
    return Section(id=cur["id"], title=cur["title"], source=source, start=start, end=end)


def find_chapters(corpus_dir: Path) -> list[Path]:
    """The markdown files of a corpus directory, in name order."""
    if not corpus_dir.is_dir():
        raise RagError(f"corpus directory {corpus_dir} does not exist. Pass --corpus DIR with your .md chapters.")
    files = sorted(p for p in corpus_dir.iterdir() if p.suffix == ".md" and p.is_file())
    if not files:
        raise RagError(f"{corpus_dir} has no .md files. Put chapters there as markdown with headings.")
    return files
