"""Retriever: dense (FAISS) + lexical (BM25) search, fused by the question's language, per section."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from .glossary import translations
from .text import normalize
from .embedding import Encoder, load_encoder
from .lang import detect_language
from .index import DEFAULT_INDEX, LoadedIndex, build_index, load_index, read_manifest
from .types import DamagedIndexError, Hit, IndexMissingError, RagError, StaleIndexError

MODES = ("hybrid", "dense", "lexical")
MAX_QUERY_CHARS = 2000
MAX_K = 100

# Weight of the dense score in the hybrid fusion, by question language (the lexical score gets
# the rest), and weight of the question-to-section-title similarity. Chosen by 5-fold
# cross-validation on the dev part of eval/questions.jsonl (eval/tools/cv.py, eval/README.md).
DENSE_WEIGHT = {"zh": 0.3, "en": 0.3}
TITLE_WEIGHT = 0.4
# A question in a language the corpus has no text in (an English question, a Chinese-only
# chapter) is matched cross-lingually: mostly dense, with BM25 over its glossary translations.
CROSS_LINGUAL_DENSE_WEIGHT = 0.9


def check_query(query, k: int = 5, mode: str = "hybrid") -> str:
    """Validate search arguments; return the stripped query or raise RagError saying what to fix."""
    if query is None:
        query = ""
    if not isinstance(query, str):
        raise RagError(f"the question must be text (a str), not {type(query).__name__}. "
                       "Decode bytes as UTF-8 first, e.g. question.decode('utf-8').")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as e:
        raise RagError(f"the question has a character that is not valid Unicode text ({query[e.start]!r} at "
                       f"position {e.start}, e.g. a lone surrogate or undecodable input). Retype it or send "
                       "it as UTF-8.") from None
    if not query.strip():
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
        # Sections are keyed by their qualified id, so a section and its translation are one section.
        keys: dict[str, int] = {}
        for sec in index.sections:
            keys.setdefault(sec.key, len(keys))
        self.section_keys = list(keys)
        self.section_index = keys  # qualified id -> position in section_keys
        # The chapter filter's ids (the qualified ids' "chNN/" prefix), in index order.
        self._section_chapter = np.array([k.split("/", 1)[0] for k in self.section_keys])
        self.chapters = list(dict.fromkeys(self._section_chapter.tolist()))
        self._chunk_section = np.array([keys[c.key] for c in self.chunks], dtype=np.int64)
        self._title_section = np.array([keys[s.key] for s in index.sections], dtype=np.int64)
        chunk_langs = np.array([c.lang for c in self.chunks])
        title_langs = np.array([index.lang_of(s.source) for s in index.sections])
        chunk_chapters = np.array([c.chapter for c in self.chunks])
        title_chapters = np.array([s.chapter for s in index.sections])
        # A question is matched against text in its own language in the chapters that have some
        # (a translation beside the original), and cross-lingually in the other chapters.
        self._lexical = {lang: (scorer, np.flatnonzero(chunk_langs == lang)) for lang, scorer in index.bm25.items()}
        self._masks, self._own, self._cross = {}, {}, {}
        for lang in ("zh", "en"):
            has = {ch for ch, lg in zip(chunk_chapters, chunk_langs) if lg == lang}
            own_chunks = chunk_langs == lang
            self._own[lang] = own_chunks
            self._masks[lang] = (own_chunks | ~np.isin(chunk_chapters, list(has)),
                                 (title_langs == lang) | ~np.isin(title_chapters, list(has)))
            self._cross[lang] = bool(np.any(self._masks[lang][0] & ~own_chunks))

    @classmethod
    def load(cls, index_dir: str | Path = DEFAULT_INDEX) -> "Retriever":
        """Load an index and its encoder. Never writes: a stale or damaged index raises RagError."""
        if index_dir is None or not isinstance(index_dir, (str, os.PathLike)):
            raise RagError(f"the index directory must be a path, not {index_dir!r}.")
        manifest = read_manifest(index_dir)
        encoder = load_encoder(manifest["encoder"]["id"])  # loads in the background meanwhile
        index = load_index(index_dir)
        dim = getattr(encoder, "dim", None)
        if dim is not None and dim != index.vectors.d:
            raise DamagedIndexError(f"{index_dir} has {index.vectors.d}-dimensional vectors, encoder "
                                    f"{manifest['encoder']['id']!r} makes {dim}. Rebuild: rag build --index {index_dir}")
        return cls(index, encoder)

    def search(self, query: str, k: int = 5, mode: str = "hybrid", chapters=None) -> list[Hit]:
        """The k best sections for query; mode is 'hybrid' (default), 'dense' or 'lexical'.

        `chapters` (e.g. ["ch05", "ch10"]) limits the search to those chapters; None searches all.
        """
        query = check_query(query, k, mode)
        chunk_scores, section_scores = self.scores(query, mode, chapters=chapters)
        return self.hits(chunk_scores, section_scores, k)

    def embed(self, query: str) -> np.ndarray:
        """The query's unit vector (one row)."""
        return self.encoder.encode([query])

    def chapter_mask(self, chapters) -> np.ndarray | None:
        """Which sections (indexed like section_keys) lie in the given chapters; None for no filter."""
        if chapters is None:
            return None
        if not isinstance(chapters, (list, tuple, set, frozenset)) or not all(isinstance(c, str) for c in chapters):
            raise RagError(f"chapters must be a list of chapter ids like ['ch05'], not {chapters!r}.")
        unknown = [c for c in chapters if c not in self.chapters]
        if unknown or not chapters:
            raise RagError(f"unknown chapter {', '.join(map(repr, unknown)) or '(none given)'}; "
                           f"choose from: {', '.join(self.chapters)}.")
        return np.isin(self._section_chapter, list(chapters))

    def scores(self, query: str, mode: str = "hybrid", qv: np.ndarray | None = None,
               chapters=None) -> tuple[np.ndarray, np.ndarray]:
        """Relevance in [0, 1] of every chunk, and of every section (indexed like section_keys).

        Sections outside `chapters` (when given) score 0, and so do their chunks.
        """
        in_chapters = self.chapter_mask(chapters)
        n = len(self.chunks)
        lang = detect_language(query)
        chunk_mask, title_mask = self._masks[lang]
        title = None
        if mode in ("hybrid", "dense"):
            qv = self.embed(query) if qv is None else qv
            sims, ids = self.index.vectors.search(qv, n)
            dense = np.zeros(n, dtype=np.float32)
            ok = ids[0] >= 0
            dense[ids[0][ok]] = np.clip(sims[0][ok], 0.0, 1.0)
            title = np.zeros(len(self.section_keys), dtype=np.float32)
            np.maximum.at(title, self._title_section, np.clip(self.index.titles @ qv[0], 0.0, 1.0) * title_mask)
        own = self._own[lang]
        if mode != "dense":
            tokens = self.index.tokenize(normalize(query))
            lexical = np.zeros(n, dtype=np.float32)
            if lang in self._lexical:  # own-language text, scored and scaled on its own
                scorer, ids = self._lexical[lang]
                lexical[ids] = _scaled(scorer.scores(tokens))
            if self._cross[lang]:  # other chapters: cross-lingually, with the glossary's translations
                cross_tokens = tokens + self.index.tokenize(" ".join(translations(query, self.index.glossary)))
                for other, (scorer, ids) in self._lexical.items():
                    if other != lang:
                        lexical[ids] = _scaled(scorer.scores(cross_tokens))
        if mode == "dense":
            chunk = dense
        elif mode == "lexical":
            chunk = lexical
        else:
            # With chapters matched cross-lingually beside own-language ones, every chunk is scored
            # the cross-lingual way, so that the scores of both kinds compare.
            w = CROSS_LINGUAL_DENSE_WEIGHT if self._cross[lang] else DENSE_WEIGHT[lang]
            chunk = w * dense + (1.0 - w) * lexical
        chunk = chunk * chunk_mask
        section = np.zeros(len(self.section_keys), dtype=np.float32)
        np.maximum.at(section, self._chunk_section, chunk)
        if title is not None:
            section = (section + TITLE_WEIGHT * title) / (1.0 + TITLE_WEIGHT)
        if in_chapters is not None:
            section = section * in_chapters
            chunk = chunk * in_chapters[self._chunk_section]
        return chunk, section

    def hits(self, chunk_scores: np.ndarray, section_scores: np.ndarray, k: int) -> list[Hit]:
        """The k best sections with evidence (score > 0), each shown by its best chunk."""
        best: dict[int, int] = {}
        for i in np.argsort(-chunk_scores, kind="stable"):
            best.setdefault(int(self._chunk_section[i]), int(i))
        hits = []
        for sec in np.argsort(-section_scores, kind="stable")[:k]:
            if section_scores[sec] <= 0:
                break
            c = self.chunks[best[int(sec)]]
            hits.append(Hit(section=c.section, title=c.title, text=c.text, score=round(float(section_scores[sec]), 6),
                            source=c.source, start=c.start, end=c.end, lang=c.lang, chunk=c.id,
                            chapter=c.chapter, id=c.key))
        return hits


def load_fresh(index_dir: str | Path = DEFAULT_INDEX, corpus_dir: str | Path | None = None) -> Retriever:
    """Load an index for the commands that serve questions, rebuilding it (and saying so) if it is stale.

    With corpus_dir, a missing index is built from it too.
    """
    index_dir = Path(index_dir)
    try:
        manifest = read_manifest(index_dir)
    except IndexMissingError:
        if corpus_dir is None:
            raise
        print(f"no index at {index_dir}; building it from {corpus_dir} ...", file=sys.stderr, flush=True)
        build_index(Path(corpus_dir), index_dir, progress=True)
        return Retriever.load(index_dir)
    try:
        return Retriever.load(index_dir)
    except StaleIndexError as e:
        print(f"{str(e).split('. Rebuild')[0]}; rebuilding it now...", file=sys.stderr, flush=True)
        corpus = (index_dir.resolve().parent / manifest["corpus_dir"]).resolve()
        build_index(corpus, index_dir, load_encoder(manifest["encoder"]["id"]), manifest["index_type"],
                    manifest["chunking"]["max_chars"], progress=True)
    return Retriever.load(index_dir)


def _scaled(scores: np.ndarray) -> np.ndarray:
    """Scores divided by their maximum (all zero stays zero)."""
    top = float(scores.max()) if len(scores) else 0.0
    return scores / top if top > 0 else scores
