"""Contract tests: the same searches through every store give the same top sections.

Stores: FAISS (the reference), Qdrant embedded (local mode, in a temporary directory), and a
Qdrant server when QDRANT_URL is set (e.g. QDRANT_URL=http://localhost:6333); otherwise that
case is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import REPO, FakeEncoder
from rag.evaluate import read_questions
from rag.index import build_index, is_index, load_index, version_dir
from rag.retriever import Retriever
from rag.types import DamagedIndexError, RagError
from synthetic import write_corpus

pytest.importorskip("qdrant_client")

QUESTIONS = [q["question"] for q in read_questions(REPO / "eval" / "questions.jsonl")]
URL = os.environ.get("QDRANT_URL")
STORES = ["qdrant-local", pytest.param("qdrant-url", marks=pytest.mark.skipif(
    not URL, reason="no Qdrant server here: set QDRANT_URL=http://HOST:6333 to run the contract against one"))]


def _spec(store, root):
    return f"qdrant:{root / 'qdrant'}" if store == "qdrant-local" else f"qdrant:{URL}"


def top_sections(r, q, mode, k=5):
    return [h.id for h in r.search(q, k=k, mode=mode)]


@pytest.fixture(scope="module", params=STORES)
def chapter_pair(request, retriever, tmp_path_factory):
    root = tmp_path_factory.mktemp("chapter-store")
    shutil.copytree(REPO / "corpus", root / "corpus")
    build_index(root / "corpus", root / "index", retriever.encoder, store=_spec(request.param, root))
    return retriever, Retriever(load_index(root / "index"), retriever.encoder)


@pytest.fixture(scope="module", params=STORES)
def book_pair(request, retriever, tmp_path_factory):
    """The book fixture (zh ch02, ch16, ch17, en ch02; GPL-3.0, see its README) in both stores."""
    root = tmp_path_factory.mktemp("book-store")
    shutil.copytree(REPO / "tests" / "fixtures" / "book", root / "book")
    build_index(root / "book", root / "faiss", retriever.encoder)
    build_index(root / "book", root / "other", retriever.encoder, store=_spec(request.param, root))
    return (Retriever(load_index(root / "faiss"), retriever.encoder),
            Retriever(load_index(root / "other"), retriever.encoder))


@pytest.fixture(scope="module", params=STORES)
def synthetic_pair(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic-store")
    corpus = write_corpus(root / "corpus")
    build_index(corpus, root / "faiss", FakeEncoder(), max_chars=200)
    build_index(corpus, root / "other", FakeEncoder(), max_chars=200, store=_spec(request.param, root))
    return (Retriever(load_index(root / "faiss"), FakeEncoder()),
            Retriever(load_index(root / "other"), FakeEncoder()))


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_chapter_same_top_sections(chapter_pair, mode):
    faiss_r, other = chapter_pair
    assert other.store.kind == "qdrant" and faiss_r.store.kind == "faiss"
    for q in QUESTIONS:
        assert top_sections(other, q, mode) == top_sections(faiss_r, q, mode), q


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_book_fixture_same_top_sections(book_pair, mode):
    faiss_r, other = book_pair
    for q in QUESTIONS:
        assert top_sections(other, q, mode) == top_sections(faiss_r, q, mode), q


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_thousands_of_chunks_same_top_sections(synthetic_pair, mode):
    faiss_r, other = synthetic_pair
    for q in QUESTIONS[::3]:
        assert top_sections(other, q, mode) == top_sections(faiss_r, q, mode), q


def test_chapter_same_scores_and_answers(chapter_pair):
    from rag.answer import answer

    faiss_r, other = chapter_pair
    for q in QUESTIONS[::5]:
        a, b = faiss_r.search(q, k=5), other.search(q, k=5)
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
        assert answer(q, other).answer == answer(q, faiss_r).answer


def test_manifest_records_the_store(chapter_pair):
    _, other = chapter_pair
    record = other.index.manifest["store"]
    assert record["kind"] == "qdrant" and record["points"] == len(other.chunks)
    assert json.loads((version_dir(REPO / "index") / "manifest.json").read_text())["store"] == {"kind": "faiss"}


def test_unreachable_server_is_a_clear_error(tmp_path, small_corpus):
    with pytest.raises(RagError, match="cannot reach the Qdrant store at http://127.0.0.1:9"):
        build_index(small_corpus, tmp_path / "index", FakeEncoder(), store="qdrant:http://127.0.0.1:9")
    assert not is_index(tmp_path / "index")  # no version was published


@pytest.mark.parametrize("spec", ["qdrant", "qdrant:", "milvus:/x", "faiss:/x"])
def test_unknown_store_spec(tmp_path, small_corpus, spec):
    with pytest.raises(RagError, match="unknown store"):
        build_index(small_corpus, tmp_path / "index", FakeEncoder(), store=spec)


def test_missing_collection_is_a_clear_error(tmp_path, small_corpus):
    build_index(small_corpus, tmp_path / "index", FakeEncoder(), store=f"qdrant:{tmp_path / 'q'}")
    path = version_dir(tmp_path / "index") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["store"]["collection"] = "gone"
    path.write_text(json.dumps(manifest))
    with pytest.raises(DamagedIndexError, match="no collection gone.*rag build --store qdrant:"):
        Retriever(load_index(tmp_path / "index"), FakeEncoder())


@pytest.mark.parametrize("store", [{"kind": "milvus"}, {"kind": "qdrant", "location": "q"}, "faiss"])
def test_manifest_schema_checks_the_store(tmp_path, small_corpus, store):
    build_index(small_corpus, tmp_path / "index", FakeEncoder())
    assert load_index(tmp_path / "index").manifest["store"] == {"kind": "faiss"}
    path = version_dir(tmp_path / "index") / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["store"] = store
    path.write_text(json.dumps(manifest))
    with pytest.raises(DamagedIndexError, match="'store' must be"):
        load_index(tmp_path / "index")


def test_build_deletes_only_the_collections_its_index_created(tmp_path, small_corpus):
    from qdrant_client import models

    from rag.store import _client

    q = tmp_path / "q"
    build_index(small_corpus, tmp_path / "a" / "index", FakeEncoder(), store=f"qdrant:{q}")
    name = json.loads((version_dir(tmp_path / "a" / "index") / "manifest.json").read_text())["store"]["collection"]
    client = _client(str(q.resolve()))
    whole = client.count(name, exact=True).count
    # Another index directory of the same name and corpus finds the collection whole: it keeps it.
    build_index(small_corpus, tmp_path / "b" / "index", FakeEncoder(), store=f"qdrant:{q}")
    assert client.count(name, exact=True).count == whole
    # Half-written (a killed build): only the index that created it may replace it.
    client.delete(name, points_selector=models.PointIdsList(points=[0]))
    with pytest.raises(RagError, match="did not create"):
        build_index(small_corpus, tmp_path / "c" / "index", FakeEncoder(), store=f"qdrant:{q}")
    assert client.count(name, exact=True).count == whole - 1
    build_index(small_corpus, tmp_path / "a" / "index", FakeEncoder(), store=f"qdrant:{q}")
    assert client.count(name, exact=True).count == whole
