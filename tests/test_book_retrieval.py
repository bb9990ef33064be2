"""Whole-book retrieval parts (issue 11): English titles from toc.en.tsv, glossary matching,
near-duplicate sections (also_in) and how eval counts them. Small corpora and the fake encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rag.dedup import duplicate_pairs, neighbours
from rag.dictionary import cedict_words, dictionary_translations, gloss_word
from rag.evaluate import with_duplicates
from rag.glossary import translations
from rag.index import build_index, heading_paths, load_index
from rag.lexical import Tokenizer
from rag.retriever import Retriever
from rag.toc import read_toc
from rag.wordalign import learn_word_translations
from rag.types import RagError, Section

CAT = ("猫是一种小型食肉动物，它们喜欢在阳光下睡觉，也喜欢追逐会动的小东西，比如毛线球和激光笔的光点。"
       "家猫大约在一万年前开始与人类一起生活，最早可能是为了捕捉粮仓里的老鼠。")
ZH = f"""# 第一章 动物

## 1.1 什么是猫？

{CAT}

## 1.2 什么是狗？

狗是人类的朋友。狗会看家，也会陪主人散步。卷积神经网络(Convolutional Neural Network)与狗无关。

## 1.3 猫的习性

{CAT}
"""
TOC = ("chapter\tfile\tline\tnumber\tzh\ten\n"
       "ch01\tch01_animals.zh.md\t1\t\t第一章 动物\tChapter 1 Animals\n"
       "ch01\tch01_animals.zh.md\t3\t1.1\t什么是猫？\tWhat is a cat?\n"
       "ch01\tch01_animals.zh.md\t11\t1.3\t猫的习性\tHabits of cats\n")


@pytest.fixture
def corpus(tmp_path):
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "ch01_animals.zh.md").write_text(ZH, encoding="utf-8")
    (d / "toc.en.tsv").write_text(TOC, encoding="utf-8")
    return d


@pytest.fixture
def built(corpus, fake_encoder):
    idx = corpus.parent / "index"
    build_index(corpus, idx, fake_encoder)
    return load_index(idx)


def test_english_titles_join_sections_by_file_and_line(built):
    en = {s.key: s.title_en for s in built.sections}
    assert en == {"ch01/1.1": "What is a cat?", "ch01/1.2": "", "ch01/1.3": "Habits of cats"}
    # a title row each (after the sections' own): English questions meet every section in English
    assert built.title_rows[-2:] == [("ch01/1.1", "en"), ("ch01/1.3", "en")]
    assert len(built.titles) == len(built.sections) + 2
    assert "toc.en.tsv" in built.manifest["corpus"]


def test_english_title_is_searchable_and_shown(built, fake_encoder):
    r = Retriever(built, fake_encoder)
    # 1.1 and 1.3 have the same Chinese text (near-duplicates, shown once); their English titles
    # decide which one an English question is shown
    hits = r.search("habits of cats", k=5, mode="dense")
    cat = next(h for h in hits if h.id in ("ch01/1.1", "ch01/1.3"))
    assert cat.id == "ch01/1.3" and cat.title_en == "Habits of cats" and cat.also_in == ("ch01/1.1",)
    cat = next(h for h in r.search("what is a cat", k=5, mode="dense") if h.id in ("ch01/1.1", "ch01/1.3"))
    assert cat.id == "ch01/1.1"
    hit = next(h for h in r.search("什么是猫", k=5) if h.id in ("ch01/1.1", "ch01/1.3"))
    assert hit.title_en in ("What is a cat?", "Habits of cats")
    assert "title_en" not in next(h for h in r.search("狗", k=5) if h.id == "ch01/1.2").to_dict()


def test_near_duplicates_show_once_with_also_in(built, fake_encoder):
    assert built.duplicates == [["ch01/1.1", "ch01/1.3"]]
    r = Retriever(built, fake_encoder)
    hits = r.search("猫喜欢在阳光下睡觉", k=5)
    ids = [h.id for h in hits]
    assert len({"ch01/1.1", "ch01/1.3"} & set(ids)) == 1
    cat = next(h for h in hits if h.id in ("ch01/1.1", "ch01/1.3"))
    assert set(cat.also_in) == {"ch01/1.1", "ch01/1.3"} - {cat.id}
    assert cat.to_dict()["also_in"] == list(cat.also_in)


def test_eval_counts_a_duplicate_of_gold_as_relevant():
    dups = neighbours([["a/1", "b/2"]])
    qs = with_duplicates([{"id": "q", "relevant": ["a/1", "c/3"]}, {"id": "n", "relevant": []}], dups)
    assert qs[0]["relevant"] == ["a/1", "b/2", "c/3"] and qs[1]["relevant"] == []


def test_duplicate_rule_thresholds():
    base = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(300))
    texts = {("zh", "x/1"): base, ("zh", "x/2"): base + "另加几句不同的话。",  # contained
             ("zh", "x/3"): base[:150] + base[::-1][:150],  # half shared: neither rule
             ("en", "x/4"): base, ("zh", "x/5"): base[:40], ("zh", "x/6"): base[:40]}  # too short
    assert duplicate_pairs(texts) == [["x/1", "x/2"]]
    # not transitive: a copy containing two different sections pairs with each, they stay apart
    other = "".join(chr(0x4E00 + (i * 104729) % 20000) for i in range(300))
    both = {("zh", "y/1"): base, ("zh", "y/2"): other, ("zh", "y/3"): base + other}
    assert duplicate_pairs(both) == [["y/1", "y/3"], ["y/2", "y/3"]]
    assert neighbours(duplicate_pairs(both))["y/3"] == ("y/1", "y/2")


def test_glossary_terms_match_whole_words():
    glossary = [("互联网协议", ["IP"]), ("领域", ["domain"])]
    assert translations("a tip about domains", glossary) == ["领域"]
    assert translations("what is an IP address", glossary) == ["互联网协议"]


def test_bad_toc_is_a_clear_error(tmp_path):
    p = tmp_path / "toc.en.tsv"
    p.write_text("file\tline\n", encoding="utf-8")
    with pytest.raises(RagError, match="expected the header"):
        read_toc(p)
    p.write_text(TOC.replace("\t3\t", "\tx\t"), encoding="utf-8")
    with pytest.raises(RagError, match="line number"):
        read_toc(p)


def test_word_translations_keep_only_pairs_both_directions_agree_on():
    tokenize = Tokenizer({w: 10 for w in ("卷积", "网络", "池化", "作用", "方法", "训练")})
    pairs = [("卷积网络", "Convolutional network"), ("池化的作用", "The role of pooling"),
             ("卷积的作用", "The role of convolution"), ("池化方法", "Pooling methods"),
             ("训练网络", "Training a network"), ("网络方法", "Network methods"),
             ("3D卷积", "3D convolution")]
    words = learn_word_translations(pairs, tokenize)
    assert words["pool"] == "池化" and words["convolut"] == "卷积" and words["network"] == "网络"
    assert words["role"] == "作用" and words["method"] == "方法"
    assert "train" not in words  # one title only: not enough evidence
    assert "3d" not in words and not any(w[0].isdigit() for w in words)  # numbers are not words
    assert learn_word_translations([], tokenize) == {}


def test_word_translations_reject_a_word_whose_best_match_prefers_another():
    tokenize = Tokenizer({w: 10 for w in ("模型", "剪枝", "压缩", "方法")})
    # "model" always comes with 模型, but so does "compression" in half of its titles: 模型's
    # best English word is "model", so "compression" must not take 模型.
    pairs = [("模型剪枝", "Model pruning"), ("模型压缩", "Model compression"), ("压缩方法", "Compression methods"),
             ("模型方法", "Model methods"), ("模型", "Model compression")]
    words = learn_word_translations(pairs, tokenize)
    assert words.get("model") == "模型" and words.get("compress") != "模型"


def test_dictionary_glosses_are_single_words():
    assert gloss_word("to train") == "train" and gloss_word("weight (of an object)") == "weight"
    assert gloss_word("gradient descent") is None and gloss_word("variant of 卷[juan3]") is None
    assert gloss_word("CL:個|个[ge4]") is None


def test_dictionary_translations_keep_corpus_words_and_let_learned_pairs_win():
    tokenize = Tokenizer({w: 10 for w in ("权重", "重量", "池塘", "猫咪")})
    words = [("权重", "weight"), ("重量", "weight"), ("池塘", "pool"), ("猫", "cat"), ("狗", "dogs")]
    df = {"权重": 5, "重量": 1, "猫": 3, "狗": 2}  # 池塘 is not in the corpus's Chinese text
    table = dictionary_translations(words, df, tokenize, learned={"cat": "猫咪"})
    assert table == {"weight": "权重", "dog": "狗"}  # most chunks wins; stemmed; no pool; cat is learned
    assert dictionary_translations(words, {}, tokenize, {}) == {}


def test_dictionary_reads_first_glosses_of_cc_cedict():
    words = set(cedict_words())
    assert ("权重", "weight") in words and ("方法", "method") in words
    assert ("方法", "means") not in words  # a later gloss: a secondary sense


def test_heading_paths_name_the_sections_above():
    secs = [Section("5", "LeNet-5", "a.zh.md", 0, 1, "ch04", parents=("第四章 经典网络",)),
            Section("5.1", "模型特性", "a.zh.md", 2, 3, "ch04", parents=("第四章 经典网络",)),
            Section("5.1.2", "结构", "a.zh.md", 4, 5, "ch04"),
            Section("5.1", "Model features", "a.en.md", 0, 1, "ch04"),
            Section("Reference", "参考", "a.zh.md", 6, 7, "ch04")]
    paths = heading_paths(secs, {"a.zh.md": "zh", "a.en.md": "en"})
    assert paths == ["第四章 经典网络 LeNet-5", "第四章 经典网络 LeNet-5 模型特性", "LeNet-5 模型特性 结构",
                     "Model features", "参考"]  # the English 5.1 has no English 5 above it


def _chunk_scores(r: Retriever, query: str) -> np.ndarray:
    """Every chunk's fused lexical score (0 outside the candidates)."""
    chunks, fused, *_ = r._rank(query, "lexical", 5, None)
    out = np.zeros(len(r.chunks), dtype=np.float32)
    out[chunks] = fused
    return out


def test_english_question_reaches_chinese_text_through_the_dictionary(built, fake_encoder):
    # No English title says "dog": CC-CEDICT gives dog -> 狗, a word of the Chinese text;
    # it gives pool -> 池塘 too, which the text never uses, so the table has no "pool".
    assert built.word_translations.get("dog") == "狗" and "pool" not in built.word_translations
    r = Retriever(built, fake_encoder)
    chunk = _chunk_scores(r, "dogs")
    dog_text = [i for i, c in enumerate(r.chunks) if "狗" in c.text]
    assert dog_text and all(chunk[i] > 0 for i in dog_text)
    assert all(chunk[i] == 0 for i, c in enumerate(r.chunks) if "狗" not in c.text)


def test_english_question_reaches_chinese_text_through_learned_words(corpus, fake_encoder, tmp_path):
    # "habits" is only in the English title of 1.3; the table learns cat -> 猫 from two titles,
    # so "cat sleep" matches the Chinese text of 1.1/1.3 by BM25 (lexical mode: no dense help).
    toc = TOC + "ch01\tch01_animals.zh.md\t7\t1.2\t什么是狗？\tWhat is a dog?\n"
    (corpus / "toc.en.tsv").write_text(toc, encoding="utf-8")
    build_index(corpus, tmp_path / "idx", fake_encoder)
    idx = load_index(tmp_path / "idx")
    assert idx.word_translations.get("cat") == "猫"
    r = Retriever(idx, fake_encoder)
    assert r._cross["en"]
    chunk = _chunk_scores(r, "cat")
    cat_text = [i for i, c in enumerate(r.chunks) if "猫" in c.text]
    assert cat_text and all(chunk[i] > 0 for i in cat_text)  # the Chinese text itself matches
    idx.word_translations.clear()
    chunk = _chunk_scores(Retriever(idx, fake_encoder), "cat")
    assert all(chunk[i] == 0 for i in cat_text)  # without the table it does not


def test_cli_shows_the_english_title_beside_a_chinese_one_only():
    from rag.cli import hit_title
    from rag.types import Hit

    zh = Hit(section="3.6.8", title="什么是批归一化？", text="", score=1.0, source="zh/ch03.md", start=0, end=0,
             lang="zh", title_en="What is batch normalization?")
    assert hit_title(zh) == "什么是批归一化？ (What is batch normalization?)"
    en = Hit(section="3.6.8", title="What is Batch Normalization?", text="", score=1.0, source="en/ch03.md", start=0,
             end=0, lang="en", title_en="What is batch normalization?")
    assert hit_title(en) == "What is Batch Normalization?"
    assert hit_title(Hit(section="1", title="猫", text="", score=1.0, source="a.md", start=0, end=0)) == "猫"


def test_a_question_that_is_a_title_finds_its_section_first(built, fake_encoder):
    """The book's headings are questions: asked as written (punctuation, spacing and case aside),
    in Chinese or as the reviewed English title, a heading ranks its section first."""
    r = Retriever(built, fake_encoder)
    # 1.1 and 1.3 share their text; only the title tells them apart, and 1.1's is asked
    for q in ("什么是猫？", "什么是猫", " 什么是猫?", "WHAT IS A CAT", "What is a cat?"):
        assert r.search(q, k=1)[0].id == "ch01/1.1", q
    for q in ("猫的习性", "habits of cats!"):
        assert r.search(q, k=1)[0].id == "ch01/1.3", q
    assert r.title_match("猫") == {} and r.title_match("什么是狗") == {"ch01/1.2": 1.0}
    # a ranking rule of hybrid search only: the lexical and dense modes rank by their own scores
    assert r.search("什么是猫", k=1, mode="lexical")[0].score <= 1.0


def test_a_title_is_matched_without_its_brackets_and_keeps_plus(tmp_path, fake_encoder):
    from rag.retriever import title_key

    d = tmp_path / "corpus"
    d.mkdir()
    (d / "ch09_seg.zh.md").write_text(
        "# 第九章 分割\n\n## 9.1 什么是批归一化（Batch Normalization）\n\n批归一化把每层的输入归一化，训练更稳定。\n\n"
        "## 9.2 DeepLabv3\n\nDeepLabv3 用空洞卷积提取多尺度特征，分割效果更好。\n\n"
        "## 9.3 DeepLabv3+\n\nDeepLabv3+ 加了解码器，边界更清楚，分割效果更好。\n", encoding="utf-8")
    build_index(d, tmp_path / "index", fake_encoder)
    r = Retriever(load_index(tmp_path / "index"), fake_encoder)
    assert title_key("DeepLabv3+") != title_key("DeepLabv3") and title_key("ＳＳＤ?") == title_key("ssd")
    assert r.title_match("什么是批归一化") == {"ch09/9.1": 1.0}  # the bracketed part is optional
    assert r.title_match("什么是批归一化(Batch Normalization)") == {"ch09/9.1": 1.0}
    assert r.search("DeepLabv3+", k=1)[0].id == "ch09/9.3" and r.search("deeplabv3", k=1)[0].id == "ch09/9.2"
