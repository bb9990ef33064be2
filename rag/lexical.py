"""Tokenization (jieba for Chinese, Snowball stems for English) and BM25 scoring.

The BM25 index is built and saved by `bm25s`. Queries are scored straight from the arrays it
saves (the same sparse sum bm25s does), because importing bm25s pulls in scipy and numba and
costs ~0.7 s of a new process's start-up, while a query needs ten lines of numpy.

Chinese is segmented with a small jieba dictionary (the "lexicon") cut from jieba's full
dictionary down to the words of the corpus: it loads in milliseconds instead of ~1 s, and
index and queries are segmented with the same dictionary, so every query word that can match
the corpus is still found.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from .lang import CJK, CJK_CHAR, STOP_EN, STOP_ZH

_RUN = re.compile(rf"[{CJK}]+|[a-z0-9\u03b1-\u03c9]+")
# "1×1", "1 x 1", "1*1", "1乘1" are all the token "1x1" (the book writes $1\times1$, readers 1x1).
_PRODUCT = re.compile(r"(\d)[ \t]*[×x*乘][ \t]*(?=\d)")


class Tokenizer:
    """Lowercase; jieba search-mode words for Chinese runs; stemmed words for Latin runs; no stop words."""

    def __init__(self, lexicon: dict[str, int] | None = None):
        import jieba
        import Stemmer

        jieba.setLogLevel(60)
        if lexicon is None:
            self._jieba = jieba.dt  # the full dictionary (used to make a lexicon)
        else:
            self._jieba = jieba.Tokenizer()
            freq, total = {}, 0
            for word, n in lexicon.items():
                freq[word] = n
                total += n
                for i in range(1, len(word)):  # jieba's prefix dictionary marks prefixes with 0
                    freq.setdefault(word[:i], 0)
            self._jieba.FREQ, self._jieba.total = freq, max(total, 1)
            self._jieba.initialized = True
        self._stem = Stemmer.Stemmer("english").stemWord

    def words(self, text: str) -> list[str]:
        """All word tokens of text, stop words included (used to build a lexicon)."""
        out: list[str] = []
        for run in _RUN.findall(_PRODUCT.sub(r"\1x", text.lower())):
            if CJK_CHAR.match(run):
                out.extend(self._jieba.cut_for_search(run, HMM=False))
            else:
                out.append(run)
        return out

    def __call__(self, text: str) -> list[str]:
        toks = []
        for w in self.words(text):
            if CJK_CHAR.match(w):
                if w not in STOP_ZH:
                    toks.append(w)
            elif w not in STOP_EN:
                toks.append(self._stem(w))
        return toks


def make_lexicon(texts: list[str], extra_words: list[str] = ()) -> dict[str, int]:
    """The Chinese words of texts (and extra_words) with their frequencies in jieba's dictionary."""
    import jieba

    full = Tokenizer()
    jieba.dt.check_initialized()
    freq = jieba.dt.FREQ
    words = {w for t in texts for w in full.words(t) if len(w) > 1 and CJK_CHAR.match(w)}
    words.update(extra_words)
    return {w: freq.get(w) or 3 for w in sorted(words)}


def save_lexicon(lexicon: dict[str, int], path: Path) -> None:
    path.write_text("".join(f"{w} {n}\n" for w, n in lexicon.items()), encoding="utf-8")


def load_lexicon(path: Path) -> dict[str, int]:
    lex = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        word, n = line.rsplit(" ", 1)
        lex[word] = int(n)
    return lex


def term_weights(tokens: list[str], single_char: float) -> list[float] | None:
    """Each query token's weight in BM25: `single_char` for a lone Chinese character, 1 for the
    rest (None when all are 1). A lone character is what jieba leaves of words its dictionary
    lacks (a typo: 归一话 -> 归, 话; 有关系 -> 有关, 系) or a function character (用, 做); its IDF
    as a token is high, because the corpus's own words are mostly cut whole, so it outweighed the
    question's real words (5-fold CV on the dev questions, README).
    """
    if single_char == 1.0:
        return None
    weights = [single_char if len(t) == 1 and CJK_CHAR.match(t) else 1.0 for t in tokens]
    return weights if any(w != 1.0 for w in weights) else None


# BM25's term-frequency saturation and length normalisation. k1 = 1.2 (bm25s's default is 1.5):
# 5-fold CV on the dev questions, objective of eval/tools/cv_weights.py, zh 1.285 -> 1.301 and
# en 1.122 -> 1.134 (k1 0.9-2.0 and b 0.3-0.9 tried).
K1, B = 1.2, 0.75


def build_bm25(docs_tokens: list[list[str]], out_dir: Path) -> None:
    """Index token lists with bm25s and save its arrays to out_dir (deterministic vocabulary order)."""
    import bm25s

    # bm25s sets its logger to DEBUG when imported; put it back to the default threshold.
    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    vocab = {t: i for i, t in enumerate(sorted({t for toks in docs_tokens for t in toks}))}
    ids = [[vocab[t] for t in toks] for toks in docs_tokens]
    model = bm25s.BM25(method="lucene", k1=K1, b=B)
    model.index((ids, vocab), create_empty_token=False, show_progress=False)
    model.save(str(out_dir), show_progress=False)


class BM25Scorer:
    """Scores a query against a bm25s index saved by `build_bm25`, with numpy only."""

    def __init__(self, bm25_dir: Path):
        self.data = np.load(bm25_dir / "data.csc.index.npy")
        self.indices = np.load(bm25_dir / "indices.csc.index.npy")
        self.indptr = np.load(bm25_dir / "indptr.csc.index.npy")
        self.vocab = json.loads((bm25_dir / "vocab.index.json").read_text(encoding="utf-8"))
        params = json.loads((bm25_dir / "params.index.json").read_text(encoding="utf-8"))
        self.num_docs = int(params["num_docs"])
        if len(self.indptr) != len(self.vocab) + 1:
            raise ValueError("BM25 arrays do not match its vocabulary")

    def scores(self, tokens: list[str], weights: list[float] | None = None) -> np.ndarray:
        """BM25 score of every document; all zeros when no token is in the vocabulary.

        A term-at-a-time accumulator: reads only the CSC columns of the query's tokens. A column
        lists each document once, so a plain indexed add is exact (no np.add.at); columns are added
        in token order, float32. weights (one per token, see `term_weights`) scale each token's
        column; None weighs every token 1.
        """
        out = np.zeros(self.num_docs, dtype=np.float32)
        for j, t in enumerate(tokens):
            i = self.vocab.get(t)
            if i is not None:
                s, e = self.indptr[i], self.indptr[i + 1]
                out[self.indices[s:e]] += self.data[s:e] if weights is None else np.float32(weights[j]) * self.data[s:e]
        return out

    def matches(self, tokens: list[str], weights: list[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The documents that score above zero (ascending ids) and their BM25 scores.

        The same accumulator as `scores` (bit-identical sums); the cost is the postings of the
        query's tokens plus one pass over the accumulator to list the matches in id order (no
        sort: ~0.5 ms per 500k documents), so it grows with those postings, not with the text.
        Lucene BM25 terms are all positive, so with positive weights "scores above zero" is
        "contains a query token".
        """
        acc = self.scores(tokens, weights)
        docs = np.flatnonzero(acc > 0)  # (listing a bool array is ~5x faster than the floats)
        return docs.astype(np.int64), acc[docs]
