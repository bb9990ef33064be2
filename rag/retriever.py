"""Retriever: dense (FAISS) + lexical (BM25) search, fused by the question's language, per section."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .embedding import Encoder, load_encoder
from .index import DEFAULT_INDEX, LoadedIndex, build_index, load_index, read_manifest
from .types import Hit, RagError, StaleIndexError

MODES = ("hybrid", "dense", "lexical")
MAX_QUERY_CHARS = 2000
MAX_K = 100
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

# Weight of the dense score in the hybrid fusion, by question language (the lexical score gets
# the rest). Chosen on the dev part of eval/questions.jsonl; see README "How it works".
DENSE_WEIGHT = {"zh": 0.5, "en": 0.5}


def detect_language(text: str) -> str:
    """'zh' if the text has Chinese characters, else 'en'."""
    return "zh" if _CJK.search(text) else "en"


def check_query(query, k: int = 5, mode: str = "hybrid") -> str:
    """Validate search arguments; return the stripped query or raise RagError saying what to fix."""
    if not isinstance(query, str) or not query.strip():
        raise RagError("the question is empty. Type a question, e.g. 什么是负迁移？ or 'What is negative transfer?'")
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise RagError(f"the question is {len(query)} characters long; the limit is {MAX_QUERY_CHARS}. "
                       "Shorten it to the part you want answered.")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise RagError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}.")
    if mode not in MODES:
        raise RagError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}.")
    return query


class Retriever:
    """Searches an index directory; `search` returns one Hit per section, best first."""

    def __init__(self, index: LoadedIndex, encoder: Encoder):
        self.index = index
        self.encoder = encoder
        self.chunks = index.chunks
        # chunk id -> (source, section), and the sections in first-seen order
        self._section_of = [(c.source, c.section) for c in self.chunks]

    @classmethod
    def load(cls, index_dir: str | Path = DEFAULT_INDEX, rebuild: bool = False) -> "Retriever":
        """Load an index; with rebuild=True a missing or stale index is rebuilt first (with a message)."""
        index_dir = Path(index_dir)
        try:
            manifest = read_manifest(index_dir)
            encoder = load_encoder(manifest["encoder"]["id"])  # starts loading in the background
            index = load_index(index_dir)
        except StaleIndexError as e:
            if not rebuild:
                raise
            print(f"{e.args[0].split('. Rebuild')[0]}; rebuilding it now...", flush=True)
            manifest = read_manifest(index_dir)
            encoder = load_encoder(manifest["encoder"]["id"])
            corpus = (index_dir.resolve().parent / manifest["corpus_dir"]).resolve()
            build_index(corpus, index_dir, encoder, manifest["index_type"],
                        manifest["chunking"]["max_chars"], progress=True)
            index = load_index(index_dir)
        if index.manifest["encoder"]["id"] != encoder.id:  # only if rebuilt with another encoder
            encoder = load_encoder(index.manifest["encoder"]["id"])
        return cls(index, encoder)

    def search(self, query: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """The k best sections for query; mode is 'hybrid' (default), 'dense' or 'lexical'."""
        query = check_query(query, k, mode)
        scores = self.chunk_scores(query, mode)
        return self._per_section(scores, k)

    def chunk_scores(self, query: str, mode: str = "hybrid") -> np.ndarray:
        """A fused relevance score in [0, 1] for every chunk."""
        n = len(self.chunks)
        dense = lexical = None
        if mode in ("hybrid", "dense"):
            qv = self.encoder.encode([query])
            sims, ids = self.index.vectors.search(qv, n)
            dense = np.zeros(n, dtype=np.float32)
            ok = ids[0] >= 0
            dense[ids[0][ok]] = np.clip(sims[0][ok], 0.0, 1.0)
            if mode == "dense":
                return dense
        lexical = self.index.bm25.scores(self.index.tokenize(query))
        top = float(lexical.max()) if n else 0.0
        lexical = lexical / top if top > 0 else lexical
        if mode == "lexical":
            return lexical
        w = DENSE_WEIGHT[detect_language(query)]
        return w * dense + (1.0 - w) * lexical

    def _per_section(self, scores: np.ndarray, k: int) -> list[Hit]:
        hits: list[Hit] = []
        seen = set()
        for i in np.argsort(-scores, kind="stable"):
            if scores[i] <= 0:
                break  # no evidence at all for the rest
            key = self._section_of[i]
            if key[1] in seen:
                continue
            seen.add(key[1])
            c = self.chunks[i]
            hits.append(Hit(section=c.section, title=c.title, text=c.text, score=round(float(scores[i]), 6),
                            source=c.source, start=c.start, end=c.end, lang=c.lang, chunk=c.id))
            if len(hits) == k:
                break
        return hits
