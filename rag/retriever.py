"""Retriever: dense (FAISS) + lexical (BM25) search, fused by the question's language, per section."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .dedup import neighbours
from .glossary import translations
from .text import normalize
from .embedding import Encoder, load_encoder
from .lang import detect_language
from .index import DEFAULT_INDEX, LoadedIndex, build_index, load_index, read_manifest
from .types import Hit, RagError, StaleIndexError

MODES = ("hybrid", "dense", "lexical")
MAX_QUERY_CHARS = 2000
MAX_K = 100

# Fusion, by question language. A chunk scores DENSE_WEIGHT * cosine + the rest * BM25 (divided
# by the query's top BM25 score); a section scores the weighted sum of its best chunk, its best
# title row (cosine; English titles from toc.en.tsv are title rows too, see below) and BM25 over
# its English title (divided by the query's top), over the sum of the weights, so every score
# stays in [0, 1]. Fitted by cross-validation on the dev parts of eval/questions.jsonl and the
# book's questions together (eval/tools/cv_weights.py; README "How it works").
DENSE_WEIGHT = {"zh": 0.3, "en": 0.4}
# A question in a language some chapters have no text in (an English question, a Chinese-only
# chapter) is matched cross-lingually: mostly dense, with BM25 over its glossary translations.
CROSS_LINGUAL_DENSE_WEIGHT = 0.8
TITLE_WEIGHT = {"zh": 0.4, "en": 0.2}
TITLE_EN_LEXICAL_WEIGHT = {"zh": 0.0, "en": 0.25}

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
        # Title rows: every section's title, then the English title (toc.en.tsv) of those that have one.
        with_en = [s for s in index.sections if s.title_en]
        self._titles = np.vstack([index.titles, index.titles_en]) if with_en else index.titles
        self._title_en_section = np.array([keys[s.key] for s in with_en], dtype=np.int64)
        self._title_section = np.concatenate([np.array([keys[s.key] for s in index.sections], dtype=np.int64),
                                              self._title_en_section])
        self.title_en = {s.key: s.title_en for s in with_en}
        # Near-duplicate sections: a search shows the best of them and lists the others in also_in.
        self.duplicates = {k: v for k, v in neighbours(index.duplicates).items() if k in keys}
        chunk_langs = np.array([c.lang for c in self.chunks])
        title_langs = np.array([index.lang_of(s.source) for s in index.sections] + ["en"] * len(with_en))
        chunk_chapters = np.array([c.chapter for c in self.chunks])
        title_chapters = np.array([s.chapter for s in index.sections] + [s.chapter for s in with_en])
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
    def load(cls, index_dir: str | Path = DEFAULT_INDEX, rebuild: bool = False) -> "Retriever":
        """Load an index; with rebuild=True a stale index is rebuilt first (with a message)."""
        index_dir = Path(index_dir)
        manifest = read_manifest(index_dir)
        encoder = load_encoder(manifest["encoder"]["id"])  # loads in the background meanwhile
        try:
            index = load_index(index_dir)
        except StaleIndexError as e:
            if not rebuild:
                raise
            print(f"{str(e).split('. Rebuild')[0]}; rebuilding it now...", file=sys.stderr, flush=True)
            corpus = (index_dir.resolve().parent / manifest["corpus_dir"]).resolve()
            build_index(corpus, index_dir, encoder, manifest["index_type"],
                        manifest["chunking"]["max_chars"], progress=True)
            index = load_index(index_dir)
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
        if isinstance(chapters, str) or not all(isinstance(c, str) for c in chapters):
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
        lang = detect_language(query)
        dense = DENSE_WEIGHT[lang] if not self._cross[lang] else CROSS_LINGUAL_DENSE_WEIGHT
        # With chapters matched cross-lingually beside own-language ones, every chunk is scored the
        # cross-lingual way, so that the scores of both kinds compare.
        chunk, section = self.fuse(self.components(query, mode, qv), lang, mode,
                                   dense, TITLE_WEIGHT[lang], TITLE_EN_LEXICAL_WEIGHT[lang])
        if in_chapters is not None:
            section = section * in_chapters
            chunk = chunk * in_chapters[self._chunk_section]
        return chunk, section

    def components(self, query: str, mode: str = "hybrid", qv: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Each score of the fusion, in [0, 1]: per chunk `dense` and `lexical`, per section `title`
        (best title row) and, for an English question where the corpus has English titles,
        `title_en_lexical` (BM25 over them); a mode gets its own."""
        n = len(self.chunks)
        lang = detect_language(query)
        chunk_mask, title_mask = self._masks[lang]
        out = {}
        if mode in ("hybrid", "dense"):
            qv = self.embed(query) if qv is None else qv
            sims, ids = self.index.vectors.search(qv, n)
            dense = np.zeros(n, dtype=np.float32)
            ok = ids[0] >= 0
            dense[ids[0][ok]] = np.clip(sims[0][ok], 0.0, 1.0)
            out["dense"] = dense * chunk_mask
            title = np.zeros(len(self.section_keys), dtype=np.float32)
            np.maximum.at(title, self._title_section, np.clip(self._titles @ qv[0], 0.0, 1.0) * title_mask)
            out["title"] = title
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
            out["lexical"] = lexical * chunk_mask
            if self.index.bm25_titles_en is not None and lang == "en":  # only where there are English titles
                title_lex = np.zeros(len(self.section_keys), dtype=np.float32)
                np.maximum.at(title_lex, self._title_en_section, _scaled(self.index.bm25_titles_en.scores(tokens)))
                out["title_en_lexical"] = title_lex
        return out

    def fuse(self, parts: dict[str, np.ndarray], lang: str, mode: str, dense: float, title: float,
             title_en_lexical: float) -> tuple[np.ndarray, np.ndarray]:
        """Chunk and section scores from the components, with the given weights (see the constants)."""
        if mode == "dense":
            chunk = parts["dense"]
        elif mode == "lexical":
            chunk = parts["lexical"]
        else:
            chunk = dense * parts["dense"] + (1.0 - dense) * parts["lexical"]
        section = np.zeros(len(self.section_keys), dtype=np.float32)
        np.maximum.at(section, self._chunk_section, chunk)
        total = 1.0
        for name, w in (("title", title), ("title_en_lexical", title_en_lexical)):
            if name in parts and w > 0:
                section = section + w * parts[name]
                total += w
        return chunk, section / total

    def hits(self, chunk_scores: np.ndarray, section_scores: np.ndarray, k: int) -> list[Hit]:
        """The k best sections with evidence (score > 0), each shown by its best chunk; a section's
        near-duplicates are not shown after it, but listed in its `also_in`."""
        best: dict[int, int] = {}
        for i in np.argsort(-chunk_scores, kind="stable"):
            best.setdefault(int(self._chunk_section[i]), int(i))
        hits, shown = [], set()
        for sec in np.argsort(-section_scores, kind="stable"):
            if len(hits) == k or section_scores[sec] <= 0:
                break
            key = self.section_keys[sec]
            if key in shown or int(sec) not in best:
                continue
            also = self.duplicates.get(key, ())
            shown.update(also)
            c = self.chunks[best[int(sec)]]
            hits.append(Hit(section=c.section, title=c.title, text=c.text, score=round(float(section_scores[sec]), 6),
                            source=c.source, start=c.start, end=c.end, lang=c.lang, chunk=c.id,
                            chapter=c.chapter, id=c.key, title_en=self.title_en.get(key, ""),
                            also_in=also))
        return hits


def _scaled(scores: np.ndarray) -> np.ndarray:
    """Scores divided by their maximum (all zero stays zero)."""
    top = float(scores.max()) if len(scores) else 0.0
    return scores / top if top > 0 else scores
