"""The formula metrics on hand-made pairs."""

from __future__ import annotations

import pytest

from mathocr.metrics import bleu4, repetition_loop, score_pairs, score_tokens, token_edit_distance

TRUTH = "x ^ { 2 } + 1".split()


def test_exact_match_scores_perfectly():
    scores = score_tokens([TRUTH], [TRUTH])
    assert (scores.n, scores.exprate, scores.le1, scores.le2) == (1, 1.0, 1.0, 1.0)
    assert scores.token_edit_distance == 0 and scores.bleu4 == pytest.approx(1.0)


def test_one_substitution_is_within_one_error_but_not_exact():
    predicted = "x ^ { 3 } + 1".split()
    assert token_edit_distance(predicted, TRUTH) == 1
    scores = score_tokens([predicted], [TRUTH])
    assert (scores.exprate, scores.le1, scores.le2) == (0.0, 1.0, 1.0)
    assert 0 < scores.bleu4 < 1


def test_one_insertion_and_three_errors():
    inserted = "x ^ { 2 } + + 1".split()
    assert token_edit_distance(inserted, TRUTH) == 1
    far = "y ^ { 3 } - 1".split()
    assert token_edit_distance(far, TRUTH) == 3
    scores = score_tokens([inserted, far, TRUTH, []], [TRUTH] * 4)
    assert scores.exprate == 0.25
    assert scores.le1 == 0.5 and scores.le2 == 0.5
    assert scores.token_edit_distance == pytest.approx((1 + 3 + 0 + len(TRUTH)) / 4)


def test_scores_compare_canonical_forms():
    scores = score_pairs(["x^2+1", "$\\frac12$"], ["{x}^{2} + 1", "\\frac{1}{2}"])
    assert scores.exprate == 1.0


def test_bleu_of_nothing_is_zero():
    assert bleu4([[]], [TRUTH]) == 0.0


def test_repetition_loops_are_recognized():
    assert repetition_loop("x + x + x + x +".split())
    assert repetition_loop(") ) ) )".split())
    assert not repetition_loop(TRUTH)
    assert not repetition_loop("1 1".split())


def test_exprate_by_length_bins_the_truths_by_their_token_count():
    from mathocr.metrics import exprate_by_length

    short, long = ["x"], ["a"] * 12
    rates = exprate_by_length([["x"], ["y"], ["a"] * 12], [short, short, long])
    assert rates == {"1-5": {"n": 2, "exprate": 0.5}, "11-20": {"n": 1, "exprate": 1.0}}
    assert exprate_by_length([["a"] * 50], [["a"] * 45]) == {"41+": {"n": 1, "exprate": 0.0}}
    with pytest.raises(ValueError):
        exprate_by_length([["x"]], [])


def test_exprate_by_novelty_splits_truths_met_in_training_from_new_ones():
    from mathocr.metrics import exprate_by_novelty

    known = [["x", "+", "1"], ["a", "=", "b"]]
    predictions = [["x", "+", "1"], ["a", "=", "6"], ["y"], ["z"]]
    truths = [["x", "+", "1"], ["a", "=", "b"], ["y"], ["w"]]
    assert exprate_by_novelty(predictions, truths, known) == {"seen": {"n": 2, "exprate": 0.5},
                                                              "new": {"n": 2, "exprate": 0.5}}
    # a truth is seen only as a whole sequence, not as a part of a known one
    assert exprate_by_novelty([["x"]], [["x"]], known) == {"new": {"n": 1, "exprate": 1.0}}
    assert exprate_by_novelty([["x", "+", "1"]], [["x", "+", "1"]], iter(known)) == {"seen": {"n": 1, "exprate": 1.0}}
    with pytest.raises(ValueError):
        exprate_by_novelty([["x"]], [], known)


def test_edit_operations_and_confusions_name_each_edit():
    from mathocr.metrics import confusions, edit_operations, token_edit_distance

    assert edit_operations("x + 1".split(), "X + 1".split()) == [("x", "X")]
    assert edit_operations("a ^ { \\prime }".split(), "a ^ { }".split()) == [("\\prime", None)]
    assert edit_operations("a b".split(), "a 0 b".split()) == [(None, "0")]
    assert edit_operations([], []) == [] and edit_operations(["a"], ["a"]) == []
    assert edit_operations(["a", "b"], []) == [("a", None), ("b", None)]
    pairs = [("x + y".split(), "X + y".split()), ("x = 1".split(), "X = 1 0".split()), ("x".split(), "x".split())]
    for truth, prediction in pairs:
        assert len(edit_operations(truth, prediction)) == token_edit_distance(truth, prediction)
    found = confusions([p for _, p in pairs], [t for t, _ in pairs])
    assert found == [{"truth": "x", "predicted": "X", "count": 2}, {"truth": None, "predicted": "0", "count": 1}]
    assert confusions([p for _, p in pairs], [t for t, _ in pairs], top=1) == found[:1]
    with pytest.raises(ValueError):
        confusions([["x"]], [])


def test_paired_comparison_counts_gains_and_losses_and_tests_them_exactly():
    from mathocr.metrics import paired_comparison

    a = [True, True, False, False, True, False]
    b = [True, False, True, True, True, False]
    result = paired_comparison(a, b, resamples=2000)
    assert (result["n"], result["gained"], result["lost"]) == (6, 2, 1)
    assert result["exprate_a"] == pytest.approx(0.5) and result["exprate_b"] == pytest.approx(4 / 6, abs=1e-4)
    assert result["difference"] == pytest.approx(1 / 6, abs=1e-4)
    # two gained against one lost: 2 * P(X <= 1), X ~ Binomial(3, 1/2) = 2 * 4/8, capped at 1
    assert result["p_value"] == 1.0
    low, high = result["interval95"]
    assert low <= result["difference"] <= high
    # ten gained and none lost: 2 / 2**10
    ten = paired_comparison([False] * 10 + [True] * 5, [True] * 15, resamples=500)
    assert ten["p_value"] == pytest.approx(2 / 1024, rel=1e-2)
    assert ten["interval95"][0] > 0
    # a lopsided difference keeps its p-value's significant digits: 2 / 2**30, not 0
    lopsided = paired_comparison([False] * 30, [True] * 30, resamples=0)
    assert lopsided["p_value"] == pytest.approx(2 / 2 ** 30, rel=1e-2) and lopsided["p_value"] > 0
    # seven gained, one lost: 2 * (1 + 8) / 256
    seven = paired_comparison([False] * 7 + [True], [True] * 7 + [False], resamples=0)
    assert seven["p_value"] == pytest.approx(18 / 256, rel=1e-2)
    # identical results: nothing to test, no difference
    same = paired_comparison(a, a)
    assert same["p_value"] == 1.0 and same["interval95"] == [0.0, 0.0]
    with pytest.raises(ValueError, match="same formulas"):
        paired_comparison(a, b[:-1])
    with pytest.raises(ValueError, match="no formulas"):
        paired_comparison([], [])
