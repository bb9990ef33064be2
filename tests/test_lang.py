import pytest

from rag.lang import is_anaphoric, is_label, is_lead_in, is_question_sentence, question_language, question_type


@pytest.mark.parametrize("text,lang", [
    ("What does 负迁移 mean?", "en"),  # an English frame around a Chinese term
    ("什么是 transfer learning", "zh"),  # a Chinese frame around an English term
    ("What to transfer 指的是什么？", "zh"),
    ("<img src=x onerror=alert(1)> 什么是负迁移？", "zh"),
    ("<img src=x onerror=alert(1)> What is negative transfer?", "en"),
    ("负迁移", "zh"), ("transfer", "en"), ("🙂", "en"), ("什麼是遷移學習", "zh"),
    ("転移学習とは何ですか", "other"), ("전이 학습이란 무엇입니까?", "other"),
    ("What does 転移学習 mean in English?", "en"),  # a Japanese term in an English question
])
def test_question_language_by_frame_then_script(text, lang):
    assert question_language(text) == lang


@pytest.mark.parametrize("question,lang,kind", [
    ("什么是负迁移？", "zh", "definition"), ("What is negative transfer?", "en", "definition"),
    ("Define transfer learning.", "en", "definition"), ("What does 负迁移 mean?", "en", "definition"),
    ("迁移学习有哪些分类？", "zh", "list"), ("What are the kinds of transfer learning?", "en", "list"),
    ("端到端深度学习的优缺点", "zh", "comparison"), ("What are the pros and cons of end-to-end learning?", "en", "comparison"),
    ("为什么需要迁移学习？", "zh", "reason"), ("Why do we need transfer learning?", "en", "reason"),
    ("传统机器学习要求训练和测试数据同分布吗", "zh", "yesno"), ("Can I use transfer learning here?", "en", "yesno"),
    ("What open questions does the chapter list?", "en", "bookquestions"), ("本章提出了哪些开放问题", "zh", "bookquestions"),
    ("cold start transfer learning", "en", "keyword"), ("直推式迁移学习", "zh", "keyword"),
])
def test_question_types(question, lang, kind):
    assert question_type(question, lang) == kind


def test_sentence_shapes():
    assert is_question_sentence("迁移学习什么时候是有意义的？") and is_question_sentence("When does it help?")
    assert not is_question_sentence("负迁移指的是，在源域上学习到的知识产生负面作用。")
    assert is_lead_in("产生负迁移的原因主要有：") and is_lead_in("Here are some advantages:")
    assert is_label("按迁移情景分类") and is_label("Basic definitions") and not is_label("指多个相关任务一起协同学习，")


@pytest.mark.parametrize("question,lang,anaphoric", [
    ("它的缺点呢？", "zh", True), ("那怎么避免？", "zh", True), ("What about its drawbacks?", "en", True),
    ("and for RNNs?", "en", True), ("什么是负迁移？", "zh", False), ("What is negative transfer?", "en", False),
])
def test_anaphora(question, lang, anaphoric):
    assert is_anaphoric(question, lang) == anaphoric
