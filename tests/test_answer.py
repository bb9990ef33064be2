import json
import subprocess
import sys

import pytest

from conftest import REPO
from rag.answer import answer, coverage
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
    for q, lang, phrase in [("How do I bake bread?", "en", "does not cover"),
                            ("今天天气怎么样？", "zh", "没有涉及")]:
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


def test_reference_lists_are_quoted_only_when_found_first(answers, retriever):
    kinds = {s.key: s.kind for s in retriever.index.sections}
    assert kinds["ch10/Reference"] == "references"
    for a in answers.values():
        if a.citations and kinds[a.citations[0].id] == "text":
            assert all(kinds[c.id] == "text" for c in a.citations), a.question
