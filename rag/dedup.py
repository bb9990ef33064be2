"""Near-duplicate sections: the same content in two places (a book repeats sections; a chapter
may be an older copy of another).

Two sections of the same language are near-duplicates when the sets of character 5-grams of their
texts (lowercased, without whitespace and punctuation) have Jaccard similarity above 0.6 or the
smaller is contained in the larger above 0.8, and the smaller has at least 50 5-grams. Measured on
the whole book with chapter 10 beside it (benchmarks/proto11/FINDINGS.md): 19 pairs inside the
book and 11 between the book and chapter 10; between containment 0.4 and 0.8 the pairs are
chapter introductions and unrelated sections. Pairs are not merged transitively: an edited copy
can contain two sections that are not copies of each other.
"""

from __future__ import annotations

import re

import numpy as np

N = 5
MIN_GRAMS = 50
JACCARD = 0.6
CONTAINMENT = 0.8
_NOISE = re.compile(r"[\W_]+", re.U)


def grams(text: str) -> set[str]:
    t = _NOISE.sub("", text.lower())
    return {t[i:i + N] for i in range(len(t) - N + 1)}


def duplicate_pairs(texts: dict[tuple[str, str], str]) -> list[list[str]]:
    """The pairs [a, b] (a < b, sorted) of near-duplicate sections, by qualified id.

    `texts` maps (language, qualified id) to the section's text; only the same language is compared.
    """
    from scipy import sparse

    pairs: set[tuple[str, str]] = set()
    for lang in sorted({lang for lang, _ in texts}):
        keys = sorted(k for lg, k in texts if lg == lang)
        sets = [grams(texts[(lang, k)]) for k in keys]
        vocab: dict[str, int] = {}
        rows, cols = [], []
        for i, s in enumerate(sets):
            for g in s:
                rows.append(i)
                cols.append(vocab.setdefault(g, len(vocab)))
        if not vocab:
            continue
        m = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(keys), len(vocab)))
        inter = sparse.triu(m @ m.T, k=1).tocoo()
        size = np.array([len(s) for s in sets], dtype=np.float64)
        for i, j, n in zip(inter.row, inter.col, inter.data):
            small = min(size[i], size[j])
            if small < MIN_GRAMS:
                continue
            if n / (size[i] + size[j] - n) > JACCARD or n / small > CONTAINMENT:
                pairs.add((min(keys[i], keys[j]), max(keys[i], keys[j])))
    return [list(p) for p in sorted(pairs)]


def neighbours(pairs: list[list[str]]) -> dict[str, tuple[str, ...]]:
    """Qualified id -> its near-duplicates (sorted)."""
    out: dict[str, set[str]] = {}
    for a, b in pairs:
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return {k: tuple(sorted(v)) for k, v in out.items()}
