"""English section titles shipped with a corpus (`toc.en.tsv`), joined to sections by file and line.

The file has a header `chapter file line number zh en` and one row per heading of the corpus's
Chinese files (book/toc.en.tsv is the reviewed table of the whole book). A row names its heading
by the file (relative to the corpus directory) and the heading's 1-based line; the section that
heading opens gets the row's `en` as `title_en`. Rows whose heading opens no section (an
unnumbered heading with no text) are not used. The aligned title pairs also teach word
translations (see wordalign.py).
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from .types import RagError, Section

TOC_FILE = "toc.en.tsv"
COLUMNS = ["chapter", "file", "line", "number", "zh", "en"]


def read_toc(path: Path) -> dict[tuple[str, int], str]:
    """(file, heading line) -> English title; an absent file is an empty table."""
    if not path.is_file():
        return {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if reader.fieldnames != COLUMNS:
            raise RagError(f"{path}: expected the header {' '.join(COLUMNS)} (tab-separated), "
                           f"got {reader.fieldnames}. Fix the file or remove it.")
        out = {}
        for n, row in enumerate(reader, 2):
            if not (row.get("line") or "").isdigit() or not (row.get("en") or "").strip():
                raise RagError(f"{path}:{n}: expected a line number and an English title, got {row}.")
            out[(row["file"], int(row["line"]))] = row["en"].strip()
    return out


def heading_line(text: str, section: Section) -> int:
    """The 1-based line of the heading that opens a section (its body starts on the next line)."""
    return text.count("\n", 0, section.start)


def with_english_titles(sections: list[Section], texts: dict[str, str],
                        toc: dict[tuple[str, int], str]) -> list[Section]:
    """The sections, each with `title_en` from the table where its heading has a row."""
    if not toc:
        return sections
    out = []
    for s in sections:
        en = toc.get((s.source, heading_line(texts[s.source], s)))
        out.append(replace(s, title_en=en) if en else s)
    return out


def read_title_pairs(path: Path) -> list[tuple[str, str]]:
    """The table's (Chinese title, English title) pairs, in file order; an absent file has none."""
    if not path.is_file():
        return []
    read_toc(path)  # checks the header and every row
    with path.open(encoding="utf-8", newline="") as f:
        return [(row["zh"], row["en"]) for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]

