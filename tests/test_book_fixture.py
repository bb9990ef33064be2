"""The loader on a fixture cut from the whole book (tests/fixtures/book, GPL-3.0, see its README):
one assertion per quirk of the book on what the loader produces."""

import re

import pytest

from conftest import REPO
from rag.corpus import read_corpus
from rag.text import normalize

FIXTURE = REPO / "tests" / "fixtures" / "book"
CH17 = "zh/ch17_模型压缩.md"
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")


@pytest.fixture(scope="module")
def corpus():
    return read_corpus(FIXTURE)


def _sections(corpus, source=CH17):
    return {s.id: s for s in corpus.sections if s.source == source}


def test_chapters_and_languages_come_from_folders_and_names(corpus):
    assert {(s.chapter, corpus.files[s.source]["lang"]) for s in corpus.sections} == {
        ("ch17", "zh"), ("ch02", "zh"), ("ch02", "en")}
    assert "README.md" not in corpus.files  # the fixture's attribution is not a chapter
    assert all(s.key == f"{s.chapter}/{s.id}" for s in corpus.sections)


def test_heading_in_a_code_fence_is_not_a_section(corpus):
    secs = _sections(corpus)
    assert not any("Horovod" in s.title for s in corpus.sections)
    body = corpus.texts[CH17][secs["17.10"].start:secs["17.10"].end]
    assert "# Initialize Horovod" in body  # the code stays in its section (and is searchable)


def test_reused_number_gets_a_distinct_id_and_a_warning(corpus):
    secs = _sections(corpus)
    assert (secs["17.4.6"].title, secs["17.4.6~2"].title) == ("后端压缩", "低秩分解")
    [warning] = corpus.report.examples["reused number"]
    assert "后端压缩" in warning and "低秩分解" in warning and "ch17/17.4.6~2" in warning


def test_restarted_local_numbering_belongs_to_its_section(corpus):
    secs = _sections(corpus)
    assert not {"1.1", "1.2", "1.3"} & set(secs)
    body = corpus.texts[CH17][secs["17.9.1"].start:secs["17.9.1"].end]
    assert "#### 1.1 设计思想" in body and "#### 1.3实验结果" in body


def test_empty_parent_heading_is_a_title_of_its_subsections(corpus):
    secs = _sections(corpus)
    assert "17.9" not in secs
    assert secs["17.9.1"].parents[-1] == "17.9 常用的轻量级网络有哪些？"
    zh02 = _sections(corpus, "zh/ch02_机器学习基础.md")
    assert "2.1" not in zh02 and zh02["2.1.1"].parents[-1] == "2.1 基本概念"


def test_chapter_of_only_headings_is_reported(corpus):
    assert not any(s.chapter == "ch16" for s in corpus.sections)
    [warning] = corpus.report.examples["only headings"]
    assert "ch16" in warning and "8 headings" in warning


def test_latex_becomes_readable_tokens(corpus):
    secs = _sections(corpus)
    assert secs["17.10.1"].title == "1×1 卷积作用？"
    chunk = next(c for c in corpus.chunks if c.section == "17.10.1")
    assert "$1\\times1" in chunk.text and "1×1" in normalize(chunk.text) and "\\times" not in normalize(chunk.text)


def test_emsp_is_not_text(corpus):
    sents = [s["text"] for s in corpus.sentences if "backbone" in s["text"]]
    assert sents and not any(t.startswith("&") or t.endswith(";") for t in sents)
    assert "&emsp;" not in normalize(corpus.texts[CH17]) and "\u2003" not in normalize(corpus.texts[CH17])


_MATH = re.compile(r"\$[^$]*\$")


def test_zero_width_spaces_are_neither_quoted_nor_matched(corpus):
    assert corpus.texts[CH17].count("\u200b") >= 3
    assert not any("\u200b" in _MATH.sub("", s["text"]) for s in corpus.sentences)
    assert not any("\u200b" in normalize(c.text) for c in corpus.chunks)


def test_a_quote_takes_math_with_a_zero_width_space_whole(corpus):
    """ch17 (as ch05 §5.8): "恰恰可以用$1\\times1<ZWSP>$的卷积进行代替" was cut around the math and lost it."""
    texts = [s["text"] for s in corpus.sentences]
    whole = [t for t in texts if t.startswith("NIN对不同通道") and t.endswith("的卷积进行代替。")]
    assert len(whole) == 1 and "恰恰可以用$1\\times1\u200b$的卷积" in whole[0]
    assert any(t.startswith("NIN(Network in Network)$^{[4]}\u200b$是第一篇探索$1\\times1\u200b$卷积核的论文") for t in texts)
    assert not any(t.endswith("恰恰可以用") or t == "的卷积进行代替。" for t in texts)


def test_image_links_are_neither_quoted_nor_matched(corpus):
    assert "![image](img/ch17/9.png)" in corpus.texts[CH17]
    assert not any("![" in s["text"] or "img/ch17" in s["text"] for s in corpus.sentences)
    assert not any("img/ch17" in normalize(c.text) for c in corpus.chunks)
    assert "SqueezeNet整体网络结构如下图所示：" in [s["text"] for s in corpus.sentences]


def test_table_rows_are_cells(corpus):
    rows = [s["text"] for s in corpus.sentences if s["section"] == "17.4.6" and s["text"].startswith(("优点", "缺点"))]
    assert rows[0] == "优点 | 可以降低存储和计算消耗；"  # cut at the <br />, outer bars left out
    table = corpus.texts[CH17][corpus.texts[CH17].index("| 事项"):corpus.texts[CH17].index("### 17.4.6 低秩分解")]
    assert normalize(table).startswith("事项 特点\n优点 可以降低存储和计算消耗； 一般可以压缩2-3倍")


def test_no_sentence_contains_markup(corpus):
    for s in corpus.sentences:
        t = s["text"]
        assert corpus.texts[s["source"]][s["start"]:s["end"]] == t
        assert "![" not in t and not _TAG.search(t) and "\u200b" not in _MATH.sub("", t), t
        assert t == t.strip() and not t.startswith(("#", "- ", "* ", "|", ">")), t


@pytest.fixture(scope="module")
def fixture_index(tmp_path_factory):
    from rag.embedding import load_encoder
    from rag.index import build_index, load_index

    path = tmp_path_factory.mktemp("fixture") / "idx"
    build_index(FIXTURE, path, load_encoder())
    return load_index(path)


def test_translation_with_shifted_numbers_pairs_by_content(fixture_index):
    idx = fixture_index
    en = [s for s in idx.sections if s.source.startswith("en/")]
    # the translation's "2.1 Understanding the essence of machine learning" is the original's 2.1.1
    assert [(s.id, s.title) for s in en] == [("2.1.1", "Understanding the essence of machine learning")]
    sent = next(s for s in idx.sentences if s["lang"] == "en")
    assert sent["original"]["section"] == "2.1.1" and "机器学习" in sent["original"]["text"]
    assert idx.manifest["warnings"]["translation renumbered"]["count"] == 1


def test_language_mask_is_per_chapter(fixture_index):
    from rag.embedding import load_encoder
    from rag.retriever import Retriever

    r = Retriever(fixture_index, load_encoder())
    # ch02 has English text: an English question is matched against it, not the Chinese original
    hits = r.search("What is the essence of machine learning?", k=3)
    assert hits[0].id == "ch02/2.1.1" and hits[0].lang == "en"
    # ch17 has no translation: the English question still reaches its Chinese text
    hits = r.search("How does SqueezeNet compress AlexNet?", k=3)
    assert hits[0].id == "ch17/17.9.1" and hits[0].lang == "zh" and hits[0].chapter == "ch17"
