"""The abstention rule: a model per corpus scale, its threshold by expected cost (rag/abstain.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag import abstain
from rag.abstain import FEATURES, choose_threshold, expected_cost, fit, model_for

A, U = "answerable_abstains", "unanswerable_answered"


def test_expected_cost_counts_each_wrong_decision_at_its_price():
    p = np.array([0.1, 0.4, 0.6, 0.9, 0.2, 0.7])
    y = np.array([1, 1, 1, 1, 0, 0])
    # t = 0.5: two answerable abstain (0.1, 0.4), one unanswerable is answered (0.7)
    assert expected_cost(p, y, 0.5, {A: 2.0, U: 1.0}) == pytest.approx((2 * 2 + 1 * 1) / 6)
    assert expected_cost(p, y, 0.5, {A: 1.0, U: 3.0}) == pytest.approx((2 + 3) / 6)
    assert expected_cost(p, y, 0.0, {A: 1.0, U: 3.0}) == pytest.approx(2 * 3 / 6)  # answers all
    assert expected_cost(p, y, 1.1, {A: 1.0, U: 3.0}) == pytest.approx(4 / 6)  # abstains on all


cases = st.integers(4, 30).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.floats(0, 1), min_size=n, max_size=n), min_size=1, max_size=3),
    st.lists(st.integers(0, 1), min_size=n, max_size=n),
    st.floats(0.2, 5), st.floats(0.2, 5)))


@settings(max_examples=200, deadline=None)
@given(cases)
def test_the_threshold_is_the_cheapest(case):
    ps, y, ca, cu = case
    ps, y, costs = [np.round(np.array(p), 6) for p in ps], np.array(y), {A: ca, U: cu}
    t = choose_threshold(ps, y, costs)
    assert 0.0 <= t <= 1.0 + 1e-6

    def cost(x):
        return np.mean([expected_cost(p, y, x, costs) for p in ps])

    others = np.concatenate([np.linspace(0, 1.0001, 101), *ps])
    assert cost(t) <= min(cost(x) for x in others) + 1e-9
    # dearer wrong answers never lower the threshold
    assert choose_threshold(ps, y, {A: ca, U: cu * 2}) >= t - 1e-12


def test_the_model_of_the_nearest_corpus_scale_reads_a_question():
    fitted = {"chapter": {"sections": 15}, "book": {"sections": 707}}
    assert [model_for(n, fitted)["sections"] for n in (1, 15, 60, 100)] == [15] * 4
    assert [model_for(n, fitted)["sections"] for n in (110, 707, 722, 100_000)] == [707] * 4


def test_fit_puts_the_threshold_where_the_costs_say():
    """On small synthetic data: dearer abstentions lower the threshold, dearer wrong answers raise it,
    and the figures count out-of-fold decisions."""
    rng = np.random.default_rng(0)
    n_pos, n_neg = 60, 20
    X = np.vstack([rng.normal(0.6, 0.25, (n_pos, len(FEATURES))), rng.normal(0.0, 0.25, (n_neg, len(FEATURES)))])
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    langs = np.array(["zh", "en"] * (len(y) // 2))
    lenient = fit(X, y, langs, costs={A: 5.0, U: 1.0})
    strict = fit(X, y, langs, costs={A: 1.0, U: 5.0})
    assert lenient["threshold"] <= strict["threshold"]
    assert set(lenient["cv"]["out_of_fold"]) == {"zh", "en"}
    for m in (lenient, strict):
        figures = m["cv"]["out_of_fold"]["zh"]
        assert figures["answerable"] == 30 and figures["unanswerable"] == 10
        assert 0 <= figures["answerable_abstain"] <= 1 and 0 <= figures["abstain_recall"] <= 1
    rec = sum(m["cv"]["out_of_fold"][x]["abstain_recall"] for x in ("zh", "en"))
    assert sum(strict["cv"]["out_of_fold"][x]["abstain_recall"] for x in ("zh", "en")) >= rec - 1e-9


def test_the_shipped_models_serve_the_chapter_and_the_book(retriever):
    from rag.answer import analyse

    shipped = abstain.models()
    assert set(shipped) == {"chapter", "book"}
    a = analyse("什么是负迁移？", retriever)
    assert a.features["sections"] == len(retriever.section_keys)
    assert model_for(a.features["sections"]) is shipped["chapter"]
    assert model_for(707) is shipped["book"]
    assert abstain.answerable(a.features)


def test_cli_needs_a_book_index(tmp_path, capsys):
    with pytest.raises(SystemExit):
        abstain.main([])
    assert abstain.main(["--book-index", str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err
