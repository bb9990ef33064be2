import numpy as np

from rag.lexical import BM25Scorer, Tokenizer, build_bm25, load_lexicon, make_lexicon, save_lexicon


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
