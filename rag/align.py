"""Pair a translation with its original: sections by number or content, sentences by content.

A translated chapter (the same chapter id in another language) is paired section by section:
an English section takes the Chinese section with its number when their contents agree, else the
most similar Chinese section of the chapter not taken by another (the book's translation shifts
numbers in places) if it is similar enough, else none. The English section then takes the Chinese section's id, so both
are one section for retrieval; an English section without an original keeps its own number with
`~en` when that number names another Chinese section.

Inside a pair, sentences are aligned by content, not position: paragraphs pair one to one when
both sides have as many, else the section is one paragraph; then a banded dynamic programme over
the two sentence lists allows 1-1, 1-2, 2-1 and skips, scoring embedding similarity plus agreement
of numbers and question marks. Time is linear in the number of sentences (the band is bounded).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace

import numpy as np

from .corpus import Report
from .types import Chunk, Section, section_key

# An English section keeps its number's Chinese section unless another one is this much closer.
SAME_NUMBER_MARGIN = 0.05
# Below this content similarity an English section has no original.
SECTION_FLOOR = 0.5
# A sentence pair scores its similarity minus this; below it, skipping both is better.
SKIP = 0.25
BAND = 12
_NUMBERS = re.compile(r"\d+(?:\.\d+)?")


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def pair_sections(sections: list[Section], sentences: list[dict], vectors: np.ndarray, titles: np.ndarray,
                  report: Report) -> dict[tuple[str, str], str | None]:
    """For each translated section (source, id): the id of its original section, or None.

    A section is compared by its title (vector, row for row with `sections`) and its content (the
    mean of its sentence vectors), equally weighted.
    """
    content: dict[tuple[str, str], np.ndarray] = {}
    rows: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, rec in enumerate(sentences):
        rows[(rec["source"], rec["section"])].append(i)
    for k, idx in rows.items():
        content[k] = _unit(vectors[idx].mean(axis=0))
    for sec, title in zip(sections, titles):
        k = (sec.source, sec.id)
        content[k] = _unit(content[k] + title) if k in content else title
    langs = {}
    for rec in sentences:
        langs[rec["source"]] = rec["lang"]
    by_chapter: dict[str, dict[str, list[Section]]] = defaultdict(lambda: defaultdict(list))
    for sec in sections:
        by_chapter[sec.chapter][langs.get(sec.source, "zh")].append(sec)
    out: dict[tuple[str, str], str | None] = {}
    for chapter, by_lang in by_chapter.items():
        originals = by_lang.get("zh", [])
        for lang, secs in by_lang.items():
            if lang == "zh" or not originals:
                continue
            orig_ids = [o.id for o in originals]
            orig_vecs = np.array([content.get((o.source, o.id), np.zeros(vectors.shape[1])) for o in originals])
            # First the sections whose number agrees with their content, then the others by content,
            # each original taken at most once.
            taken: set[str] = set()
            rest = []
            for sec in secs:
                v = content.get((sec.source, sec.id))
                same = orig_ids.index(sec.id) if sec.id in orig_ids else None
                if v is None:
                    out[(sec.source, sec.id)] = sec.id if same is not None else None
                    taken.add(sec.id)
                    continue
                sims = orig_vecs @ v
                if same is not None and sims[same] >= sims.max() - SAME_NUMBER_MARGIN:
                    out[(sec.source, sec.id)] = sec.id
                    taken.add(sec.id)
                else:
                    rest.append((sec, sims))
            # the most similar pairs first (not the file order), each original once
            ranked = sorted(((float(sims[i]), n, i) for n, (sec, sims) in enumerate(rest)
                             for i in range(len(orig_ids))), reverse=True)
            chosen: dict[int, int] = {}
            for sim, n, i in ranked:
                if sim < SECTION_FLOOR:
                    break
                if n not in chosen and orig_ids[i] not in taken:
                    chosen[n] = i
                    taken.add(orig_ids[i])
            for n, (sec, _) in enumerate(rest):
                if n in chosen:
                    out[(sec.source, sec.id)] = orig_ids[chosen[n]]
                    report.warn("translation renumbered", f"{sec.source}: §{sec.id} {sec.title!r} is the "
                                                          f"translation of {chapter}/{orig_ids[chosen[n]]}")
                else:
                    out[(sec.source, sec.id)] = None
                    report.warn("translation without original", f"{sec.source}: §{sec.id} {sec.title!r} has no "
                                                                f"matching section in the original")
    return out


def apply_pairing(pairs: dict[tuple[str, str], str | None], sections: list[Section], chunks: list[Chunk],
                  sentences: list[dict]) -> tuple[list[Section], list[Chunk]]:
    """Give each translated section its original's id (or a distinct one), everywhere."""
    taken = {(s.chapter, s.id) for s in sections if (s.source, s.id) not in pairs}
    new_id = {}
    for (source, sid), orig in pairs.items():
        chapter = next(s.chapter for s in sections if s.source == source)
        new_id[(source, sid)] = orig if orig is not None else (f"{sid}~en" if (chapter, sid) in taken else sid)
    sections = [replace(s, id=new_id.get((s.source, s.id), s.id)) for s in sections]
    chunks = [replace(c, section=new_id.get((c.source, c.section), c.section)) for c in chunks]
    for rec in sentences:
        rec["section"] = new_id.get((rec["source"], rec["section"]), rec["section"])
    return sections, chunks


def attach_originals(sentences: list[dict], vectors: np.ndarray, texts: dict[str, str]) -> int:
    """Add to each translated sentence its aligned original sentence(s); return how many got one."""
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, rec in enumerate(sentences):
        groups[(rec["chapter"], rec["section"], rec["lang"])].append(i)
    aligned = 0
    for (chapter, section, lang), ours in groups.items():
        theirs = groups.get((chapter, section, "zh")) if lang != "zh" else None
        if not theirs:
            continue
        for ours_b, theirs_b in _paragraphs(sentences, ours, theirs):
            for i, (a, z) in align_sentences(ours_b, theirs_b, sentences, vectors).items():
                o, oz = sentences[theirs_b[a]], sentences[theirs_b[z]]
                sentences[i]["original"] = {
                    "source": o["source"], "section": o["section"], "chapter": o["chapter"], "title": o["title"],
                    "lang": o["lang"], "start": o["start"], "end": oz["end"],
                    "text": texts[o["source"]][o["start"]:oz["end"]]}
                aligned += 1
    return aligned


def _paragraphs(sentences, ours: list[int], theirs: list[int]):
    """Pairs of sentence lists: paragraph by paragraph when both have as many, else the whole section."""
    def blocks(idx):
        out: dict[int, list[int]] = defaultdict(list)
        for i in idx:
            out[sentences[i]["block"]].append(i)
        return list(out.values())
    ob, tb = blocks(ours), blocks(theirs)
    return list(zip(ob, tb)) if len(ob) == len(tb) else [(ours, theirs)]


def _numbers(text: str) -> frozenset:
    return frozenset(_NUMBERS.findall(text))


def _bonus(a: str, b: str) -> float:
    na, nb = _numbers(a), _numbers(b)
    score = 0.1 if na and na == nb else -0.1 if na != nb and (na or nb) else 0.0
    qa, qb = a.rstrip().endswith(("?", "？")), b.rstrip().endswith(("?", "？"))
    return score + (0.05 if qa == qb else -0.05)


def align_sentences(ours: list[int], theirs: list[int], sentences: list[dict],
                    vectors: np.ndarray) -> dict[int, tuple[int, int]]:
    """For each of our sentence rows, the (first, last) positions in `theirs` of its original."""
    n, m = len(ours), len(theirs)
    if not n or not m:
        return {}
    sim = lambda i, j: float(vectors[ours[i]] @ vectors[theirs[j]])  # noqa: E731
    text = lambda rows, i: sentences[rows[i]]["text"]  # noqa: E731
    band = BAND
    NEG = -1e9
    score = {(0, 0): 0.0}
    back: dict[tuple[int, int], tuple[int, int, str]] = {}
    for i in range(n + 1):
        centre = i * m // n
        for j in range(max(0, centre - band), min(m, centre + band) + 1):
            if (i, j) == (0, 0):
                continue
            best, arg = NEG, None
            moves = [(1, 1, "11"), (1, 2, "12"), (2, 1, "21"), (1, 0, "skip"), (0, 1, "skip")]
            for di, dj, kind in moves:
                pi, pj = i - di, j - dj
                if pi < 0 or pj < 0 or (pi, pj) not in score:
                    continue
                if kind == "11":
                    gain = sim(pi, pj) + _bonus(text(ours, pi), text(theirs, pj)) - SKIP
                elif kind == "12":
                    v = _unit(vectors[theirs[pj]] + vectors[theirs[pj + 1]])
                    gain = float(vectors[ours[pi]] @ v) + _bonus(text(ours, pi), text(theirs, pj) + text(theirs, pj + 1)) - SKIP
                elif kind == "21":
                    v = _unit(vectors[ours[pi]] + vectors[ours[pi + 1]])
                    gain = float(v @ vectors[theirs[pj]]) + _bonus(text(ours, pi) + text(ours, pi + 1), text(theirs, pj)) - SKIP
                else:
                    gain = 0.0
                if score[(pi, pj)] + gain > best:
                    best, arg = score[(pi, pj)] + gain, (pi, pj, kind)
            if arg is not None:
                score[(i, j)], back[(i, j)] = best, arg
    out: dict[int, tuple[int, int]] = {}
    pos = (n, m)
    while pos in back:
        pi, pj, kind = back[pos]
        if kind == "11":
            out[ours[pi]] = (pj, pj)
        elif kind == "12":
            out[ours[pi]] = (pj, pj + 1)
        elif kind == "21":
            out[ours[pi]] = out[ours[pi + 1]] = (pj, pj)
        pos = (pi, pj)
    return out
