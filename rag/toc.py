"""English section titles shipped with a corpus (`toc.en.tsv`), joined to sections by file and line.

The file has a header `chapter file line number zh en` and one row per heading of the corpus's
Chinese files (book/toc.en.tsv is the reviewed table of the whole book). A row names its heading
by the file (relative to the corpus directory) and the heading's 1-based line; the section that
heading opens gets the row's `en` as `title_en`. Rows whose heading opens no section (an
unnumbered heading with no text) are not used. The aligned title pairs also teach a small table of
word translations (`learn_word_translations`), with which English questions are matched by BM25
against Chinese text.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from .text import normalize
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


WORD_P_MIN = 0.5  # a learned translation's least probability p(Chinese word | English word)
WORD_MIN_TITLES = 2  # an English word is translated only if it occurs in at least this many titles
_EM_ROUNDS = 15


def _ibm1(pairs: list[tuple[list[str], list[str]]]) -> dict[str, dict[str, float]]:
    """IBM Model 1 by EM: t[s][t'] = p(target word t' | source word s), with a NULL source word."""
    t: dict[str, dict[str, float]] = {}
    for src, tgt in pairs:
        for s in (*src, None):
            t.setdefault(s, {}).update({w: 1.0 for w in tgt})
    t = {s: {w: 1.0 / len(ws) for w in ws} for s, ws in t.items()}
    for _ in range(_EM_ROUNDS):
        count: dict[str, dict[str, float]] = {}
        for src, tgt in pairs:
            for w in tgt:
                probs = [(s, t[s][w]) for s in (*src, None)]
                z = sum(p for _, p in probs)
                for s, p in probs:
                    count.setdefault(s, {})[w] = count.get(s, {}).get(w, 0.0) + p / z
        t = {s: {w: c / sum(ws.values()) for w, c in ws.items()} for s, ws in count.items()}
    return t


def learn_word_translations(pairs: list[tuple[str, str]], tokenize) -> dict[str, str]:
    """English word (as `tokenize` stems it) -> Chinese word, learned from aligned title pairs.

    IBM Model 1 (EM over the pairs' words, numbers and words with digits left out) in both directions; a pair of words
    is kept only when each is the other's most probable translation, p(zh | en) >= WORD_P_MIN and
    the English word occurs in at least WORD_MIN_TITLES titles (precision first: a wrong pair
    sends an English question to the wrong section). From the book's 909 reviewed titles: 225
    pairs (feature -> 特征, decay -> 衰减, covariance -> 协方差 ...).
    """
    from .lang import CJK_CHAR

    toks = []
    for zh, en in pairs:
        z = [w for w in tokenize(normalize(zh)) if CJK_CHAR.match(w)]
        e = [w for w in tokenize(normalize(en)) if w.isascii() and w.isalpha()]
        if z and e:
            toks.append((e, z))
    forward = _ibm1(toks)  # p(zh | en)
    backward = _ibm1([(z, e) for e, z in toks])  # p(en | zh)
    titles: dict[str, int] = {}
    for e, _ in toks:
        for w in set(e):
            titles[w] = titles.get(w, 0) + 1
    out = {}
    for en, probs in forward.items():
        if en is None or titles[en] < WORD_MIN_TITLES:
            continue
        zh, p = max(probs.items(), key=lambda kv: (kv[1], kv[0]))
        back = backward.get(zh, {})
        if p >= WORD_P_MIN and back and max(back.items(), key=lambda kv: (kv[1], kv[0]))[0] == en:
            out[en] = zh
    return dict(sorted(out.items()))
