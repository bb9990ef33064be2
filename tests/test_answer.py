import importlib
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from rag.answer import _items, _sentences, answer, coverage
from rag.evaluate import read_questions
from rag.types import RagError

QUESTIONS = read_questions(REPO / "eval" / "questions.jsonl")


@pytest.fixture(scope="module")
def answers(retriever):
    return {q["id"]: answer(q["question"], retriever) for q in QUESTIONS}


def _file(name):
    return (REPO / "corpus" / name).read_text(encoding="utf-8")


def test_every_quote_is_verbatim_in_both_languages(answers):
    langs = set()
    for a in answers.values():
        for c in a.citations:
            assert _file(c.source)[c.start:c.end] == c.quote
            langs.add(c.lang)
            if c.original is not None:
                assert _file(c.original.source)[c.original.start:c.original.end] == c.original.quote
                assert c.original.lang == "zh" and c.original.section == c.section
    assert langs == {"zh", "en"}


def test_answers_follow_the_question_language(answers):
    for q in QUESTIONS:
        a = answers[q["id"]]
        assert a.language == q["lang"]
        if not a.abstained:
            assert 1 <= len({c.section for c in a.citations}) <= 2
            assert all(c.lang == q["lang"] for c in a.citations)  # this chapter has a translation
            if q["lang"] == "en":
                assert all(c.original is not None for c in a.citations)
                assert "English translation" in a.answer


def test_quotes_keep_the_lead_in_of_a_list_item(retriever):
    a = answer("产生负迁移的原因有哪些", retriever)
    quotes = [c.quote for c in a.citations]
    assert quotes[0] == "产生负迁移的原因主要有："
    assert any(q.startswith("数据问题") for q in quotes) and any(q.startswith("方法问题") for q in quotes)


def test_not_covered_questions_abstain_with_suggestions(retriever):
    for q, lang, phrase in [("How do I bake bread?", "en", "answers this directly"),
                            ("今天天气怎么样？", "zh", "没有找到直接回答")]:
        a = answer(q, retriever)
        assert a.abstained and a.language == lang and phrase in a.answer
        assert a.citations == () and 1 <= len(a.suggestions) <= 3
        assert all(set(s) == {"section", "chapter", "id", "title"} for s in a.suggestions)
        assert all(s["id"] == f"{s['chapter']}/{s['section']}" for s in a.suggestions)


def test_explicit_language_overrides_detection(retriever):
    a = answer("什么是负迁移？", retriever, lang="en")
    assert a.language == "en" and a.citations[0].lang == "en" and a.citations[0].section == "10.14"
    b = answer("What is negative transfer?", retriever, lang="zh")
    assert b.language == "zh" and b.citations[0].lang == "zh" and b.answer.startswith("本章")


def test_frames_name_what_the_index_holds(tmp_path, retriever):
    """One chapter: 本章 / The chapter; several chapters (a book): 本书 / The book (issue 11)."""
    from rag import Retriever, build_index

    build_index(REPO / "tests" / "fixtures" / "two_chapters", tmp_path / "index", retriever.encoder)
    book = Retriever.load(tmp_path / "index")
    a = answer("猫喜欢什么时候睡觉？", book)
    assert not a.abstained and a.answer.startswith("本书在 §1.1 中这样回答")
    b = answer("How do I bake bread?", book)
    assert b.abstained and b.answer.startswith("Nothing in the book answers this directly.")
    assert answer("ネコは何ですか", book).answer.startswith("Please ask in Chinese or English (the book is")
    assert "本章" not in a.answer + b.answer and "chapter" not in b.answer.lower()
    c = answer("今天天气怎么样？", retriever)
    assert c.abstained and c.answer.startswith("本章中没有找到直接回答这个问题的内容。")
    assert answer("What is negative transfer?", retriever).answer.startswith("The chapter answers this in §10.14")


def test_chapter_without_translation_quotes_chinese_with_english_frame(tmp_path):
    from rag import Retriever, build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in ("ch10_transfer_learning.zh.md", "glossary.tsv"):
        (corpus / name).write_bytes((REPO / "corpus" / name).read_bytes())
    build_index(corpus, tmp_path / "index")
    r = Retriever.load(tmp_path / "index")
    a = answer("What is negative transfer?", r)
    assert not a.abstained and a.language == "en"
    assert a.citations[0].section == "10.14" and a.citations[0].lang == "zh"
    assert "original Chinese" in a.answer


@pytest.mark.parametrize("question", ["🙂🙂🙂", "什麼是負遷移？", "ＷＨＡＴ　ＩＳ　ＮＥＧＡＴＩＶＥ　ＴＲＡＮＳＦＥＲ？",
                                      "负迁移 negative transfer 是什么", "<script>alert(1)</script>"])
def test_odd_unicode_gets_a_sane_answer(retriever, question):
    a = answer(question, retriever)
    assert a.answer and (a.abstained or a.citations)


@pytest.mark.parametrize("kwargs,message", [
    ({"question": ""}, "empty"), ({"question": " \t"}, "empty"), ({"question": "x" * 2001}, "limit"),
    ({"question": "ok", "lang": "fr"}, "auto, zh, en"), ({"question": "ok", "k": 0}, "k must be"),
])
def test_bad_input(retriever, kwargs, message):
    with pytest.raises(RagError, match=message):
        answer(retriever=retriever, **kwargs)


def test_coverage_counts_glossary_terms(retriever):
    assert coverage("What is domain adaptation?", retriever) == 1.0
    assert coverage("Who won the 2018 World Cup?", retriever) == 0.0


def test_an_english_word_counts_where_the_chinese_it_translates_is_found(retriever):
    # the translation of 10.2 says "problems" where the Chinese says 问题; asked about the
    # "questions", the chapter (and its section) still holds the question's words
    s = _sentences(retriever)
    assert "question" not in s.idf and retriever.index.word_translations["question"] in s.idf
    asked = "What are the basic questions of transfer learning?"
    assert coverage(asked, retriever) == coverage("What are the basic problems of transfer learning?", retriever) == 1.0
    section = np.flatnonzero(s.section == retriever.section_index["ch10/10.2"])
    assert coverage(asked, retriever, within=section) == 1.0

@pytest.mark.parametrize("question", ["What is negative transfer?", "什么是负迁移？"])
def test_markup_in_a_question_is_no_part_of_its_coverage(retriever, question):
    # the corpus's sentences are tokenized without their HTML tags (text.normalize), so a tag's
    # words ("img", "src", "onerror") must not count as the question's words the corpus lacks
    for marked in (f"<img src=x onerror=alert(1)> {question}", f"<b>{question}</b>"):
        assert coverage(marked, retriever) == coverage(question, retriever) == 1.0
        assert _items(marked, "en", retriever) == _items(question, "en", retriever)


def test_ask_json_cli():
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "What is negative transfer?", "--json"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert set(d) == {"question", "language", "answer", "abstained", "citations", "suggestions"}
    c = d["citations"][0]
    assert set(c) == {"section", "chapter", "id", "title", "quote", "source", "start", "end", "lang", "original"}
    assert c["chapter"] == "ch10" and c["id"] == "ch10/" + c["section"]
    assert set(c["original"]) == {"section", "chapter", "id", "title", "quote", "source", "start", "end", "lang"}
    out = subprocess.run([sys.executable, "-m", "rag.cli", "ask", "x", "--lang", "fr"],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2 and out.stderr.startswith("error: unknown answer language")


# ---------------------------------------------------------------- composition (issue 12)

def _sentences_of(retriever):
    from rag.answer import _sentences

    return _sentences(retriever)


@pytest.mark.parametrize("question", ["什么是迁移学习？", "What is transfer learning?", "Define transfer learning."])
def test_a_definition_quotes_the_defining_sentence_not_the_books_questions(retriever, question):
    a = answer(question, retriever)
    assert not a.abstained and a.citations[0].section == "10.15"
    originals = [c.original.quote if c.original else c.quote for c in a.citations]
    assert any(q.startswith("迁移学习，是指") for q in originals)
    assert not any(q.rstrip().endswith(("？", "?")) for q in (c.quote for c in a.citations))


def test_first_answer_does_no_work_per_sentence(retriever, monkeypatch):
    """The sentence statistics come from the index: building them tokenizes no sentence and reads
    no corpus file (they took ~0.6 s of a cold `rag ask` on the whole book; issue 11)."""
    import builtins

    from rag.answer import _Sentences

    calls, opened = [], []
    tokenize, open_ = retriever.index.tokenize, builtins.open
    monkeypatch.setattr(retriever.index, "tokenize", lambda text: calls.append(text) or tokenize(text))
    monkeypatch.setattr(builtins, "open", lambda f, *a, **kw: opened.append(f) or open_(f, *a, **kw))
    s = _Sentences(retriever)
    terms = sum(len(en) for _, en in retriever.index.glossary)
    assert len(calls) <= terms < len(s.recs) and opened == []
    i = next(i for i, r in enumerate(s.recs) if r["text"].startswith("迁移学习，是指"))
    assert "迁移" in s.head_tokens[i] and s.idf["迁移"] > 0 and not s.heading[i]


def test_the_books_questions_are_quoted_only_when_asked_for(retriever):
    s = _sentences_of(retriever)
    asks = [i for i, r in enumerate(s.recs) if r["text"] == "迁移学习主要解决方案有哪些？"]
    assert asks and not s.quotable(asks[0], questions_ok=False) and s.quotable(asks[0], questions_ok=True)
    headings = [i for i, r in enumerate(s.recs) if r["text"] == "什么情况下可以使用迁移学习？"]
    assert headings and s.heading[headings[0]] and not s.quotable(headings[0], questions_ok=True)


@pytest.mark.parametrize("question", ["迁移学习有哪些分类？", "迁移学习按迁移方法可以分为哪几类？"])
def test_a_list_question_quotes_the_list_with_its_label(retriever, question):
    a = answer(question, retriever)
    quotes = [c.quote for c in a.citations]
    items = [q for q in quotes if q.startswith("**")]
    assert len(items) >= 3 and len(quotes) <= 8 + 3
    assert not all(q in ("基本定义", "按特征空间分类", "按迁移情景分类", "按迁移方法分类") for q in quotes)
    labels = [q for q in quotes if q.startswith("按")]
    if "方法" in question:  # names one of the labelled lists: that list whole
        assert labels == ["按迁移方法分类"] and len(items) == 4
    else:  # names none: every labelled list, each with its first item
        assert len(labels) == 3 and all(quotes[quotes.index(lb) + 1].startswith("**") for lb in labels)


@pytest.mark.parametrize("question,sides", [
    ("端到端深度学习的优缺点", ("这里是应用端到端学习的一些优点：", "这里是应用端到端学习的一些缺点：")),
    ("What are the pros and cons of end-to-end learning?",
     ("Here are some advantages of applying end-to-end learning:", "Here are some disadvantages of applying end-to-end learning:")),
])
def test_a_comparison_quotes_both_sides(retriever, question, sides):
    quotes = [c.quote for c in answer(question, retriever).citations]
    assert all(side in quotes for side in sides)
    assert quotes.index(sides[0]) < quotes.index(sides[1])  # in reading order


def test_a_table_question_quotes_the_table(retriever):
    a = answer("迁移学习和传统机器学习有什么不同", retriever)
    assert a.citations[0].section == "10.4" and "\t" in a.citations[0].quote and a.citations[0].quote.count("\n") >= 3


def test_quotes_never_start_mid_context_and_read_in_order_in_both_languages(retriever, answers):
    from rag.answer import needs_context

    s = _sentences_of(retriever)
    pos = {(r["source"], r["start"]): i for i, r in enumerate(s.recs)}
    checked = {"zh": 0, "en": 0}
    for a in answers.values():
        idx = [pos[(c.source, c.start)] for c in a.citations]
        for n, i in enumerate(idx):
            prev_quoted = n > 0 and idx[n - 1] < i and s.recs[idx[n - 1]]["section"] == s.recs[i]["section"]
            if not prev_quoted:  # a quote that opens a run of quotes stands on its own
                assert not needs_context(s, i) or s.previous(i) in idx, (a.question, s.recs[i]["text"])
                checked[s.recs[i]["lang"]] += 1
        by_section: dict = {}
        for i in idx:
            by_section.setdefault(s.recs[i]["section"], []).append(s.recs[i]["start"])
        assert all(v == sorted(v) for v in by_section.values())
    assert checked["zh"] > 50 and checked["en"] > 50


def test_no_answer_is_only_the_books_questions_or_headings(answers):
    from rag.lang import is_label, is_question_sentence, question_type

    for q in QUESTIONS:
        a = answers[q["id"]]
        if a.citations and question_type(q["question"], q["lang"]) != "bookquestions":
            assert not all(is_question_sentence(c.quote) or is_label(c.quote) for c in a.citations), q["question"]


# ---------------------------------------------------------------- abstention and language

@pytest.mark.parametrize("question", [
    "help", "x", "transfer", "hello", "thanks!", "你好", "总结一下这一章", "What's the weather like today?",
    "How does the attention mechanism in a transformer compute its weights?", "What is BERT pre-training?",
    "How do GANs generate images?", "强化学习是什么？",
    pytest.param("What is reinforcement learning?", marks=pytest.mark.xfail(strict=True, reason=(
        "known miss since the 2026-11-29 refit on the enlarged dev set: coverage counts 'reinforcement' "
        "as found through CC-CEDICT's reinforcement -> 加强, and the chapter's model answers (p 0.75); "
        "every variant without that cost more on dev (rag.answer.coverage's docstring)"))),
])
def test_generic_near_topic_and_chit_chat_abstain(retriever, question):
    assert answer(question, retriever).abstained


@pytest.mark.parametrize("question,section", [
    ("Define transfer learning.", "10.15"), ("普通人没有大量计算资源，为什么要借助模型迁移", "10.1"),
    ("<img src=x onerror=alert(1)> What is negative transfer?", "10.14"), ("两个领域差别很大时还能直接迁移吗？", "10.15"),
])
def test_questions_the_chapter_answers_are_answered(retriever, question, section):
    a = answer(question, retriever)
    assert not a.abstained and a.citations[0].section == section


def test_language_by_frame_and_japanese_gets_a_clear_reply(retriever):
    a = answer("What does 负迁移 mean?", retriever)
    assert a.language == "en" and not a.abstained and a.citations[0].section == "10.14"
    assert a.citations[0].lang == "en"
    for q in ("転移学習とは何ですか", "전이 학습이란 무엇입니까?"):
        a = answer(q, retriever)
        assert a.abstained and "Chinese or English" in a.answer and "中文或英文" in a.answer
    assert answer("転移学習とは何ですか", retriever, lang="zh").language == "zh"


# ---------------------------------------------------------------- follow-ups

@pytest.mark.parametrize("first,follow,section", [
    ("端到端深度学习是什么？", "它的缺点呢？", "10.13"),
    ("什么是负迁移？", "那怎么避免？", "10.14"),
    ("What is end-to-end deep learning?", "What are its challenges?", "10.11"),
    ("What is homogeneous transfer learning?", "and heterogeneous?", "10.3"),
])
def test_a_follow_up_is_resolved_against_the_previous_turn(retriever, first, follow, section):
    prev = answer(first, retriever)
    for history in ([prev], [{"question": first, "citations": [c.to_dict() for c in prev.citations]}],
                    [{"question": first}]):
        a = answer(follow, retriever, history=history)
        assert not a.abstained and a.citations[0].section == section and a.question == follow


def test_a_self_contained_question_ignores_the_history(retriever):
    prev = answer("端到端深度学习是什么？", retriever)
    for q in ("什么是负迁移？", "What is multi-task learning?"):
        assert answer(q, retriever, history=[prev]) == answer(q, retriever)


@pytest.mark.parametrize("history", ["not a list", [42], [{"citations": []}, 1]])
def test_bad_history(retriever, history):
    with pytest.raises(RagError, match="history"):
        answer("它的缺点呢？", retriever, history=history)


def test_reference_lists_are_quoted_only_when_found_first(answers, retriever):
    kinds = {s.key: s.kind for s in retriever.index.sections}
    assert kinds["ch10/Reference"] == "references"
    for a in answers.values():
        if a.citations and kinds[a.citations[0].id] == "text":
            assert all(kinds[c.id] == "text" for c in a.citations), a.question


def test_ids_from_outside_are_resolved_to_section_keys_once():
    from rag.types import sections_named

    keys = ["ch05/10.3", "ch10/10.3", "ch10/10.4", "ch13/13.5", "ch13/13.5~2", "ch18/CPU/GPU"]
    assert sections_named("ch10/10.3", keys) == ["ch10/10.3"] and sections_named("ch07/10.3", keys) == []
    assert sections_named("10.3", keys) == ["ch05/10.3", "ch10/10.3"] and sections_named("10.4", keys) == ["ch10/10.4"]
    assert sections_named("13.5", keys) == ["ch13/13.5"] and sections_named("CPU/GPU", keys) == ["ch18/CPU/GPU"]


def test_a_follow_up_favours_the_sections_a_bare_id_names(retriever, monkeypatch):
    """A previous turn from a client may cite bare ids ("10.14"): the follow-up boosts that section."""
    from rag.answer import FOLLOWUP_BOOST, analyse

    seen = {}
    retrieve = retriever.retrieve
    monkeypatch.setattr(retriever, "retrieve", lambda *a, **kw: seen.update(kw) or retrieve(*a, **kw))
    analyse("它的原因呢？", retriever, history=[{"question": "什么是负迁移？", "citations": [{"section": "10.14"}]}])
    assert seen["boost"] == {"ch10/10.14": FOLLOWUP_BOOST}
    analyse("它的原因呢？", retriever, history=[{"question": "什么是负迁移？", "sections": ["ch10/10.14", "ch99/1.1"]}])
    assert seen["boost"] == {"ch10/10.14": FOLLOWUP_BOOST}


def test_a_follow_up_reads_the_qualified_ids_of_the_previous_turn(retriever):
    prev = answer("什么是负迁移？", retriever)
    assert prev.citations[0].id == "ch10/10.14"
    turn = {"question": prev.question, "citations": [{"id": c.id, "section": "9.9"} for c in prev.citations]}
    a = answer("那怎么避免？", retriever, history=[turn])  # the id wins over the bare section
    assert not a.abstained and a.citations[0].id == "ch10/10.14"


def test_a_word_every_candidate_repeats_counts_less_than_a_rare_detail_term(monkeypatch):
    A = importlib.import_module("rag.answer")  # (the package re-exports a function of that name)

    items = [frozenset({"gan", "loss"}), frozenset({"gan", "lars"}), frozenset({"gan"})]
    idf = {"gan": 1.0, "lars": 1.0, "loss": 1.0}
    monkeypatch.setattr(A, "LOCAL_IDF", 0.0)
    flat = A._overlap([0, 1, 2], {"gan": 1.0, "lars": 1.0}, items, idf)
    assert flat.tolist() == pytest.approx([0.5, 1.0, 0.5])
    monkeypatch.setattr(A, "LOCAL_IDF", 1.0)
    local = A._overlap([0, 1, 2], {"gan": 1.0, "lars": 1.0}, items, idf)
    assert local[1] == pytest.approx(1.0)  # the sentence with every question word still scores 1
    assert local[0] == pytest.approx(1 / 3)  # "gan" is in all three: it weighs half of "lars"
    assert A._overlap([0, 1], {"absent": 1.0}, items, idf).tolist() == [0.0, 0.0]


def test_keyword_shape_is_the_share_of_the_question_the_defining_head_holds(retriever):
    from rag.answer import _sentences, _shape

    s = _sentences(retriever)
    i = next(i for i in range(len(s.recs)) if s.recs[i]["lang"] == "zh" and s.head_tokens[i]
             and _shape("definition", s, i, set(s.head_tokens[i])) == 1.0)
    head = set(s.head_tokens[i])
    other = next(t for toks in s.tokens for t in toks if t not in head and s.idf.get(t, 0) > 0)
    assert _shape("keyword", s, i, head) == pytest.approx(1.0)  # a bare term: the whole bonus
    assert 0 < _shape("keyword", s, i, head | {other}) < 1  # a longer question: a share of it
    assert _shape("definition", s, i, head | {other}) == 1.0
    assert _shape("reason", s, i, head) == 0.0


def test_a_short_lead_in_with_nothing_quotable_after_it_is_not_quoted():
    from types import SimpleNamespace

    from rag.answer import _points_at_nothing

    texts = [("代码：", False), ("示意图如下：", False), ("产生负迁移的原因主要有：", False), ("数据问题", True),
             ("如果你的年收入为五万以下，或者你的企业的年收入为一百万以下，可以申请费减备案：", False)]
    recs = [{"text": t, "lang": "zh", "item": item} for t, item in texts]
    s = SimpleNamespace(recs=recs, lead_in=[t.endswith("：") for t, _ in texts],
                        _next_is_item=lambda i: i + 1 < len(recs) and recs[i + 1]["item"])
    assert [_points_at_nothing(s, i) for i in range(len(recs))] == [True, True, False, False, False]


def test_answer_text_shows_a_quote_as_it_reads():
    """A quote keeps the math whole with the book's zero-width space inside, and `&emsp;` (the exact
    span of the file); the answer's text shows it as a reader sees it."""
    from rag.answer import _format
    from rag.lang import frames
    from rag.types import Citation

    quote = "其中的MLP子网络恰恰可以用$1\\times1\u200b$的卷积进行代替。"
    c = Citation(section="5.8", title="t", quote=quote, source="zh/ch05.md", start=0, end=len(quote), lang="zh",
                 chapter="ch05", id="ch05/5.8")
    text = _format("zh", frames("zh", 19), (c,), False)
    assert text.startswith("本书在 §5.8 中这样回答") and "> 其中的MLP子网络恰恰可以用$1\\times1$的卷积进行代替。 [§5.8]" in text
    assert c.to_dict()["quote"] == quote
    quote = "**Introduction**  \n&emsp;&emsp;很多backbone的提出都是用于挑战ImageNet分类任务。"
    c = Citation(section="1.1", title="t", quote=quote, source="zh/x.md", start=0, end=len(quote), lang="zh")
    text = _format("zh", frames("zh", 19), (c,), False)
    assert "&emsp;" not in text and "\u2003\u2003很多backbone" in text and c.quote == quote


def test_an_english_answer_quotes_an_untranslated_best_section_in_chinese_beside_a_translated_one(
        tmp_path, fake_encoder):
    """Two sections to quote: the best from a chapter without English, the second from one with a
    translation. Each is quoted in English where it has English text, else in Chinese: the
    translated second section's English must not push out the best section's Chinese sentences."""
    import numpy as np
    from types import SimpleNamespace

    from rag import Retriever
    from rag.index import build_index, load_index
    from rag.lang import frames
    from rag.types import Citation

    A = importlib.import_module("rag.answer")
    corpus = tmp_path / "corpus"
    for lang, name, text in [
            ("zh", "ch01_动物.md", "# 第一章 动物\n\n## 1.1 猫\n\n猫喜欢在阳光下睡觉。猫也喜欢追逐毛线球。\n"),
            ("zh", "ch02_植物.md", "# 第二章 植物\n\n## 2.1 树\n\n树需要阳光和水。树的根很深。\n"),
            ("en", "ch02_plants.md", "# Chapter 2 Plants\n\n## 2.1 Trees\n\nTrees need sunlight and water. "
                                     "The roots of a tree are deep.\n")]:
        (corpus / lang).mkdir(parents=True, exist_ok=True)
        (corpus / lang / name).write_text(text, encoding="utf-8")
    build_index(corpus, tmp_path / "index", fake_encoder)
    r = Retriever(load_index(tmp_path / "index"), fake_encoder)
    question = "Why do cats sleep in the sun, and why do trees need sunlight and water?"
    scores = np.zeros(len(r.section_keys), dtype=np.float32)
    scores[r.section_index["ch01/1.1"]], scores[r.section_index["ch02/2.1"]] = 1.0, 0.99
    a = A.Analysis(question, question, "en", "reason", r.embed(question), scores,
                   [SimpleNamespace(id="ch01/1.1"), SimpleNamespace(id="ch02/2.1")], {})
    chosen, translated = A.compose(a, "en", r)
    recs = [A._sentences(r).recs[i] for i in chosen]
    assert recs and recs[0]["chapter"] == "ch01" and recs[0]["lang"] == "zh"  # the best section first, in Chinese
    assert {rec["lang"] for rec in recs if rec["chapter"] == "ch02"} <= {"en"} and translated
    cites = tuple(A._citation(rec, translated, r.title_en) for rec in recs)
    text = A._format("en", frames("en", 2), cites, translated)
    assert text.startswith("The book answers this in §1.1") and "else in the original Chinese" in text


def test_a_table_row_cut_by_an_image_cell_is_quoted_whole(tmp_path):
    """A sentence never holds an image, so an image cell cuts a row into its label ("扩张卷积 |")
    and the rest; an answer quoting one piece brings the other, and shows neither's edge bar."""
    from rag import Retriever, build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ch05_conv.zh.md").write_text(
        "# 第五章 卷积\n\n## 5.4 卷积核有什么类型？\n\n常见的卷积核分类如下表所示。\n\n"
        "| 卷积类别 | 示意图 | 作用 |\n| :-: | :-: | :-- |\n"
        "| 标准卷积 | ![image](img/a.png) | 最常用的卷积核，可以提取相邻像素之间的关联关系。 |\n"
        "| 扩张卷积（空洞卷积） | ![image](img/b.png) | 引入扩张率参数，使同样尺寸的卷积核获得更大的感受视野。 |\n\n"
        "## 5.5 什么是池化？\n\n池化是对特征图进行下采样的操作，常用的有最大池化和平均池化。\n", encoding="utf-8")
    build_index(corpus, tmp_path / "index")
    a = answer("什么是空洞卷积？", Retriever.load(tmp_path / "index"))
    quotes = [c.quote for c in a.citations]
    label = next(i for i, q in enumerate(quotes) if q.startswith("扩张卷积"))
    assert quotes[label].endswith("|") and quotes[label + 1].startswith("| 引入扩张率参数")
    assert "> 扩张卷积（空洞卷积） [§5.4]" in a.answer and "> 引入扩张率参数" in a.answer


def test_a_sentence_the_section_repeats_is_quoted_once(tmp_path):
    """ch17's NCNN steps give the same command twice; an answer showed it twice."""
    from rag import Retriever, build_index

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    step = "将旧版本的prototxt和caffemodel存放在caffe/build/tools目录下，执行如下命令完成转换。"
    (corpus / "ch17_deploy.zh.md").write_text(
        f"# 第十七章 部署\n\n## 17.1 如何转换旧模型？\n\n第一步，编译转换工具。\n\n{step}\n\n"
        f"第二步，检查生成的新模型文件。\n\n{step}\n\n## 17.2 什么是量化？\n\n量化是用低精度的数表示权重。\n",
        encoding="utf-8")
    build_index(corpus, tmp_path / "index")
    a = answer("旧版本的prototxt和caffemodel要放在哪个目录下转换？", Retriever.load(tmp_path / "index"))
    quotes = [c.quote for c in a.citations]
    assert step in quotes and len(quotes) == len(set(quotes))


def test_an_english_question_on_chinese_text_counts_its_words_translations(tmp_path, fake_encoder, monkeypatch):
    """The Chinese sentence holding the translation of the question's term (the glossary's 毛线球
    for "ball of yarn") is quoted first; without translations an English question shares no word
    with Chinese sentences, and the first sentence of the section came first."""
    from types import SimpleNamespace

    import numpy as np

    from rag import Retriever
    from rag.index import build_index, load_index

    A = importlib.import_module("rag.answer")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ch01_动物.zh.md").write_text(
        "# 第一章 动物\n\n## 1.1 猫\n\n猫喜欢在阳光下睡觉。毛线球是猫最爱追逐的玩具。猫每天吃两顿饭。\n", encoding="utf-8")
    (corpus / "glossary.tsv").write_text("毛线球\tball of yarn\n", encoding="utf-8")
    build_index(corpus, tmp_path / "index", fake_encoder)
    r = Retriever(load_index(tmp_path / "index"), fake_encoder)
    question = "Do cats play with a ball of yarn?"
    scores = np.zeros(len(r.section_keys), dtype=np.float32)
    scores[r.section_index["ch01/1.1"]] = 1.0
    a = A.Analysis(question, question, "en", "yesno", r.embed(question), scores, [SimpleNamespace(id="ch01/1.1")], {})
    # the fake encoder's vectors say nothing across languages: the word overlap alone decides
    monkeypatch.setitem(A.SENTENCE_DENSE_WEIGHT, "cross", 0.0)
    monkeypatch.setattr(A, "MAX_QUOTES", 1)  # the best sentence alone
    first = lambda: A._sentences(r).recs[A.compose(a, "en", r)[0][0]]["text"]  # noqa: E731
    assert first() == "毛线球是猫最爱追逐的玩具。"
    monkeypatch.setattr(A, "TRANSLATED_WORD_WEIGHT", 0.0)
    assert first() == "猫喜欢在阳光下睡觉。"
