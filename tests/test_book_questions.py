"""The book question sets (eval/book_questions.jsonl, and the held-out eval/book_heldout.jsonl) are
valid against the book as the loader reads it.

Loader only, no index: every gold id is a section key of rag.corpus.read_corpus(book/), evidence
is exact and inside its gold section, no question copies its gold heading, and nothing quotable
in a gold section (evidence, the loader's sentences) holds an image link, HTML tag or zero-width
character. The held-out set gets the same checks (split "heldout") and must not repeat a question
of the tuning set. The checks live in eval/check_book_questions.py (also a command).
"""
import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from rag.corpus import read_corpus

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("check_book_questions", ROOT / "eval" / "check_book_questions.py")
checker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(checker)


@pytest.fixture(scope="module")
def corpus():
    return read_corpus(ROOT / "book")


@pytest.fixture(scope="module")
def questions():
    return checker.read_questions(checker.QUESTIONS)


def test_question_set_passes_every_check(questions, corpus):
    errors = checker.check(questions, corpus)
    assert errors == [], "\n".join(errors[:20])


def test_question_set_meets_the_issue_targets(questions):
    assert len(questions) >= 200
    chapters = {r.split("/")[0] for q in questions for r in q["relevant"]}
    assert len(chapters) >= 10
    assert sum(not q["relevant"] for q in questions) >= 25
    langs = Counter(q["lang"] for q in questions)
    assert langs["zh"] > 0 and langs["en"] > 0
    en_chapters = {r.split("/")[0] for q in questions if q["lang"] == "en" for r in q["relevant"]}
    assert en_chapters & {"ch01", "ch02", "ch03", "ch04"} and en_chapters - {"ch01", "ch02", "ch03", "ch04"}
    assert len({q["kind"] for q in questions}) >= 8


def test_split_is_the_seeded_stratified_one(questions):
    spec = importlib.util.spec_from_file_location("split_book", ROOT / "eval" / "tools" / "split_book.py")
    split_book = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(split_book)
    again = {q["id"]: q["split"] for q in split_book.assign_splits(questions)}
    assert {q["id"]: q["split"] for q in questions} == again
    extra = [q for q in questions if q["id"].startswith(split_book.DEV_ONLY)]
    assert extra and all(q["split"] == "dev" for q in extra)  # the b3 batch was written as dev
    drawn = [q for q in questions if not q["id"].startswith(split_book.DEV_ONLY)]
    for lang in ("zh", "en"):
        for answerable in (True, False):
            group = [q for q in drawn if q["lang"] == lang and bool(q["relevant"]) == answerable]
            dev = sum(q["split"] == "dev" for q in group)
            assert abs(dev - 0.6 * len(group)) <= 1


def test_checker_catches_each_kind_of_mistake(questions, corpus):
    good = next(q for q in questions if q["relevant"] and q["evidence"])
    sec = next(s for s in corpus.sections if s.key == good["relevant"][0])
    ev = good["evidence"][0]
    wrong_chapter = "ch99/" + good["relevant"][0].split("/")[1]
    other = next(s for s in corpus.sections if s.source == ev["source"] and s.key not in good["relevant"] and s.end - s.start > 50)
    bad = [
        {**good, "id": "x1", "relevant": [wrong_chapter]},
        {**good, "id": "x2", "evidence": [{**ev, "start": ev["start"] + 1}]},
        {**good, "id": "x3", "relevant": [other.key]},
        {**good, "id": "x4", "question": sec.title},
        {**good, "id": "x5", "relevant": [], "kind": "nearby"},
        {**good, "id": "x6", "evidence": [{**ev, "text": "![](img/a.png)"}]},
    ]
    errors = checker.check(bad, corpus)
    for qid, what in [("x1", "no section"), ("x2", "evidence text"), ("x3", "not inside"),
                      ("x4", "copies the heading"), ("x5", "has evidence")]:
        assert any(e.startswith(f"{qid}:") and what in e for e in errors), (qid, errors)
    assert any(e.startswith("x6:") for e in errors)


def test_unclean_pattern_finds_what_a_quote_must_not_hold():
    for s in ("见图 ![](img/ch9/a.png)", "<center>图</center>", "一行<br />两行", "零\u200b宽"):
        assert checker.UNCLEAN.search(s), s
    for s in ("若 a < b 且 b > c", "x<3 时", "1×1 卷积", "LaTeX $x_i$"):
        assert not checker.UNCLEAN.search(s), s
    # a loader's sentence may hold a zero-width space inside math or bold, nowhere else
    assert not checker.unclean("可以用$1\\times1\u200b$的卷积") and not checker.unclean("**How \u200bto**")
    assert checker.unclean("零\u200b宽$x$") and checker.unclean("$x$ ![](img/a.png)").group() == "![](img/a.png)"


@pytest.fixture(scope="module")
def heldout():
    return checker.read_questions(checker.HELDOUT)


def test_heldout_set_passes_every_check(heldout, corpus):
    errors = checker.check(heldout, corpus, checker.HELDOUT_SPLITS)
    assert errors == [], "\n".join(errors[:20])


def test_heldout_set_repeats_no_question_of_the_tuning_set(heldout, questions):
    errors = checker.duplicates(heldout, questions)
    assert errors == [], "\n".join(errors[:20])


def test_duplicate_check_catches_a_repeat(heldout, questions):
    old = questions[0]["question"]
    repeats = [{**heldout[0], "id": "d1", "question": old.upper() + " ？"},
               {**heldout[0], "id": "d2", "question": old + "呢"}]
    errors = checker.duplicates(repeats, questions)
    assert [e.split(":")[0] for e in errors] == ["d1", "d2"]


def test_split_values_stay_apart(heldout, questions, corpus):
    """The tuning set may not carry split heldout, nor the held-out set dev or test."""
    good = next(q for q in questions if q["relevant"])
    assert any("split must be dev or test" in e for e in checker.check([{**good, "split": "heldout"}], corpus))
    q = next(q for q in heldout if q["relevant"])
    assert any("split must be heldout" in e for e in checker.check([{**q, "split": "test"}], corpus, checker.HELDOUT_SPLITS))


def test_heldout_set_covers_the_book(heldout):
    assert len(heldout) >= 100
    assert all(q["split"] == "heldout" for q in heldout)
    assert [q["id"] for q in heldout] == [f"h{i:03d}" for i in range(1, len(heldout) + 1)]
    chapters = {r.split("/")[0] for q in heldout for r in q["relevant"]}
    assert chapters == {f"ch{i:02d}" for i in range(1, 20)}
    assert sum(not q["relevant"] for q in heldout) >= 10
    langs = Counter(q["lang"] for q in heldout if q["relevant"])
    assert langs["zh"] >= 50 and langs["en"] >= 50
    translated = {"ch01", "ch02", "ch03", "ch04"}
    en_first = Counter(sorted(q["relevant"])[0].split("/")[0] in translated
                       for q in heldout if q["lang"] == "en" and q["relevant"])
    assert en_first[True] >= 12 and en_first[False] >= 35
    assert len({q["kind"] for q in heldout}) >= 10
