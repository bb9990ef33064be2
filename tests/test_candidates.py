"""Candidate retrieval ranks exactly like a full scan of every chunk.

`full_scan` is the retriever's scoring before candidate retrieval (main's `Retriever.scores` and
`Retriever.hits`: every chunk from FAISS, BM25 over every chunk of each language divided by the
top score over all languages, per-chapter language masks), kept here as the reference; BM25 weighs
a Chinese question's lone characters as the retriever does (SINGLE_CHAR_WEIGHT), a question that
is a title boosts its section (Retriever.title_match) and a hit shows its best chunk in the
question's language when one scores.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import rag.retriever as retriever_module
from conftest import REPO, FakeEncoder
from rag.evaluate import read_questions
from rag.glossary import translations
from rag.index import build_index, load_index
from rag.lexical import term_weights
from rag.retriever import (CROSS_LINGUAL_DENSE_WEIGHT, DENSE_WEIGHT, SINGLE_CHAR_WEIGHT, TITLE_WEIGHT, Retriever,
                           check_query, detect_language)
from rag.text import normalize
from synthetic import write_corpus

QUESTIONS = [q["question"] for q in read_questions(REPO / "eval" / "questions.jsonl")]
MODES = ("hybrid", "dense", "lexical")
BOOK_FIXTURE = REPO / "tests" / "fixtures" / "book"  # zh ch02, ch16, ch17 and en ch02 (GPL-3.0, see its README)


def full_scores(r: Retriever, query: str, mode: str, chapters=None) -> tuple[np.ndarray, np.ndarray]:
    """Main's Retriever.scores before candidate retrieval: every chunk and section scored."""
    in_chapters = r.chapter_mask(chapters)
    index, n = r.index, len(r.chunks)
    lang = detect_language(query)
    chunk_mask, title_mask = r._masks[lang]
    langs = np.array([c.lang for c in r.chunks])
    lexical_sets = {l: (s, np.flatnonzero(langs == l)) for l, s in index.bm25.items()}
    title = None
    if mode in ("hybrid", "dense"):
        qv = r.embed(query)
        sims, ids = index.vectors.search(qv, n)
        dense = np.zeros(n, dtype=np.float32)
        ok = ids[0] >= 0
        dense[ids[0][ok]] = np.clip(sims[0][ok], 0.0, 1.0)
        title = np.zeros(len(r.section_keys), dtype=np.float32)
        np.maximum.at(title, r._title_section, np.clip(index.titles @ qv[0], 0.0, 1.0) * title_mask)
    if mode != "dense":
        tokens = index.tokenize(normalize(query))
        lexical = np.zeros(n, dtype=np.float32)
        if lang in lexical_sets:
            scorer, ids = lexical_sets[lang]
            lexical[ids] = scorer.scores(tokens, term_weights(tokens, SINGLE_CHAR_WEIGHT[lang]))
        if r._cross[lang]:
            cross_tokens = tokens + index.tokenize(" ".join(translations(query, index.glossary)))
            if lang == "en":  # the words learned from the English titles
                cross_tokens += [index.word_translations[t] for t in tokens if t in index.word_translations]
            for other, (scorer, ids) in lexical_sets.items():
                if other != lang:
                    lexical[ids] = scorer.scores(cross_tokens, term_weights(cross_tokens, SINGLE_CHAR_WEIGHT[lang]))
        if lexical.max(initial=0.0) > 0:  # divided by the top over all languages
            lexical /= lexical.max()
    if mode == "dense":
        chunk = dense
    elif mode == "lexical":
        chunk = lexical
    else:
        w = CROSS_LINGUAL_DENSE_WEIGHT if r._cross[lang] else DENSE_WEIGHT[lang]
        chunk = w * dense + (1.0 - w) * lexical
    chunk = chunk * chunk_mask
    section = np.zeros(len(r.section_keys), dtype=np.float32)
    np.maximum.at(section, r._chunk_section, chunk)
    total = 1.0
    if title is not None and TITLE_WEIGHT[lang] > 0:
        section = section + TITLE_WEIGHT[lang] * title
        total += TITLE_WEIGHT[lang]
    section = section / total
    if in_chapters is not None:
        section = section * in_chapters
        chunk = chunk * in_chapters[r._chunk_section]
    return chunk, section


def full_scan(r: Retriever, query: str, mode: str, k: int, boost: dict | None = None,
              chapters=None) -> list[tuple[str, int, float]]:
    """(qualified id, shown chunk, score) of the k best sections: main's Retriever.hits over full_scores
    (with main's follow-up boost of answer.analyse: added to a favoured section scoring above 0)."""
    chunk_scores, section_scores = full_scores(r, check_query(query, k, mode), mode, chapters)
    if mode == "hybrid":  # main's exact-title rule (Retriever.title_match), a boost like a follow-up's
        boost = {**(boost or {}), **r.title_match(query)}
    for key, amount in (boost or {}).items():
        n = r.section_index[key]
        if section_scores[n] > 0:
            section_scores[n] += amount
    best: dict[int, int] = {}
    lang = detect_language(query)
    for i in np.argsort(-chunk_scores, kind="stable"):
        best.setdefault(int(r._chunk_section[i]), int(i))
    for i in np.argsort(-chunk_scores, kind="stable"):  # ... shown in the question's language where it scores
        sec = int(r._chunk_section[i])
        if chunk_scores[i] > 0 and r.chunks[i].lang == lang and r.chunks[best[sec]].lang != lang:
            best[sec] = int(i)
    out, shown = [], set()
    for sec in np.argsort(-section_scores, kind="stable"):
        if section_scores[sec] <= 0 or len(out) == k:
            break
        if r.section_keys[sec] in shown:  # a near-duplicate of a section shown before
            continue
        shown.update(r.duplicates.get(r.section_keys[sec], ()))
        out.append((r.section_keys[sec], best[int(sec)], round(float(section_scores[sec]), 6)))
    return out


def candidates(r: Retriever, query: str, mode: str, k: int, boost: dict | None = None,
               chapters=None) -> list[tuple[str, int, float]]:
    hits = r.retrieve(query, k, mode, boost=boost, chapters=chapters).hits
    assert all(h.id == r.chunks[h.chunk].key and h.chapter == r.chunks[h.chunk].chapter for h in hits)
    return [(h.id, h.chunk, h.score) for h in hits]


def same(r, got, want):
    """Same sections in the same order, shown by the same chunks, with the same scores (to 1e-5)."""
    assert [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_allclose([g[2] for g in got], [w[2] for w in want], atol=1e-5)


@pytest.fixture
def tiny_candidates(monkeypatch):
    """Start from one candidate per scorer, so that the threshold check has to grow the lists:
    call it with the retriever under test (restored after the test)."""
    monkeypatch.setattr(retriever_module, "CANDIDATES_PER_HIT", 1)
    return lambda r: monkeypatch.setattr(r, "candidates", 1)


@pytest.mark.parametrize("mode", MODES)
def test_chapter_rankings_equal_a_full_scan(retriever, mode):
    for q in QUESTIONS:
        same(retriever, candidates(retriever, q, mode, 10), full_scan(retriever, q, mode, 10))


@pytest.mark.parametrize("mode", MODES)
def test_chapter_rankings_equal_a_full_scan_from_one_candidate(retriever, tiny_candidates, mode):
    tiny_candidates(retriever)
    for q in QUESTIONS:
        for k in (1, 5):
            same(retriever, candidates(retriever, q, mode, k), full_scan(retriever, q, mode, k))


@pytest.fixture(scope="module")
def synthetic_retriever(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    corpus = write_corpus(root / "corpus")
    build_index(corpus, root / "index", FakeEncoder(), max_chars=200)
    return Retriever(load_index(root / "index"), FakeEncoder())


@pytest.mark.parametrize("mode", MODES)
def test_thousands_of_chunks_rank_like_a_full_scan_while_scoring_few(synthetic_retriever, mode):
    r = synthetic_retriever
    scored = []
    for q in QUESTIONS:
        same(r, candidates(r, q, mode, 5), full_scan(r, q, mode, 5))
        scored.append(r.retrieve(q, 5, mode).candidates)
    # the point of it: most questions are settled with a small part of the corpus
    assert np.median(scored) < len(r.chunks) / 4, (np.median(scored), len(r.chunks))


def test_retrieve_keeps_every_sections_score(retriever):
    found = retriever.retrieve("什么是负迁移？", k=5, mode="hybrid")
    section = found.section_scores
    assert section.shape == (len(retriever.section_keys),) and section.dtype == np.float32
    best = retriever.section_keys[int(np.argmax(section))]
    assert best == retriever.search("什么是负迁移？", k=1)[0].id
    # every hit's score is its section's entry; sections outside the candidates score 0
    for h in found.hits:
        assert section[retriever.section_index[h.id]] == pytest.approx(h.score, abs=1e-6)
    assert (section >= 0).all() and (section > 0).sum() >= len(found.hits)


def test_retrieve_returns_what_an_answer_needs(retriever):
    found = retriever.retrieve("What is negative transfer?", k=3)
    assert found.hits == retriever.search("What is negative transfer?", k=3)
    assert found.query_vector.shape == (1, retriever.index.vectors.d) and found.language == "en"
    top = retriever.section_index[found.hits[0].id]
    assert found.section_scores[top] == pytest.approx(found.hits[0].score, abs=1e-6)
    assert retriever.retrieve("负迁移", k=3, mode="lexical").query_vector is None


@pytest.fixture(scope="module")
def book_retriever(retriever, tmp_path_factory):
    """The book fixture (chapters with and without a translation) with the real encoder."""
    root = tmp_path_factory.mktemp("book")
    shutil.copytree(BOOK_FIXTURE, root / "book")
    shutil.copyfile(REPO / "corpus" / "glossary.tsv", root / "book" / "glossary.tsv")
    build_index(root / "book", root / "index", retriever.encoder)
    return Retriever(load_index(root / "index"), retriever.encoder)


@pytest.mark.parametrize("mode", MODES)
def test_book_fixture_rankings_equal_a_full_scan(book_retriever, tiny_candidates, mode):
    r = book_retriever
    assert r._cross["en"] and not r._cross["zh"]  # English questions: ch02 in English, ch17 cross-lingually
    tiny_candidates(r)
    for q in QUESTIONS:
        for k in (1, 5):
            same(r, candidates(r, q, mode, k), full_scan(r, q, mode, k))


@pytest.mark.parametrize("mode", MODES)
def test_boosted_sections_rank_like_a_full_scan(retriever, tiny_candidates, mode):
    """A follow-up's boost (answer.analyse) on sections far down the list, or without evidence."""
    r = retriever
    tiny_candidates(r)
    for i, q in enumerate(QUESTIONS[::4]):
        ranked = full_scan(r, q, mode, 30)
        keys = [ranked[j][0] for j in (7, 20) if j < len(ranked)] + [r.section_keys[i % len(r.section_keys)]]
        boost = {key: 0.05 for key in keys}
        for k in (1, 5):
            same(r, candidates(r, q, mode, k, boost), full_scan(r, q, mode, k, boost))


@pytest.mark.parametrize("mode", MODES)
def test_chapter_filter_ranks_like_a_full_scan(book_retriever, tiny_candidates, mode):
    r = book_retriever
    tiny_candidates(r)
    for chapters in (["ch02"], ["ch17"]):
        for q in QUESTIONS[::3]:
            got = candidates(r, q, mode, 5, chapters=chapters)
            assert all(key.split("/")[0] in chapters for key, _, _ in got)
            same(r, got, full_scan(r, q, mode, 5, chapters=chapters))


def test_only_the_list_whose_cut_blocks_the_check_grows():
    """_blocking takes a list's cut as 0 with the weights the bound uses (wd·dense, wl·BM25 per
    language, the title cut as the check weighs it) and grows only the lists that alone unblock it."""
    from rag.retriever import _blocking

    def exact(chunk_bound, t_cut):  # a check that passes when the weighted cuts sum below 0.3
        return chunk_bound + 0.4 * t_cut < 0.3

    every = {"dense": None, "title": None, ("lexical", "zh"): None, ("lexical", "en"): None}
    # dense 0.2 + 0.7·0.5 = 0.55: without the BM25 cut 0.2 passes; without the dense one 0.35 does not
    assert _blocking(exact, every, 0.2, 0.7, {"zh": 0.5}, 0.0) == [("lexical", "zh")]
    # BM25 weighed by wl: dense 0.2 + 0.5·0.3 = 0.35; either cut alone taken as 0 passes (0.15, 0.2)
    assert _blocking(exact, every, 0.2, 0.5, {"zh": 0.3}, 0.0) == ["dense", ("lexical", "zh")]
    # dense 0.01 + 0.7·0.01 + 0.4·0.74 title = 0.313: only without the title cut does it pass
    assert _blocking(exact, every, 0.01, 0.7, {"zh": 0.01}, 0.74) == ["title"]
    # two languages: the bound takes their larger cut, so dropping one alone does not pass; nor
    # does dropping the dense cut (0.35): every list with a cut grows
    assert sorted(map(str, _blocking(exact, every, 0.2, 0.7, {"zh": 0.5, "en": 0.4}, 0.0))) == \
        sorted(map(str, ["dense", ("lexical", "zh"), ("lexical", "en")]))
    # a list already complete (not growable) is never grown, even if it has the blocking cut
    assert _blocking(exact, {"dense": None}, 0.2, 0.7, {"zh": 0.5}, 0.0) == ["dense"]
    # no cut above 0 (a tie at the k-th score): every incomplete list grows, as before
    assert _blocking(lambda *_: False, every, 0.0, 0.7, {}, 0.0) == list(every)


def test_growing_only_blocking_lists_asks_for_fewer_candidates(synthetic_retriever, monkeypatch):
    """Against growing every list (the old rule): the same exact rankings, no list asked for more
    candidates, fewer in all (at the default first N; from N=1 see docs/PERFORMANCE.md)."""
    r = synthetic_retriever
    asked = {}
    for name in ("dense", "lexical", "titles"):
        real = getattr(r.store, name)

        def spy(*args, _real=real, _name=name, **kwargs):  # (the BM25 lists' token weights come by keyword)
            asked[_name] = asked.get(_name, 0) + args[-1]
            return _real(*args, **kwargs)

        monkeypatch.setattr(r.store, name, spy)

    def run():
        asked.clear()
        return [candidates(r, q, "hybrid", 5) for q in QUESTIONS], dict(asked)

    new, new_asked = run()
    monkeypatch.setattr(retriever_module, "_blocking", lambda exact, growable, *_: list(growable))
    old, old_asked = run()
    for got, want in zip(new, old):
        same(r, got, want)
    for q, got in zip(QUESTIONS[::5], new[::5]):
        same(r, got, full_scan(r, q, "hybrid", 5))
    assert all(new_asked[s] <= old_asked[s] for s in old_asked), (new_asked, old_asked)
    assert sum(new_asked.values()) < sum(old_asked.values()), (new_asked, old_asked)
