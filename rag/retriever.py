"""Retriever: dense + lexical (BM25) search, fused by the question's language, per section.

Candidate retrieval: each scorer (dense vectors, BM25 per language, section titles) gives its
top-N candidates from the store (see store.py); only those are fused. Scores below a scorer's
candidate cut are unknown but bounded by the cut, so after fusing, the top k sections are
checked against the best score anything outside the candidates could reach (a threshold
algorithm). If the check fails, the N of the lists whose cut blocks it grows fourfold (see
`_blocking`) and the search repeats; once an N covers the corpus its list is complete. The
ranking is therefore the one a full scan gives (a test compares them over both question
sets), at a cost that grows with N and the postings of the query's words, not with the corpus.
"""

from __future__ import annotations

import os
import re
import sys
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dedup import neighbours
from .glossary import translations
from .text import normalize
from .embedding import Encoder, load_encoder
from .lang import detect_language
from .lexical import term_weights
from .index import DEFAULT_INDEX, LoadedIndex, build_index, load_index, manifest_corpus, read_manifest, rebuild_hint
from .store import Store, open_store, store_spec
from .types import DamagedIndexError, Hit, IndexMissingError, RagError, StaleIndexError

MODES = ("hybrid", "dense", "lexical")
MAX_QUERY_CHARS = 2000
MAX_K = 100

# Fusion, by question language. A chunk scores DENSE_WEIGHT * cosine + the rest * BM25 (divided
# by the query's top BM25 score over all languages); a section scores the weighted sum of its best
# chunk and its best title row (cosine), over the sum of the weights, so every score stays in
# [0, 1]. Fitted by cross-validation on the dev parts of eval/questions.jsonl and
# eval/book_questions.jsonl (eval/tools/cv_weights.py; README).
DENSE_WEIGHT = {"zh": 0.3, "en": 0.4}
# A question in a language some chapters have no text in (an English question, a Chinese-only
# chapter) is matched cross-lingually: mostly dense, with BM25 over its glossary translations.
CROSS_LINGUAL_DENSE_WEIGHT = 0.7
TITLE_WEIGHT = {"zh": 0.2, "en": 0.2}
# A lone Chinese character of the question weighs this much in BM25 (lexical.term_weights): CV
# objective zh 1.301 -> 1.343 (book hit@1 0.736 -> 0.767); English questions keep 1 (their Chinese
# tokens are translations, not typed).
SINGLE_CHAR_WEIGHT = {"zh": 0.5, "en": 1.0}
# A question that is a section's title (punctuation, spacing and case aside, and with or without
# what the title holds in brackets: "什么是批归一化（Batch Normalization）", "DetNet（贡献者：...）"; a
# heading of either language or a reviewed English title) ranks that section first in hybrid search: the book's
# headings are its questions, and "什么是迁移学习？" should find "11.1.1 什么是迁移学习？", not the
# sections whose longer text shares its words. Added like a follow-up's boost (scores can exceed 1).
TITLE_MATCH_BOOST = 1.0
_PARENS = re.compile(r"[（(][^（()）]*[）)]")
# Candidates asked from each scorer at first: max(CANDIDATES, CANDIDATES_PER_HIT * k).
CANDIDATES = 100
CANDIDATES_PER_HIT = 10
# The most new BM25 candidates a growth round takes at once to settle the check (see _rank).
LEXICAL_JUMP_MAX = 2_000


@dataclass(frozen=True)
class Retrieval:
    """One search: the hits, every section's score (indexed like Retriever.section_keys; sections
    outside the candidates score 0), the query vector (None in lexical mode) and its language."""

    hits: list[Hit]
    section_scores: np.ndarray
    query_vector: np.ndarray | None
    language: str
    candidates: int  # chunks scored (the union of the scorers' candidates, last round)


def title_key(text: str) -> str:
    """A title or question as exact-title matching compares it: compatibility-normalized,
    case-folded, letters, digits, CJK characters and + # only ("DeepLabv3+" is not "DeepLabv3")."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", normalize(text or "")).casefold()
                   if ch.isalnum() or ch in "+#")


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

    def __init__(self, index: LoadedIndex, encoder: Encoder, store: Store | None = None):
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
        self._title_section = np.array([keys[key] for key, _ in index.title_rows], dtype=np.int64)
        # English titles (toc.en.tsv): shown on hits; title rows for English questions (index.title_rows).
        self.title_en = {s.key: s.title_en for s in index.sections if s.title_en}
        self._by_title: dict[str, dict[str, None]] = {}  # title_key -> the sections with that title, in order
        for s in index.sections:
            for t in (s.title, s.title_en):
                for key in {title_key(t), title_key(_PARENS.sub("", t))} - {""}:
                    self._by_title.setdefault(key, {})[s.key] = None
        # Near-duplicate sections: a search shows the best of them and lists the others in also_in.
        self.duplicates = {k: v for k, v in neighbours(index.duplicates).items() if k in keys}
        chunk_langs = np.array([c.lang for c in self.chunks])
        title_langs = np.array([lang for _, lang in index.title_rows])
        chunk_chapters = np.array([c.chapter for c in self.chunks])
        # A question is matched against text in its own language in the chapters that have some
        # (a translation beside the original). Where some chapters have none, it is matched
        # cross-lingually there, and then against the text of every language in every chapter
        # (an English question reads ch01-04's Chinese originals too: dev CV hit@1 on the book
        # 0.586 -> 0.606, with English text 0.50 -> 0.61 on dev).
        self._masks, self._cross = {}, {}
        for lang in ("zh", "en"):
            has = {ch for ch, lg in zip(chunk_chapters, chunk_langs) if lg == lang}
            own_chunks = chunk_langs == lang
            self._cross[lang] = bool(np.any(~own_chunks & ~np.isin(chunk_chapters, list(has))))
            self._masks[lang] = (np.ones(len(chunk_langs), bool), np.ones(len(title_langs), bool)) if self._cross[lang] \
                else (own_chunks, title_langs == lang)
        self.store: Store = store if store is not None else open_store(index)
        self.candidates = CANDIDATES
        self._chunk_lang = chunk_langs
        # Title rows of each section (CSR) and its first chunk (what a section without a scored
        # chunk shows, as a full scan's stable sort would).
        order = np.argsort(self._title_section, kind="stable")
        bounds = np.searchsorted(self._title_section[order], np.arange(len(self.section_keys) + 1))
        self._title_rows, self._title_starts, self._title_ends = order, bounds[:-1], bounds[1:]
        self._section_chunks = np.argsort(self._chunk_section, kind="stable")  # each section's chunks (CSR)
        self._section_chunk_starts = np.searchsorted(self._chunk_section[self._section_chunks],
                                                     np.arange(len(self.section_keys) + 1))
        self._first_chunk = np.full(len(self.section_keys), -1, dtype=np.int64)
        present, first = np.unique(self._chunk_section, return_index=True)
        self._first_chunk[present] = first

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
                                    f"{manifest['encoder']['id']!r} makes {dim}. {rebuild_hint(index_dir, manifest)}")
        return cls(index, encoder)

    def search(self, query: str, k: int = 5, mode: str = "hybrid", chapters=None) -> list[Hit]:
        """The k best sections for query; mode is 'hybrid' (default), 'dense' or 'lexical'.

        `chapters` (e.g. ["ch05", "ch10"]) limits the search to those chapters; None searches all.
        """
        return self.retrieve(query, k, mode, chapters=chapters).hits

    def retrieve(self, query: str, k: int = 5, mode: str = "hybrid", qv: np.ndarray | None = None,
                 boost: dict[str, float] | None = None, chapters=None) -> Retrieval:
        """Search once and keep what an answer needs: hits, section scores, the query vector.

        boost: qualified section id -> an amount added to that section's score when it is above 0
        (a follow-up question favours the previous turn's sections); the ranking stays exact.
        chapters: as for `search`; sections outside them score 0.
        """
        query = check_query(query, k, mode)
        in_chapters = self.chapter_mask(chapters)
        if mode == "hybrid":
            boost = {**(boost or {}), **self.title_match(query)}
        # Ranked for enough sections that k remain after near-duplicates are folded into also_in:
        # k first, deeper only when folding left fewer than k.
        depth = k
        while True:
            chunks, chunk_scores, sections, section_scores, qv, lang, fuse = self._rank(query, mode, depth, qv, boost,
                                                                                      in_chapters)
            hits, shown = [], set()
            for sec, score, best in zip(sections[:depth], section_scores[:depth],
                                        self._best_chunks(sections[:depth], chunks, chunk_scores, lang, fuse)):
                if score <= 0 or len(hits) == k:
                    break
                key = self.section_keys[sec]
                if key in shown:
                    continue
                also = self.duplicates.get(key, ())
                shown.update(also)
                c = self.chunks[best]
                hits.append(Hit(section=c.section, title=c.title, text=c.text, score=round(float(score), 6),
                                source=c.source, start=c.start, end=c.end, lang=c.lang, chunk=c.id,
                                chapter=c.chapter, id=c.key, title_en=self.title_en.get(key, ""), also_in=also))
            if len(hits) == k or depth >= MAX_K or int(np.sum(section_scores > 0)) < depth:
                break
            depth = min(MAX_K, 2 * depth)
        full = np.zeros(len(self.section_keys), dtype=np.float32)
        full[sections] = section_scores
        return Retrieval(hits, full, qv, lang, len(chunks))

    def title_match(self, query: str) -> dict[str, float]:
        """The boost of the sections whose title is the question (see TITLE_MATCH_BOOST)."""
        return {key: TITLE_MATCH_BOOST for key in self._by_title.get(title_key(query), ())}

    def translated_tokens(self, query: str, tokens, lang: str) -> list[tuple[str | None, str]]:
        """The other language's tokens a question is read with where its own has no text, each
        with the question token it translates (None for a glossary term's): the tokens of the
        glossary's translations of the question's terms, then for an English question each token's
        learned translation (index.word_translations)."""
        out = [(None, t) for t in self.index.tokenize(" ".join(translations(query, self.index.glossary)))]
        if lang == "en":
            learned = self.index.word_translations
            out += [(t, learned[t]) for t in tokens if t in learned]
        return out

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

    def _rank(self, query: str, mode: str, k: int, qv: np.ndarray | None, boost: dict[str, float] | None = None,
              in_chapters: np.ndarray | None = None):
        """Candidate chunks (ascending ids) with fused scores, candidate sections ranked best first,
        the query vector, its language and `fuse`, which scores any chunks the same way.

        in_chapters (per section): the chapter filter, a mask on the fused chunk scores and on the
        title scores, so sections outside it score 0 and the bounds stay bounds.
        """
        boosted = np.zeros(len(self.section_keys), dtype=np.float32)
        for key, amount in (boost or {}).items():
            if key in self.section_index:
                boosted[self.section_index[key]] = amount
        # every chunk of a boosted section is a candidate, so its score is exact
        boosted_chunks = np.flatnonzero(boosted[self._chunk_section] != 0) if boost else np.zeros(0, np.int64)
        lang = detect_language(query)
        chunk_mask, title_mask = self._masks[lang]
        if in_chapters is not None:
            chunk_mask = chunk_mask & in_chapters[self._chunk_section]
            title_mask = title_mask & in_chapters[self._title_section]
        use_dense, use_lexical = mode in ("hybrid", "dense"), mode != "dense"
        # With chapters matched cross-lingually beside own-language ones, every chunk is scored
        # the cross-lingual way, so that the scores of both kinds compare.
        w = CROSS_LINGUAL_DENSE_WEIGHT if self._cross[lang] else DENSE_WEIGHT[lang]
        wd, wl = {"hybrid": (w, 1.0 - w), "dense": (1.0, 0.0), "lexical": (0.0, 1.0)}[mode]
        if use_dense:
            qv = self.embed(query) if qv is None else qv
        if use_lexical:
            # Own-language text with the question's tokens; the other languages' text (only where a
            # chapter has none in the question's language) with the glossary's translations and, for
            # an English question, the words learned from the English titles (toc.py) added.
            # Every language's BM25 is divided by the top score over all of them (see below).
            tokens = self.index.tokenize(normalize(query))
            token_lists = {lang: tokens} if lang in self.store.languages else {}
            if self._cross[lang]:
                cross_tokens = tokens + [t for _, t in self.translated_tokens(query, tokens, lang)]
                token_lists.update({other: cross_tokens for other in self.store.languages if other != lang})
            weights = {l: term_weights(toks, SINGLE_CHAR_WEIGHT[lang]) for l, toks in token_lists.items()}
        wt = TITLE_WEIGHT[lang]
        n_all = max(len(self.chunks), len(self.index.sections))
        n0 = max(self.candidates, CANDIDATES_PER_HIT * k)
        n = {"dense": n0, "title": n0, **{("lexical", l): n0 for l in token_lists}} if use_lexical else \
            {"dense": n0, "title": n0}
        asked: dict = {}  # source -> (n, Ranked): a list whose n did not change is not asked again

        def ask(source, call):
            if source not in asked or asked[source][0] != n[source]:
                asked[source] = (n[source], call())
            return asked[source][1]

        while True:
            lists, d_cut, l_cut, top, matched = [boosted_chunks], 0.0, 0.0, 0.0, []
            if use_dense:
                dense_top = ask("dense", lambda: self.store.dense(qv, n["dense"]))
                lists.append(dense_top.ids)
                d_cut = min(max(dense_top.cut, 0.0), 1.0)
            if use_lexical:
                lexical_top = {l: ask(("lexical", l), lambda l=l, toks=toks: self.store.lexical(
                    l, toks, n["lexical", l], weights=weights[l])) for l, toks in token_lists.items()}
                lists += [r.ids for r in lexical_top.values()]
                # a language's maximum is the first score of its ranked list (all zero: it adds nothing).
                # All languages are divided by the top of them all: scaled by its own maximum, the
                # English text of four chapters matched an English question's weakest word as well
                # as the Chinese text its translations matched best (CV objective en 1.123 -> 1.195).
                matched = [l for l, r in lexical_top.items() if len(r.scores) and r.scores[0] > 0]
                top = max((float(lexical_top[l].scores[0]) for l in matched), default=0.0)
                l_cuts = {l: lexical_top[l].cut / top for l in matched}
                l_cut = max(l_cuts.values(), default=0.0)
            chunks = np.unique(np.concatenate(lists)) if lists else np.zeros(0, np.int64)

            def fuse(ids: np.ndarray) -> np.ndarray:
                """The fused scores of any chunks (from the ranked lists, else from the store)."""
                out = np.zeros(len(ids), dtype=np.float32)
                if use_dense:
                    out += wd * np.clip(self._complete(ids, dense_top, lambda x: self.store.dense_scores(qv, x)), 0.0, 1.0)
                if use_lexical and matched:
                    lexical = np.zeros(len(ids), dtype=np.float32)
                    for l in matched:
                        sel = np.flatnonzero(self._chunk_lang[ids] == l)
                        raw = self._complete(ids[sel], lexical_top[l],
                                             lambda x: self.store.lexical_scores(l, token_lists[l], x, weights=weights[l]))
                        lexical[sel] = raw / top
                    out += wl * lexical
                return out * chunk_mask[ids]

            fused = fuse(chunks)
            chunk_bound = wd * d_cut + wl * l_cut  # no chunk outside the candidates scores more

            sections = np.unique(self._chunk_section[chunks])
            t_cut = 0.0
            if use_dense:
                title_top = ask("title", lambda: self.store.titles(qv, n["title"]))
                t_cut = min(max(title_top.cut, 0.0), 1.0)
                sections = np.union1d(sections, self._title_section[title_top.ids])
            best = np.zeros(len(sections), dtype=np.float32)
            np.maximum.at(best, np.searchsorted(sections, self._chunk_section[chunks]), fused)
            # A section's upper bound is (max(best, chunk bound) + bonus) / total; the bonus (its
            # title scores) is exact for every candidate section.
            score, bonus, wt_used, total = best.copy(), np.zeros(len(sections), np.float32), 0.0, 1.0
            if use_dense and wt > 0:
                title = self._title_scores(qv, sections, title_mask)
                score += wt * title
                bonus += wt * title
                wt_used = wt
                total += wt
            score = score / total
            whole = boosted[sections] != 0  # sections whose chunks are all candidates: exact scores
            score = score + boosted[sections] * (score > 0)
            order = np.lexsort((sections, -score))
            sections, score, bonus, best, whole = sections[order], score[order], bonus[order], best[order], whole[order]
            head = min(k, int(np.sum(score > 0)))

            def exact(chunk_bound: float, t_cut: float) -> bool:
                """Exact when each of the top sections has its best chunk among the candidates and
                nothing else can reach the k-th score (with fewer than k hits: score above 0)."""
                upper = np.where(whole, score, (np.maximum(best, chunk_bound) + bonus) / total)
                outside = (chunk_bound + wt_used * t_cut) / total
                rest = max(float(upper[head:].max(initial=0.0)), outside)
                return (chunk_bound == 0 or bool(np.all((best[:head] > chunk_bound) | whole[:head]))) and \
                    (rest < score[head - 1] if head == k else rest <= 0)

            if exact(chunk_bound, t_cut):
                return chunks, fused, sections, score, qv, lang, fuse
            ranked = {"dense": dense_top if use_dense else None, "title": title_top if use_dense else None,
                      **({("lexical", l): r for l, r in lexical_top.items()} if use_lexical else {})}
            # BM25 lists' lengths that settle the check by themselves (their scores are summed already);
            # when that takes more than LEXICAL_JUMP_MAX new candidates (each one's vector and title
            # is then scored: ~3 us at 10^6 chunks) and the dense cut alone blocks, the dense list
            # grows instead (an HNSW search for 4x the candidates costs a few ms there).
            wanted = self._lexical_jump(exact, lexical_top, token_lists, weights, top, l_cuts, wd * d_cut, wl, t_cut,
                                        n, n_all) if use_lexical else {}
            if sum(v - n[s] for s, v in wanted.items()) > LEXICAL_JUMP_MAX:
                wanted = {"dense": 4 * n["dense"]} if use_dense and not dense_top.complete else {}
            grow = _blocking(exact, {s: r for s, r in ranked.items() if r is not None and not r.complete
                                     and n[s] < n_all}, wd * d_cut, wl, l_cuts if use_lexical else {},
                             t_cut if wt_used else 0.0, wanted)
            if not grow:
                return chunks, fused, sections, score, qv, lang, fuse
            for s in grow:
                n[s] = wanted.get(s, 4 * n[s])

    def _lexical_jump(self, exact, lexical_top: dict, token_lists: dict, weights: dict, top: float, l_cuts: dict,
                      dense_part: float, wl: float, t_cut: float, n: dict, n_all: int) -> dict:
        """The BM25 lists' lengths that settle the check with the other lists as they are:
        {("lexical", lang): n}, or {} when taking every BM25 cut as 0 would not settle it.

        The largest BM25 cut that still passes is found by bisection, and each BM25 list whose
        cut is above it is asked for every document scoring above it, plus one (whose score is
        the new cut). The FAISS store answers from the query's summed postings (`lexical_above`,
        no scoring again); stores without it ({}) grow by 4x as `_blocking` says.
        """
        above = getattr(self.store, "lexical_above", None)
        blocking = [l for l, c in l_cuts.items() if c > 0 and not lexical_top[l].complete]
        if above is None or not blocking or not exact(dense_part, t_cut):
            return {}
        low, high = 0.0, max(l_cuts.values())  # the check passes at low and fails at high
        for _ in range(20):
            mid = (low + high) / 2
            low, high = (mid, high) if exact(dense_part + wl * mid, t_cut) else (low, mid)
        out = {}
        for l in blocking:
            if l_cuts[l] > low:
                want = min(n_all, above(l, token_lists[l], low * top, weights[l]) + 1)
                if want > n["lexical", l]:
                    out["lexical", l] = want
        return out

    @staticmethod
    def _complete(chunks: np.ndarray, ranked, fetch) -> np.ndarray:
        """Scores of chunks: from the ranked list where listed, else fetched from the store."""
        out = np.zeros(len(chunks), dtype=np.float32)
        order = np.argsort(ranked.ids)
        listed_ids, listed_scores = ranked.ids[order], ranked.scores[order]
        pos = np.clip(np.searchsorted(listed_ids, chunks), 0, max(len(listed_ids) - 1, 0))
        known = listed_ids[pos] == chunks if len(listed_ids) else np.zeros(len(chunks), bool)
        out[known] = listed_scores[pos[known]]
        if not ranked.complete and not known.all():
            out[~known] = fetch(chunks[~known])
        return out

    def _title_scores(self, qv: np.ndarray, sections: np.ndarray, title_mask: np.ndarray) -> np.ndarray:
        """Each section's best title similarity (over its titles in the question's language)."""
        starts, ends = self._title_starts[sections], self._title_ends[sections]
        lens = ends - starts
        idx = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens) + np.repeat(starts, lens)
        rows = self._title_rows[idx]
        sims = np.clip(self.store.title_scores(qv, rows), 0.0, 1.0) * title_mask[rows]
        out = np.zeros(len(sections), dtype=np.float32)
        np.maximum.at(out, np.repeat(np.arange(len(sections)), lens), sims)
        return out

    def _best_chunks(self, sections: np.ndarray, chunks: np.ndarray, chunk_scores: np.ndarray, lang: str,
                     fuse) -> list[int]:
        """The chunk each section is shown by: its best-scoring chunk in the question's language
        when one scores above 0 (a translation is shown rather than its original), else its
        best-scoring candidate (ties: the first), else its first chunk. `fuse` scores any chunks."""
        out = []
        own = self._chunk_section[chunks]
        for sec in sections:
            mine = np.flatnonzero(own == sec)
            best = int(chunks[mine[np.argmax(chunk_scores[mine])]]) if len(mine) and chunk_scores[mine].max() > 0 else -1
            if best >= 0 and self._chunk_lang[best] != lang:
                ids = self._section_chunks[self._section_chunk_starts[sec]:self._section_chunk_starts[sec + 1]]
                ids = ids[self._chunk_lang[ids] == lang]
                scores = fuse(ids) if len(ids) else None
                if scores is not None and scores.max() > 0:
                    best = int(ids[np.argmax(scores)])
            out.append(best if best >= 0 else int(self._first_chunk[sec]))
        return out


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
        corpus = manifest_corpus(index_dir, manifest)
        build_index(corpus, index_dir, load_encoder(manifest["encoder"]["id"]), manifest["index_type"],
                    manifest["chunking"]["max_chars"], progress=True, store=store_spec(manifest, index_dir))
    return Retriever.load(index_dir)


def _blocking(exact, growable: dict, dense_part: float, wl: float, l_cuts: dict, t_cut: float,
              first=()) -> list:
    """The incomplete lists to grow when the exactness check fails: those whose cut alone blocks it.

    first: the lists to grow by themselves if they can settle it (the check passes with all
    their cuts taken as 0): the BM25 lists when `Retriever._lexical_jump` found lengths that
    settle it (their scores are all summed already), else the dense list. When dense and BM25
    can each settle it alone, growing both 4x per round made the slow queries at 10^6 chunks
    (docs/ARCHITECTURE.md).

    A list blocks if the check passes once its cut is taken as 0 (as if it were complete) and the
    other cuts stay. When no single list does (the cuts block together), every incomplete list
    with a cut above 0 grows; when none has one (a tie at the k-th score), every incomplete list.
    Which lists grow only decides the cost: the check alone decides when the ranking is exact.
    """
    def bound(dropped):  # the check's bounds with the cuts of the `dropped` lists taken as 0
        l_part = wl * max((c for l, c in l_cuts.items() if ("lexical", l) not in dropped), default=0.0)
        return (0.0 if "dense" in dropped else dense_part) + l_part, 0.0 if "title" in dropped else t_cut

    cuts = {"dense": dense_part, "title": t_cut, **{("lexical", l): c for l, c in l_cuts.items()}}
    first = [s for s in growable if s in first and cuts.get(s, 0.0) > 0]
    if first and exact(*bound(first)):
        return first
    alone = [s for s in growable if cuts.get(s, 0.0) > 0 and exact(*bound([s]))]
    return alone or [s for s in growable if cuts.get(s, 0.0) > 0] or list(growable)
