"""Split sections into bounded chunks and quotable sentences (pure functions, linear time).

Both work on the blocks markdown-it found (corpus.parse_blocks): a chunk packs whole blocks
(a long one split at sentences or lines); a sentence lies inside one text block, never starts
or ends on whitespace, a list/quote/heading marker or an HTML entity, never ends inside math,
inline code or a link, and never contains an image link, an HTML tag, a figure's caption line or a
zero-width character (those cut a block into separate pieces; markup a cut falls in is left out whole), except a
zero-width character inside math, code, a link or bold, which is part of it and cuts nothing. Code, HTML and math blocks are chunked (searchable)
but give no sentences.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from .text import entity_end, is_space, markup_spans, normalize, protected_spans
from .types import Block, Chunk, Section

MAX_CHARS = 600

# A sentence ends after Chinese terminal punctuation (。！？；), or ! ? . before a space, the end
# or a non-ASCII character, with any closing quotes/brackets/bold markers. An English ";" does not
# end one.
_END = re.compile(r"[。！？；]+[”’」』）)\]*]*|[!?.]+[”’」』）)\]*]*")
_MARKER = {
    "item": re.compile(r"[ \t]*(?:[-*+]|\d{1,9}[.)、])(?:[ \t]+\[[ xX]\])?[ \t]*"),
    "quote": re.compile(r"(?:[ \t]*>)+[ \t]*"),
    "heading": re.compile(r"[ \t]*#{1,6}(?=\s|$)[ \t]*"),
    "row": re.compile(r"[ \t]*\|?"),
}
_TEXT_KINDS = ("paragraph", "item", "quote", "heading", "row")
# A line that labels a figure ("图8.1.19", "Figure 4.9 GoogLeNet network structure"; no sentence
# punctuation after its number) belongs to the figure, which answers do not show: it is left out
# of sentences, so a quote does not open with it. Chunks keep it (it is searchable). A table's
# caption ("表5.2 卷积提取的特征类型") stays: answers quote tables, and a list answer brings the rows
# after it.
_CAPTION = re.compile(r"(?:图|Figure|Fig\.)[ \t]*\d+(?:[.\-–]\d+)*[^\r\n，,。:：;；!?！？]{0,40}")
_LINE = re.compile(r"[^\r\n]+")
_WORD = re.compile(r"\w")


def section_blocks(blocks: list[Block], section: Section, starts: list[int] | None = None) -> list[Block]:
    """The blocks inside a section's body (blocks are in file order; pass their starts to save time)."""
    starts = starts if starts is not None else [b.start for b in blocks]
    return blocks[bisect_left(starts, section.start):bisect_left(starts, section.end)]


def split_sentences(text: str, start: int, end: int, protected: list[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """Sentences of text[start:end] as trimmed [s, e) spans; no end inside a protected span."""
    spans, s, p = [], start, 0
    for m in _END.finditer(text, start, end):
        e = m.end()
        if m.group(0)[0] not in "。！？；":
            nxt = text[e] if e < end else ""
            if nxt and not nxt.isspace() and ord(nxt) < 128:
                continue
        while p < len(protected) and protected[p][1] <= m.start():
            p += 1
        if p < len(protected) and protected[p][0] < e < protected[p][1]:
            continue  # ends inside math, code, a link or bold (at its very end is fine)
        spans.append((s, e))
        s = e
    spans.append((s, end))
    return [t for a, z in spans if (t := _trim(text, a, z))]


def _trim(text: str, s: int, e: int) -> tuple[int, int] | None:
    """[s, e) without leading/trailing whitespace, zero-width characters and HTML entities."""
    while s < e:
        if is_space(text, s):
            s += 1
        elif (n := entity_end(text, s, e)) > s:
            s = n
        else:
            break
    while e > s:
        if is_space(text, e - 1):
            e -= 1
        elif text[e - 1] == ";" and (a := text.rfind("&", max(s, e - 40), e)) >= 0 and entity_end(text, a, e) == e:
            e = a
        else:
            break
    return (s, e) if s < e else None


def block_sentences(text: str, block: Block) -> list[tuple[int, int]]:
    """The quotable sentences of one block (see the module doc)."""
    if block.kind not in _TEXT_KINDS:
        return []
    s, e = block.start, block.end
    marker = _MARKER.get(block.kind)
    if marker and (m := marker.match(text, s, e)):
        s = m.end()
    if block.kind == "heading":
        e = _heading_end(text, s, e)
    elif block.kind == "row":
        t = _trim(text, s, e)
        e = t[1] if t else s
        e = e - 1 if e > s and text[e - 1] == "|" else e
    protected = protected_spans(text, s, e)
    pieces, p = [], s
    for a, z in _widen(sorted(markup_spans(text, s, e) + _captions(text, s, e)), protected):
        pieces.append((p, a))
        p = z
    pieces.append((p, e))
    if block.kind == "row":
        out = [t for a, z in pieces if (t := _trim(text, a, z))]
    else:
        out = [span for a, z in pieces if a < z for span in split_sentences(text, a, z, protected)]
    return [(a, z) for a, z in out if _WORD.search(normalize(text[a:z]))]


def _captions(text: str, s: int, e: int) -> list[tuple[int, int]]:
    """The caption lines of text[s:e] (see _CAPTION), trimmed."""
    out = []
    for m in _LINE.finditer(text, s, e):
        t = _trim(text, *m.span())
        if t and _CAPTION.fullmatch(text, *t):
            out.append(t)
    return out


def _widen(cuts: list[tuple[int, int]], protected: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Cuts grown to the whole math/code/link span they fall in (`$1\\times1<ZWSP>$` is left out whole)."""
    out, p = [], 0
    for a, z in cuts:
        while p < len(protected) and protected[p][1] <= a:
            p += 1
        q = p
        while q < len(protected) and protected[q][0] < z:
            a, z = min(a, protected[q][0]), max(z, protected[q][1])
            q += 1
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], z))
        else:
            out.append((a, z))
    return out


def _heading_end(text: str, s: int, e: int) -> int:
    """The end of a heading's text: before a setext underline or closing #s."""
    nl = max(text.rfind("\n", s, e), text.rfind("\r", s, e))
    if nl >= 0 and text[nl + 1:e].strip(" \t=-") == "":
        e = nl
    t = _trim(text, s, e)
    if not t:
        return s
    e = t[1]
    h = e
    while h > s and text[h - 1] == "#":
        h -= 1
    return h if h == s or text[h - 1] in " \t" else e


def sentence_spans(text: str, section: Section, blocks: list[Block],
                   starts: list[int] | None = None) -> list[tuple[int, int, int, bool]]:
    """(start, end, block number, in a list item) of each sentence of a section."""
    out = []
    for b, block in enumerate(section_blocks(blocks, section, starts)):
        out.extend((a, z, b, block.kind == "item") for a, z in block_sentences(text, block))
    return out


def _pack(spans: list[tuple[int, int]], max_chars: int) -> list[tuple[int, int]]:
    """Greedily join consecutive spans while the joined span stays within max_chars."""
    packed: list[tuple[int, int]] = []
    for s, e in spans:
        if packed and e - packed[-1][0] <= max_chars:
            packed[-1] = (packed[-1][0], e)
        else:
            packed.append((s, e))
    return packed


def _lines(text: str, s: int, e: int) -> list[tuple[int, int]]:
    out, p = [], s
    for m in re.finditer(r"\r\n|\r|\n", text[s:e]):
        out.append((p, s + m.start()))
        p = s + m.end()
    out.append((p, e))
    return [t for a, z in out if (t := _trim(text, a, z))]


def chunk_section(text: str, section: Section, blocks: list[Block], max_chars: int = MAX_CHARS,
                  starts: list[int] | None = None) -> list[tuple[int, int]]:
    """[s, e) spans of one section: its blocks packed; a long block split at sentences or lines."""
    pieces = []
    for block in section_blocks(blocks, section, starts):
        t = _trim(text, block.start, block.end)
        if not t:
            continue
        if t[1] - t[0] <= max_chars:
            pieces.append(t)
        else:
            pieces.extend(split_sentences(text, *t) if block.kind in _TEXT_KINDS else _lines(text, *t))
    return _pack(pieces, max_chars)


def chunk_sections(text: str, sections: list[Section], blocks: list[Block], lang: str, first_id: int = 0,
                   max_chars: int = MAX_CHARS) -> list[Chunk]:
    """All chunks of one file's sections, numbered from first_id."""
    chunks = []
    starts = [b.start for b in blocks]
    for sec in sections:
        for s, e in chunk_section(text, sec, blocks, max_chars, starts):
            chunks.append(Chunk(id=first_id + len(chunks), section=sec.id, title=sec.title, source=sec.source,
                                start=s, end=e, text=text[s:e], lang=lang, chapter=sec.chapter))
    return chunks
