"""Corpus-level F1 from per-item counts: hand-computed values, CIs and paired comparisons."""

import math

import pytest

from medarena.compare.corpus import (
    f1_score,
    f1_with_ci,
    label_counts,
    paired_f1,
    prediction_counts,
    task_classes,
)
from medarena.compare.paired import item_values, paired_f1_stats
from medarena.errors import Refused
from medarena.results import Prediction
from medarena.store.queries import paired_metrics

# item 1 right on a; item 2 predicts a where b is gold; item 3 predicts an unknown label c
ITEMS = [{"a": [1, 0, 0]}, {"a": [0, 1, 0], "b": [0, 0, 1]}, {"c": [0, 1, 0]}]


def test_label_counts_duplicates_count_once():
    assert label_counts(["a", "b"], ["b", "c", "c"]) == {
        "a": [0, 0, 1],
        "b": [1, 0, 0],
        "c": [0, 1, 0],
    }


def test_micro_f1_hand_computed_with_an_unknown_label():
    # tp 1, fp 2 (a on item 2, c on item 3), fn 1: 2 / (2 + 2 + 1)
    assert f1_score(ITEMS, "micro") == pytest.approx(0.4)


def test_macro_f1_averages_over_the_closed_set_only():
    # a: tp 1 fp 1 fn 0 -> 2/3; b: no tp -> 0; c is not a class of the task
    assert f1_score(ITEMS, "macro", ["a", "b"]) == pytest.approx(1 / 3)


def test_empty_predictions_score_zero():
    missed = [label_counts(["a"], []), label_counts(["b"], [])]
    assert f1_score(missed, "micro") == 0.0
    assert f1_score(missed, "macro", ["a", "b"]) == 0.0
    assert f1_score([], "micro") == 0.0


def test_unknown_average_is_refused():
    with pytest.raises(ValueError, match="micro or macro"):
        f1_score(ITEMS, "weighted")


def test_f1_ci_brackets_the_value_and_is_deterministic():
    items = [label_counts(["a"], ["a"])] * 6 + [label_counts(["a"], ["b"])] * 4
    value, low, high = f1_with_ci(items, "micro")
    assert value == pytest.approx(0.6)  # tp 6, fp 4, fn 4: 12 / 20
    assert low <= value <= high and low < high
    assert f1_with_ci(items, "micro") == (value, low, high)


def test_paired_f1_of_identical_runs_is_zero_difference():
    paired = paired_f1(ITEMS, ITEMS, "micro")
    assert (paired.difference, paired.ci_low, paired.ci_high, paired.p_value) == (0, 0, 0, 1.0)


def test_paired_f1_resamples_both_runs_with_the_same_rows():
    right = [label_counts(["a"], ["a"])] * 10
    wrong = [label_counts(["a"], ["b"])] * 10
    paired = paired_f1(right, wrong, "micro")
    assert (paired.f1_a, paired.f1_b, paired.difference) == (1.0, 0.0, 1.0)
    assert (paired.ci_low, paired.ci_high, paired.p_value) == (1.0, 1.0, 0.0)


def _choice(item_id, gold, parsed):
    return Prediction(
        item_id, "h", gold, parsed_answer=parsed, correct=gold == parsed,
        details={"choices": ["yes", "no", "maybe"]},
    )  # fmt: skip


def test_counts_of_one_answer_from_a_closed_set():
    assert prediction_counts(_choice("1", "yes", None), "labels") == {"yes": [0, 0, 1]}
    assert prediction_counts(_choice("1", "yes", "no"), "labels") == {
        "no": [0, 1, 0],
        "yes": [0, 0, 1],
    }
    assert task_classes([_choice("1", "yes", None)]) == ["yes", "no", "maybe"]


def test_counts_missing_names_the_item():
    with pytest.raises(Refused, match="'x' stores no 'strict' counts"):
        prediction_counts(Prediction("x", "h", "g", details={}), "strict")


def test_paired_f1_stats_counts_item_wins_and_bootstraps_the_difference():
    a = [_choice(str(i), "yes", "yes") for i in range(6)]
    b = [_choice(str(i), "yes", "yes" if i < 3 else "no") for i in range(6)] + [
        _choice("extra", "no", "no")
    ]
    stats = paired_f1_stats(a, b, "macro_f1")
    # A: yes F1 1, no F1 0 (no tp), maybe 0 -> 1/3; B: yes tp 3 fn 3 -> 2/3, others 0 -> 2/9
    assert stats.mean_a == pytest.approx(1 / 3) and stats.mean_b == pytest.approx(2 / 9)
    assert (stats.wins, stats.losses, stats.ties, stats.only_in_b) == (3, 0, 3, 1)
    assert stats.test == "paired bootstrap" and stats.ci_low <= stats.difference <= stats.ci_high


def test_item_values_of_an_f1_metric_is_the_item_f1():
    ner = Prediction("n", "h", "", details={"f1_counts": {"strict": {"problem": [1, 1, 0]}}})
    empty = Prediction("e", "h", "", details={"f1_counts": {"strict": {}}})
    values = item_values([ner, empty], "strict_f1")
    assert values["n"] == pytest.approx(2 / 3) and values["e"] == 1.0
    assert not math.isnan(values["n"])


def test_paired_metrics_lists_the_f1_metrics_a_run_can_be_compared_on():
    assert paired_metrics([_choice("1", "yes", "no")]) == ["acc", "macro_f1"]
    counts = {"strict": {}, "lenient": {}}
    ner = Prediction("n", "h", "", details={"f1_counts": counts})
    assert paired_metrics([ner]) == ["strict_f1", "lenient_f1"]
    labels = Prediction("m", "h", "", correct=True, details={"f1_counts": {"labels": {}}})
    assert paired_metrics([labels]) == ["acc", "macro_f1", "micro_f1"]
