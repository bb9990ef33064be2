import pytest

from conftest import REPO
from rag.retriever import MAX_K, MAX_QUERY_CHARS, detect_language
from rag.types import RagError


@pytest.mark.parametrize("mode", ["hybrid", "dense", "lexical"])
def test_negative_transfer_in_every_mode(retriever, mode):
    hits = retriever.search("什么是负迁移？", k=5, mode=mode)
    assert hits[0].section == "10.14"
    assert len({h.section for h in hits}) == len(hits)  # one hit per section
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_english_question_finds_chinese_section(retriever):
    assert retriever.search("What is negative transfer?", k=3)[0].section == "10.14"


def test_hits_point_into_their_files(retriever):
    for h in retriever.search("端到端深度学习的优缺点", k=5):
        text = (REPO / "corpus" / h.source).read_text(encoding="utf-8")
        assert text[h.start:h.end] == h.text
        assert h.title and h.lang in ("zh", "en")


def test_k_larger_than_the_corpus_returns_every_section_once(retriever):
    hits = retriever.search("迁移学习", k=MAX_K, mode="dense")
    assert len(hits) == len({h.section for h in hits}) == len(retriever.section_keys)


@pytest.mark.parametrize("query", ["？？？", "!!!", "🙂🙂🙂", "zebra quantum", "迁移 transfer 学习 learning"])
def test_odd_queries_do_not_crash(retriever, query):
    for mode in ("hybrid", "dense", "lexical"):
        hits = retriever.search(query, k=3, mode=mode)
        assert all(h.score > 0 for h in hits)


def test_query_without_lexical_tokens_has_no_lexical_hits(retriever):
    assert retriever.search("？？？", mode="lexical") == []


@pytest.mark.parametrize("query,k,mode,message", [
    ("", 5, "hybrid", "empty"),
    ("   \n\t", 5, "hybrid", "empty"),
    ("x" * (MAX_QUERY_CHARS + 1), 5, "hybrid", f"limit is {MAX_QUERY_CHARS}"),
    ("ok", 0, "hybrid", "k must be"),
    ("ok", -1, "hybrid", "k must be"),
    ("ok", 10**9, "hybrid", "k must be"),
    ("ok", "5", "hybrid", "k must be"),
    ("ok", 5, "fuzzy", "hybrid, dense, lexical"),
    (None, 5, "hybrid", "empty"),
])
def test_bad_arguments_get_clear_errors(retriever, query, k, mode, message):
    with pytest.raises(RagError, match=message):
        retriever.search(query, k=k, mode=mode)


def test_detect_language():
    assert detect_language("什么是 transfer learning") == "zh"
    assert detect_language("What is it?") == "en"
    assert detect_language("什麼是遷移學習") == "zh"  # traditional characters are Chinese too
