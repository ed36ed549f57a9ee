"""Paired statistics: exact McNemar / sign test, pairing by item, paired bootstrap."""

import numpy as np
import pytest

from medarena.compare import bootstrap_ci, exact_binomial_p, item_values, paired_stats
from medarena.errors import Refused
from medarena.results import Prediction
from medarena.store.queries import ACCURACY


@pytest.mark.parametrize(
    ("wins", "losses", "expected"),
    [
        (1, 9, 0.021484375),  # 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
        (9, 1, 0.021484375),  # two-sided: symmetric
        (0, 6, 0.03125),  # 2 / 2^6
        (3, 1, 0.625),  # 2 * (1 + 4) / 16
        (5, 2, 0.453125),  # 2 * (1 + 7 + 21) / 128
        (5, 5, 1.0),  # capped at 1
        (0, 0, 1.0),  # no discordant pair
    ],
)
def test_exact_binomial_p_hand_computed(wins, losses, expected):
    assert exact_binomial_p(wins, losses) == pytest.approx(expected, abs=1e-15)


def test_exact_binomial_p_large_counts_stay_finite():
    assert exact_binomial_p(400, 600) == pytest.approx(2.6e-10, rel=0.1)
    assert exact_binomial_p(0, 5000) == 0.0


def test_exact_binomial_p_refuses_negative_counts():
    with pytest.raises(ValueError, match="counts"):
        exact_binomial_p(-1, 3)


def test_paired_counts_on_common_items():
    a = {"i1": 1.0, "i2": 0.0, "i3": 1.0, "i4": 0.0, "only-a": 1.0}
    b = {"i1": 0.0, "i2": 0.0, "i3": 1.0, "i4": 1.0, "only-b1": 1.0, "only-b2": 0.0}
    stats = paired_stats(a, b, ACCURACY)
    assert (stats.n, stats.wins, stats.losses, stats.ties) == (4, 1, 1, 2)
    assert (stats.only_in_a, stats.only_in_b) == (1, 2)
    assert (stats.mean_a, stats.mean_b, stats.difference) == (0.5, 0.5, 0.0)
    assert stats.p_value == 1.0
    assert stats.test == "exact McNemar"


def test_paired_bootstrap_resamples_items_jointly():
    # B is A minus 0.1 on every item: a paired CI is exactly 0.1 wide zero; resampling the runs
    # independently would give a wide interval because the items vary a lot
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 1, size=50)
    a = {f"i{k}": float(v) for k, v in enumerate(scores)}
    b = {key: value - 0.1 for key, value in a.items()}
    stats = paired_stats(a, b, "rouge_l")
    assert stats.ci_low == pytest.approx(0.1) and stats.ci_high == pytest.approx(0.1)
    assert stats.wins == 50 and stats.test == "exact sign test"
    assert stats.p_value == pytest.approx(2 / 2**50)


def test_paired_ci_is_the_bootstrap_of_the_differences():
    a = {"x": 1.0, "y": 1.0, "z": 0.0, "w": 1.0}
    b = {"x": 0.0, "y": 1.0, "z": 0.0, "w": 0.0}
    stats = paired_stats(a, b, ACCURACY)
    assert (stats.ci_low, stats.ci_high) == bootstrap_ci([0.0, 1.0, 1.0, 0.0])  # w, x, y, z
    assert stats.ci_low <= stats.difference == 0.5 <= stats.ci_high


def test_no_common_items_is_refused():
    with pytest.raises(Refused, match=r"share no item \(A has 1 items, B has 2\)"):
        paired_stats({"a": 1.0}, {"b": 1.0, "c": 0.0}, ACCURACY)


def _prediction(item_id, correct=None, details=None):
    return Prediction(item_id, "h", "A", correct=correct, details=details)


def test_item_values_accuracy_counts_unscored_as_wrong():
    values = item_values([_prediction("a", True), _prediction("b", None)], ACCURACY)
    assert values == {"a": 1.0, "b": 0.0}


def test_item_values_scores_from_details():
    values = item_values([_prediction("a", details={"rouge_l": 0.25})], "rouge_l")
    assert values == {"a": 0.25}


def test_item_values_missing_score_names_item_and_metric():
    with pytest.raises(Refused, match="item 'b' has no per-item 'bertscore_f1'"):
        item_values([_prediction("b", details={"rouge_l": 0.5})], "bertscore_f1")
