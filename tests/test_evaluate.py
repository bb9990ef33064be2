import json
import math
import subprocess
import sys

import pytest

from conftest import REPO
from rag.evaluate import (answer_scores, check_floors, compare, evaluate, hit_at, mrr_at, ndcg_at,
                          read_beir, read_questions, recall_at, write_beir)
from rag.types import RagError

# q1: the relevant section is ranked second -> hit@1 0, hit@3 1, mrr 1/2.
# q2: two relevant sections at ranks 1 and 3 -> recall@5 1, ndcg = (1 + 1/log2(4)) / (1 + 1/log2(3)).
# q3: nothing relevant retrieved -> every metric 0.
QRELS = {"q1": {"10.2": 1}, "q2": {"10.6": 1, "10.7": 1}, "q3": {"10.14": 1}}
RUN = {"q1": {"10.1": 0.9, "10.2": 0.8, "10.3": 0.1},
       "q2": {"10.6": 0.9, "10.8": 0.5, "10.7": 0.4},
       "q3": {"10.1": 0.3}}


def test_metrics_by_hand():
    assert [hit_at(QRELS["q1"], RUN["q1"], k) for k in (1, 3)] == [0.0, 1.0]
    assert mrr_at(QRELS["q1"], RUN["q1"], 10) == 0.5
    assert recall_at(QRELS["q2"], RUN["q2"], 5) == 1.0 and recall_at(QRELS["q2"], RUN["q2"], 1) == 0.5
    assert ndcg_at(QRELS["q2"], RUN["q2"], 10) == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    m = evaluate(QRELS, RUN)
    assert m["hit@1"] == pytest.approx(1 / 3) and m["mrr@10"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert evaluate(QRELS, {})["hit@5"] == 0.0  # a question missing from the run scores 0


def test_metrics_agree_with_ranx_on_random_runs():
    ranx = pytest.importorskip("ranx", reason="pip install ranx (test extra)")
    import random

    rng = random.Random(7)
    docs = [f"d{i}" for i in range(12)]
    qrels = {f"q{i}": {d: 1 for d in rng.sample(docs, rng.randint(1, 3))} for i in range(40)}
    run = {q: {d: rng.random() for d in rng.sample(docs, rng.randint(1, 12))} for q in qrels}
    ours = evaluate(qrels, run, ("hit@1", "hit@5", "mrr@10", "ndcg@10", "recall@5"))
    theirs = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), ["hit_rate@1", "hit_rate@5", "mrr@10", "ndcg@10", "recall@5"])
    assert ours["hit@1"] == pytest.approx(theirs["hit_rate@1"])
    assert ours["hit@5"] == pytest.approx(theirs["hit_rate@5"])
    for m in ("mrr@10", "ndcg@10", "recall@5"):
        assert ours[m] == pytest.approx(theirs[m]), m


def test_abstention_scores():
    def rec(answerable, abstained):
        return {"answerable": answerable, "abstained": abstained, "first_ok": False, "has_evidence": False,
                "hit": 0.0, "recall": 0.0, "precision": None, "length": 0.0}

    s = answer_scores([rec(True, True), rec(False, True), rec(False, False)])
    assert (s["abstain_precision"], s["abstain_recall"], s["abstain_rate_answerable"]) == (0.5, 0.5, 1.0)


def test_shipped_question_set_shape():
    qs = read_questions(REPO / "eval" / "questions.jsonl")
    assert len(qs) >= 100 and len({q["id"] for q in qs}) == len(qs)
    langs = [q["lang"] for q in qs]
    assert abs(langs.count("zh") - langs.count("en")) <= 10
    assert sum(not q["relevant"] for q in qs) >= 15
    assert {q["split"] for q in qs} == {"dev", "test"}
    covered = [s for q in qs for s in q["relevant"]]
    for sec in ["10.1", "10.2", "10.3", "10.4", "10.5", "10.6", "10.7", "10.8", "10.9", "10.10", "10.11",
                "10.13", "10.14", "10.15", "Reference"]:
        assert covered.count(sec) >= 3, sec


def test_beir_round_trip(tmp_path):
    qs = read_questions(REPO / "eval" / "questions.jsonl")[:20] + read_questions(REPO / "eval" / "questions.jsonl")[-2:]
    write_beir(qs, tmp_path / "beir")
    assert (tmp_path / "beir" / "qrels" / "test.tsv").read_text().startswith("query-id\tcorpus-id\tscore\n")
    assert read_beir(tmp_path / "beir") == qs
    assert read_questions(tmp_path / "beir") == qs


def test_bad_question_files(tmp_path):
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"id": "1", "question": "x"}\n{oops\n', encoding="utf-8")
    assert [q["id"] for q in read_questions(bad)] == ["1"]  # the damaged line is skipped (with a warning)
    bad.write_text('{oops\n[1]\n', encoding="utf-8")
    with pytest.raises(RagError, match="has no questions .2 damaged line.s. skipped, first: line 1"):
        read_questions(bad)
    with pytest.raises(RagError, match="cannot read question set"):
        read_questions(tmp_path / "missing.jsonl")
    with pytest.raises(RagError, match="not a BEIR question set"):
        read_questions(tmp_path)


def test_floors_and_compare():
    results = {"retrieval": {"hybrid": {"all": {"mrr@10": 0.8, "n": 3}}}, "answers": {"all": {"accuracy": 0.5, "n": 2,
               "unanswerable": 0}}, "per_question": [{"id": "q1", "relevant": ["a"], "retrieved": {"hybrid": ["a"]}}]}
    baseline = {"retrieval": {"hybrid": {"all": {"mrr@10": 0.9, "n": 3}}}, "answers": {"all": {"accuracy": 0.5, "n": 2,
                "unanswerable": 0}}, "per_question": [{"id": "q1", "relevant": ["a"], "retrieved": {"hybrid": ["b"]}}]}
    assert check_floors(results, {"hybrid/all/mrr@10": 0.85}) == ["hybrid/all/mrr@10 = 0.800 is below the floor 0.850"]
    assert check_floors(results, {"answer/all/accuracy": 0.5}) == []
    with pytest.raises(RagError, match="unknown metric"):
        check_floors(results, {"hybrid/all/mrr@3": 0.1})
    metrics, questions = compare(results, baseline)
    assert metrics == [("hybrid/all/mrr@10", 0.9, 0.8)] and questions == [("q1", "hybrid", "fixed")]


def rag(*args):
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def test_eval_cli_report_compare_and_floors(tmp_path):
    qs = tmp_path / "q.jsonl"
    qs.write_text("\n".join(json.dumps(q, ensure_ascii=False) for q in [
        {"id": "a", "question": "什么是负迁移？", "lang": "zh", "relevant": ["10.14"]},
        {"id": "b", "question": "What is end-to-end deep learning?", "lang": "en", "relevant": ["10.9"]},
        {"id": "c", "question": "How do I bake bread?", "lang": "en", "relevant": []},
    ]), encoding="utf-8")
    out = rag("eval", str(qs), "--report", str(tmp_path / "rep"), "--quiet")
    assert out.returncode == 0, out.stderr
    assert "hit@1" in out.stdout and "first-citation acc" in out.stdout and "Per section" in out.stdout
    for name in ("report.md", "results.json", "modes.png"):
        assert (tmp_path / "rep" / name).stat().st_size > 0
    res = json.loads((tmp_path / "rep" / "results.json").read_text(encoding="utf-8"))
    assert res["retrieval"]["hybrid"]["all"]["hit@1"] == 1.0 and len(res["per_question"]) == 3
    out = rag("eval", str(qs), "--modes", "hybrid", "--quiet", "--compare", str(tmp_path / "rep" / "results.json"),
              "--floor", "hybrid/all/mrr@10=1.01")
    assert out.returncode == 1 and "below the floor" in out.stderr and "Compared with" in out.stdout
    for args, message in [(("--modes", "fuzzy"), "unknown mode"), (("--floor", "x"), "METRIC=VALUE"),
                          (("--split", "nope"), "no questions with split"), (("-k", "0"), "k must be"),
                          (("--compare", str(tmp_path / "none.json")), "cannot read")]:
        out = rag("eval", str(qs), "--quiet", *args)
        assert out.returncode == 2 and out.stderr.startswith("error:") and message in out.stderr, out.stderr


def test_ci_guard_test_part_stays_above_committed_floors():
    """The regression guard: retrieval and answers on the held-out test part stay above eval/floors.json."""
    out = rag("eval", "--split", "test", "--modes", "hybrid", "--quiet", "--floors", str(REPO / "eval" / "floors.json"))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr


def test_ci_guard_book_test_part_stays_above_its_floors(tmp_path):
    """The same guard on the whole book (a build of ~45 s): eval/book_floors.json sits two questions
    under what the book's held-out part measures (eval/README.md)."""
    index = tmp_path / "book-index"
    out = rag("build", "--corpus", str(REPO / "book"), "--index", str(index), "--quiet")
    assert out.returncode == 0, out.stderr[-2000:]
    out = rag("eval", str(REPO / "eval" / "book_questions.jsonl"), "--index", str(index), "--split", "test",
              "--modes", "hybrid", "--quiet", "--floors", str(REPO / "eval" / "book_floors.json"))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr


# ---------------------------------------------------------------- answer evidence, by hand

GOLD = [{"source": "f.zh.md", "start": 10, "end": 20, "text": "x"}, {"source": "f.zh.md", "start": 30, "end": 40, "text": "y"}]


def _q(quote, start, end, source="f.zh.md", section="1", original=None):
    d = {"quote": quote, "source": source, "start": start, "end": end, "section": section}
    if original:
        d["original"] = original
    return d


def test_evidence_scores_by_hand():
    from rag.evaluate import evidence_scores

    # A lead-in before a gold sentence is necessary context; an unrelated sentence is not.
    quotes = [_q("原因主要有：", 0, 9), _q("数据问题：源域和目标域不相似。", 10, 20), _q("无关的一句话。", 50, 60)]
    s = evidence_scores(quotes, GOLD)
    assert s == {"hit": 1.0, "recall": 0.5, "precision": pytest.approx(2 / 3), "length": 6 + 15 + 7}
    # A translated quote counts through its aligned original; one that leans on the one before
    # ("Therefore ...") makes that one necessary context.
    quotes = [_q("Some setup.", 0, 11, "f.en.md"),
              _q("Therefore it helps.", 12, 31, "f.en.md", original={"source": "f.zh.md", "start": 31, "end": 35})]
    s = evidence_scores(quotes, GOLD)
    assert (s["hit"], s["recall"], s["precision"]) == (1.0, 0.5, 1.0)
    # Context only counts before a gold sentence of the same section.
    quotes = [_q("Some setup.", 0, 9, section="2"), _q("Therefore it helps.", 10, 20)]
    assert evidence_scores(quotes, GOLD)["precision"] == 0.5
    # Chinese connective, and no quotes at all
    assert evidence_scores([_q("前提。", 0, 5), _q("所以有用。", 30, 40)], GOLD)["precision"] == 1.0
    assert evidence_scores([], GOLD) == {"hit": 0.0, "recall": 0.0, "precision": None, "length": 0.0}
    assert evidence_scores([_q("近旁。", 20, 30)], GOLD)["hit"] == 0.0  # touching is not overlapping


def test_answer_scores_and_bootstrap_by_hand():
    from rag.evaluate import answer_scores, bootstrap_ci

    def rec(answerable, abstained, first_ok=False, hit=0.0, precision=None):
        return {"answerable": answerable, "abstained": abstained, "first_ok": first_ok, "has_evidence": answerable,
                "hit": hit, "recall": hit, "precision": precision, "length": 10.0 if not abstained else 0.0}

    records = [rec(True, False, True, 1.0, 1.0), rec(True, False, False, 0.0, 0.5), rec(True, True),
               rec(False, True), rec(False, False)]
    m = answer_scores(records)
    assert m["accuracy"] == pytest.approx(1 / 3) and m["evidence_hit"] == pytest.approx(1 / 3)
    assert m["quote_precision"] == 0.75  # over the answered answerable ones
    assert m["abstain_precision"] == 0.5 and m["abstain_recall"] == 0.5
    assert m["abstain_rate_answerable"] == pytest.approx(1 / 3)
    assert m["n"] == 3 and m["unanswerable"] == 2 and m["length_chars"] == 10.0
    lo, hi = m["ci"]["accuracy"]
    assert 0.0 <= lo <= m["accuracy"] <= hi <= 1.0
    assert bootstrap_ci([0.5] * 10, lambda xs: sum(xs) / len(xs)) == [0.5, 0.5]


def test_evidence_is_checked_on_load(tmp_path):
    line = {"id": "a", "question": "什么是负迁移？", "lang": "zh", "relevant": ["10.14"],
            "evidence": [{"source": "ch10_transfer_learning.zh.md", "start": 0, "end": 7, "text": "# 第十章 迁"}]}
    p = tmp_path / "q.jsonl"
    p.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_questions(p)[0]["evidence"][0]["end"] == 7
    line["evidence"][0]["text"] = "# 第十章 迁移"
    p.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(RagError, match="does not match ch10_transfer_learning.zh.md"):
        read_questions(p)
    line["evidence"][0]["source"] = "nowhere.md"
    p.write_text(json.dumps(line, ensure_ascii=False) + "\n", encoding="utf-8")
    with pytest.raises(RagError, match="not found"):
        read_questions(p)


def test_shipped_question_set_has_gold_evidence_and_follow_ups():
    qs = read_questions(REPO / "eval" / "questions.jsonl")  # offsets are checked on load
    answerable = [q for q in qs if q["relevant"]]
    assert all(q.get("evidence") for q in answerable)
    for lang in ("zh", "en"):
        assert sum(1 for q in qs if q.get("history") and q["lang"] == lang) >= 20
    assert {q["split"] for q in qs} == {"dev", "test"}


def test_relevant_ids_are_chapter_qualified():
    from rag.evaluate import resolve_relevant

    keys = ["ch05/5.1", "ch06/5.1", "ch10/10.3", "ch10/Reference"]
    qs = [{"id": "a", "relevant": ["10.3", "ch05/5.1"]}, {"id": "b", "relevant": ["Reference"]}]
    assert [q["relevant"] for q in resolve_relevant(qs, keys)] == [["ch10/10.3", "ch05/5.1"], ["ch10/Reference"]]
    with pytest.raises(RagError, match="ambiguous.*ch05/5.1, ch06/5.1"):
        resolve_relevant([{"id": "c", "relevant": ["5.1"]}], keys)
    with pytest.raises(RagError, match="no section '9.9'"):
        resolve_relevant([{"id": "d", "relevant": ["9.9"]}], keys)


def test_shipped_questions_resolve_on_the_chapter_index(retriever):
    from rag.evaluate import read_questions, resolve_relevant

    qs = resolve_relevant(read_questions(REPO / "eval" / "questions.jsonl"), retriever.section_keys)
    assert all(r.startswith("ch10/") for q in qs for r in q["relevant"])
