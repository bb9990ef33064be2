import numpy as np

from rag.lexical import BM25Scorer, Tokenizer, build_bm25, load_lexicon, make_lexicon, save_lexicon, term_weights


def test_tokenizer_words_stems_and_stop_words():
    tok = Tokenizer(make_lexicon(["负迁移给迁移学习的研究带来了负面影响。"]))
    toks = tok("什么是负迁移？Negative Transfers in the models")
    assert "迁移" in toks
    assert "什么" not in toks and "是" not in toks  # stop words
    assert "negat" in toks and "transfer" in toks and "model" in toks  # stemmed, lowercased
    assert "the" not in toks and "in" not in toks
    assert tok("？？？!!!") == [] and tok("🙂🙂") == []


def test_lexicon_round_trip(tmp_path):
    lex = make_lexicon(["迁移学习的基本思路"], extra_words=["负迁移"])
    assert "负迁移" in lex and "思路" in lex
    save_lexicon(lex, tmp_path / "lex.txt")
    assert load_lexicon(tmp_path / "lex.txt") == lex


def test_scorer_matches_bm25s(tmp_path):
    import bm25s

    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(40)]
    docs = [[str(t) for t in rng.choice(vocab, size=rng.integers(1, 30))] for _ in range(25)]
    build_bm25(docs, tmp_path)
    ours = BM25Scorer(tmp_path)
    theirs = bm25s.BM25.load(str(tmp_path))
    for _ in range(50):
        q = [str(t) for t in rng.choice(vocab + ["unknown"], size=rng.integers(1, 6))]
        known = [t for t in q if t in theirs.vocab_dict]
        expected = theirs.get_scores(known) if known else np.zeros(len(docs))
        np.testing.assert_allclose(ours.scores(q), expected, rtol=1e-5, atol=1e-6)


def test_scorer_without_known_tokens_scores_zero(tmp_path):
    build_bm25([["a", "b"], ["c"]], tmp_path)
    assert BM25Scorer(tmp_path).scores([]).tolist() == [0.0, 0.0]
    assert BM25Scorer(tmp_path).scores(["zzz"]).tolist() == [0.0, 0.0]


def test_term_weights_mark_lone_chinese_characters_only():
    assert term_weights(["归一化", "话", "r", "5", "cnn", "系"], 0.5) == [1.0, 0.5, 1.0, 1.0, 1.0, 0.5]
    assert term_weights(["归一化", "cnn"], 0.5) is None  # nothing to weigh
    assert term_weights(["话"], 1.0) is None


def test_weighted_scores_scale_each_tokens_column(tmp_path):
    build_bm25([["a", "b", "b"], ["b", "c"], ["a", "c", "c"]], tmp_path)
    s = BM25Scorer(tmp_path)
    q, w = ["a", "b", "zzz", "a"], [0.5, 2.0, 3.0, 1.0]
    want = 0.5 * s.scores(["a"]) + 2.0 * s.scores(["b"]) + s.scores(["a"])
    np.testing.assert_allclose(s.scores(q, w), want, rtol=1e-6)
    docs, scores = s.matches(q, w)
    assert docs.tolist() == [0, 1, 2] and np.allclose(scores, want)


# Section 1.2 holds the lone characters left of a typo'd question (归一话 -> 归, 话); 1.1 answers it.
TYPO_CHAPTER = """# 第1章 测试

## 1.1 为什么要归一化？

归一化让输入落在激活函数变化快的区间，避免神经元饱和。

## 1.2 循环网络

循环网络的神经元读一句话，再读下一句话。

## 1.3 卷积网络

卷积网络用卷积核提取图像特征，神经元共享权重。

## 1.4 池化

池化层缩小特征图，减少参数。
"""


def test_lone_characters_of_a_typo_weigh_less_than_words(tmp_path, monkeypatch):
    import rag.retriever as retriever_module
    from conftest import FakeEncoder
    from rag.index import build_index, load_index

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "ch01_test.zh.md").write_text(TYPO_CHAPTER, encoding="utf-8")
    build_index(tmp_path / "corpus", tmp_path / "index", FakeEncoder())
    r = retriever_module.Retriever(load_index(tmp_path / "index"), FakeEncoder())
    question = "为啥要做归一话，跟神经元饱和有关系吗"
    assert {"归", "话"} <= set(r.index.tokenize(question))
    assert r.search(question, k=1, mode="lexical")[0].id == "ch01/1.1"
    monkeypatch.setitem(retriever_module.SINGLE_CHAR_WEIGHT, "zh", 1.0)  # every token alike: the typo wins
    assert r.search(question, k=1, mode="lexical")[0].id == "ch01/1.2"
