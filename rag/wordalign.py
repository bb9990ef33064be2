"""Word translations learned from the corpus's own aligned pairs, for English questions on Chinese text.

The pairs are the reviewed English section titles (toc.en.tsv, beside their Chinese headings) and
the sentences of a translated chapter aligned to their originals (align.py). IBM Model 1 (EM)
runs in both directions; an English word keeps its most probable Chinese word only when that
word's most probable English word is it again, p(zh | en) >= P_MIN and the English word occurs
in at least MIN_PAIRS pairs: precision first, because a wrong pair sends an English question to
the wrong section (a glossary mined from the book's `中文(English)` parentheses, with about a third
of its pairs wrong, cost 0.07 hit@1). From the book: 330 pairs (feature -> 特征, decay -> 衰减,
covariance -> 协方差, channel -> 通道 ...). Measured by 5-fold CV on the dev questions (README):
English questions on the book, hit@1 0.475 -> 0.586 with the title pairs, and (after other
changes) 0.606 -> 0.636 adding the aligned sentences.
"""

from __future__ import annotations

import numpy as np

from .lang import CJK_CHAR
from .text import normalize

P_MIN = 0.5  # least p(Chinese word | English word) of a kept pair
MIN_PAIRS = 2  # an English word is translated only if it occurs in at least this many pairs
MAX_PAIR_CHARS = 400  # pairs whose English is longer (tables, formulas) are left out
ROUNDS = 15  # EM iterations


def ibm1(pairs: list[tuple[list[int], list[int]]], n_src: int, null: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IBM Model 1 by EM over pairs of word-id lists (`null` is the empty source word, added to
    every source). Returns (source ids, target ids, p(target | source)) of the co-occurring words."""
    src, tgt, group = [], [], []
    g = 0
    for s, t in pairs:
        s = [*s, null]
        for w in t:
            src += s
            tgt += [w] * len(s)
            group += [g] * len(s)
            g += 1
    src, tgt, group = np.array(src, np.int64), np.array(tgt, np.int64), np.array(group, np.int64)
    n_tgt = int(tgt.max()) + 1 if len(tgt) else 1
    cells, cell = np.unique(src * n_tgt + tgt, return_inverse=True)
    cell_src, cell_tgt = cells // n_tgt, cells % n_tgt
    prob = np.ones(len(cells))
    for _ in range(ROUNDS):
        v = prob[cell]
        share = v / np.bincount(group, v)[group]
        count = np.bincount(cell, share, minlength=len(cells))
        prob = count / np.bincount(cell_src, count, minlength=n_src)[cell_src]
    return cell_src, cell_tgt, prob


def _best(src: np.ndarray, tgt: np.ndarray, prob: np.ndarray) -> dict[int, tuple[int, float]]:
    """Each source word's most probable target word (ties: the smaller id) and its probability."""
    order = np.lexsort((tgt, -prob, src))
    first = np.ones(len(order), bool)
    first[1:] = src[order][1:] != src[order][:-1]
    return {int(s): (int(t), float(p)) for s, t, p in zip(src[order][first], tgt[order][first], prob[order][first])}


def learn_word_translations(pairs: list[tuple[str, str]], tokenize) -> dict[str, str]:
    """English word (as `tokenize` stems it) -> Chinese word, from (Chinese, English) text pairs.

    Words with digits and non-Chinese tokens on the Chinese side are left out.
    """
    vocab: dict[str, int] = {}
    ids = []
    for zh, en in pairs:
        if len(en) >= MAX_PAIR_CHARS:
            continue
        z = [vocab.setdefault("zh:" + w, len(vocab)) for w in tokenize(normalize(zh)) if CJK_CHAR.match(w)]
        e = [vocab.setdefault("en:" + w, len(vocab)) for w in tokenize(normalize(en)) if w.isascii() and w.isalpha()]
        if z and e:
            ids.append((e, z))
    if not ids:
        return {}
    null = len(vocab)
    forward = _best(*ibm1(ids, null + 1, null))  # English word -> (Chinese word, p)
    backward = _best(*ibm1([(z, e) for e, z in ids], null + 1, null))  # Chinese word -> (English word, p)
    seen = np.bincount([w for e, _ in ids for w in set(e)], minlength=null)
    words = {i: w.split(":", 1)[1] for w, i in vocab.items()}
    out = {}
    for en, (zh, p) in forward.items():
        if en != null and seen[en] >= MIN_PAIRS and p >= P_MIN and backward.get(zh, (None,))[0] == en:
            out[words[en]] = words[zh]
    return dict(sorted(out.items()))
