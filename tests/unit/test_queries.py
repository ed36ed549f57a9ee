"""What results mean, defined once (medarena.store.queries): the run key, the default paired
metric and how a value with its CI is printed."""

import math

from medarena.results import LeaderboardRow, MetricValue, Prediction
from medarena.store.queries import (
    ACCURACY,
    default_paired_metric,
    format_ci,
    paired_metrics,
    run_key_hash,
)
from tests.factories import eval_spec


def test_run_key_hash_is_stable():
    # eval_runs.open_key holds these hashes: a change would orphan every open run
    assert run_key_hash(eval_spec()) == (
        "51c6198bf3b6b382e9389a595859eb6d823518b1b28b476b960aabaaa72de2c5"
    )
    assert run_key_hash(eval_spec(weights_hash="w" * 64, shots=3)) == (
        "112af9365c554ebbbf848e8aa0ed888f74a28510f6e776970b877e04f9089a2e"
    )  # keys without a settings hash (stored before migration 0005) hash as they did
    assert run_key_hash(eval_spec(settings_hash="s" * 64)) == (
        "b3be50e18ec675cee5cd80c9a9a650fa528f34c8d9b0e0f2b5745752e25850d8"
    )


def test_run_key_ignores_what_does_not_change_the_numbers():
    same = eval_spec(engine_version="transformers 9", code_version="other", config={"x": 1})
    assert run_key_hash(same) == run_key_hash(eval_spec())
    assert run_key_hash(eval_spec(seed=7)) != run_key_hash(eval_spec())


def _prediction(item_id, correct=None, details=None):
    return Prediction(item_id, "h", "A", correct=correct, details=details)


def test_paired_metrics_accuracy_for_right_or_wrong_items():
    assert paired_metrics([_prediction("a", True), _prediction("b", False)]) == [ACCURACY]
    assert default_paired_metric([_prediction("a", True)]) == ACCURACY


def test_paired_metrics_per_item_scores_rouge_l_first():
    scored = _prediction("a", details={"bertscore_f1": 0.8, "rouge_l": 0.1, "rouge1": 0.2})
    assert paired_metrics([scored]) == ["rouge_l", "bertscore_f1", "rouge1"]
    assert default_paired_metric([scored]) == "rouge_l"
    unscored = _prediction("a", details={"subject": "anatomy"})
    assert paired_metrics([unscored]) == []
    assert default_paired_metric([unscored]) == "rouge_l"


def test_format_ci():
    assert format_ci(MetricValue("acc", 0.41234, 10, 0.3, 0.52)) == "0.412 [0.300, 0.520]"
    assert format_ci(MetricValue("acc", 0.5, 1)) == "0.500"
    assert format_ci(MetricValue("acc", 0.5, 1, math.nan, math.nan)) == "0.500"
    row = LeaderboardRow("v", "f", "t", "acc", 0.25, 0.2, 0.3, 4, "loglik", 0, "measured")
    assert format_ci(row) == "0.250 [0.200, 0.300]"
