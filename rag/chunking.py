"""Split sections into bounded chunks at paragraph, list-item and sentence boundaries (pure functions)."""

from __future__ import annotations

import re

from .types import Chunk, Section

MAX_CHARS = 600

_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)、])\s+")
_HEADING_LINE = re.compile(r"^#{1,6}\s")
# A sentence ends after Chinese terminal punctuation (。！？；), or ! ? . before a space, with any
# closing quotes/brackets. An English ";" does not end a sentence.
_SENTENCE_END = re.compile(r"(?:[。！？；]+|[!?]+|\.)[”’」』）)\]]*(?=\s|$|[^\x00-\x7f])|[。！？；]+[”’」』）)\]]*")


def split_blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Paragraphs and list items of text[start:end] as trimmed [s, e) spans."""
    blocks: list[list[int]] = []
    pos = start
    open_block = False
    for line in text[start:end].splitlines(keepends=True):
        s, e = pos, pos + len(line.rstrip("\r\n"))
        pos += len(line)
        stripped = line.strip()
        if not stripped:
            open_block = False
            continue
        lead = len(line) - len(line.lstrip())
        if not open_block or _LIST_ITEM.match(line) or _HEADING_LINE.match(line):
            blocks.append([s + lead, e])
            open_block = True
        else:
            blocks[-1][1] = e
    return [(s, _rtrim(text, s, e)) for s, e in blocks]


def split_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentences of text[start:end] (ending at 。！？； or . ! ? before a space), as trimmed [s, e) spans."""
    spans = []
    s = start
    for m in _SENTENCE_END.finditer(text, start, end):
        spans.append((s, m.end()))
        s = m.end()
    spans.append((s, end))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        e = _rtrim(text, s, e)
        if s < e:
            out.append((s, e))
    return out


def _rtrim(text: str, s: int, e: int) -> int:
    while e > s and text[e - 1].isspace():
        e -= 1
    return e


def _pack(spans: list[tuple[int, int]], max_chars: int) -> list[tuple[int, int]]:
    """Greedily join consecutive spans while the joined span stays within max_chars."""
    packed: list[tuple[int, int]] = []
    for s, e in spans:
        if packed and e - packed[-1][0] <= max_chars:
            packed[-1] = (packed[-1][0], e)
        else:
            packed.append((s, e))
    return packed


def chunk_section(text: str, section: Section, max_chars: int = MAX_CHARS) -> list[tuple[int, int]]:
    """[s, e) spans of one section: the whole section if short, else packed blocks/sentences."""
    pieces = []
    for s, e in split_blocks(text, section.start, section.end):
        pieces.extend(split_sentences(text, s, e) if e - s > max_chars else [(s, e)])
    return _pack(pieces, max_chars)


def chunk_sections(text: str, sections: list[Section], lang: str, first_id: int = 0,
                   max_chars: int = MAX_CHARS) -> list[Chunk]:
    """All chunks of one file's sections, numbered from first_id."""
    chunks = []
    for sec in sections:
        for s, e in chunk_section(text, sec, max_chars):
            chunks.append(Chunk(id=first_id + len(chunks), section=sec.id, title=sec.title,
                                source=sec.source, start=s, end=e, text=text[s:e], lang=lang))
    return chunks


_MARKER = re.compile(r"(?:#{1,6}\s+|\s*(?:[-*+]|\d+[.)、])\s+)")


def sentence_spans(text: str, section: Section) -> list[tuple[int, int, int, bool]]:
    """(start, end, block number, in a list item) of each sentence of a section, markers left out."""
    out = []
    for b, (s, e) in enumerate(split_blocks(text, section.start, section.end)):
        m = _MARKER.match(text, s, e)
        item = bool(m) and not text[s:m.end()].lstrip().startswith("#")
        out.extend((a, z, b, item) for a, z in split_sentences(text, m.end() if m else s, e))
    return out


def align_sentences(ours: list[tuple[int, int]], theirs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each of our sentences, the span of the translated block's sentences at the same relative place.

    Both lists are the sentences of one block and its translation. With as many on both sides they
    pair one to one; otherwise each of ours takes the sentences of theirs whose middle falls inside
    its share of the block (by characters), or the nearest one.
    """
    if len(ours) == len(theirs):
        return list(theirs)

    def shares(spans):
        total = sum(e - s for s, e in spans) or 1
        out, pos = [], 0
        for s, e in spans:
            out.append((pos / total, (pos + e - s) / total))
            pos += e - s
        return out

    mids = [(a + b) / 2 for a, b in shares(theirs)]
    aligned = []
    for a, b in shares(ours):
        inside = [i for i, m in enumerate(mids) if a <= m < b] or \
                 [min(range(len(mids)), key=lambda i: abs(mids[i] - (a + b) / 2))]
        aligned.append((theirs[inside[0]][0], theirs[inside[-1]][1]))
    return aligned


def align_blocks(text: str, section: Section, original_text: str, original: Section) -> list[tuple[int, int]] | None:
    """For each block of a translated section, the [s, e) span of its original block; None if they differ in number."""
    ours = split_blocks(text, section.start, section.end)
    theirs = split_blocks(original_text, original.start, original.end)
    return theirs if len(ours) == len(theirs) else None
