import math
from functools import cache

import numpy as np
import pytest

from medarena.evaluate.metrics import bootstrap_ci, macro_f1, rouge_scores
from medarena.evaluate.modes import SCORING_MODES
from medarena.evaluate.spec import BenchmarkTask, load_benchmarks
from medarena.results import MetricValue, Prediction
from tests.conftest import REPO

LABELS = ["yes", "no", "maybe"]
BINARY = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
SCORES = [0.12, 0.35, 0.2, 0.91, 0.55, 0.47, 0.81, 0.02, 0.66, 0.3]


def by_name(metrics):
    return {metric.name: metric for metric in metrics}


@cache
def pubmedqa() -> BenchmarkTask:
    return load_benchmarks(REPO)["pubmedqa"]


def mode_metrics(mode: str, wanted: list[str], predictions: list[Prediction]) -> list[MetricValue]:
    """What scoring mode `mode` computes for a PubMedQA run that asks for `wanted`."""
    task = pubmedqa().model_copy(update={"metrics": wanted})
    return SCORING_MODES.get(mode).metrics(task, predictions)


def test_bootstrap_ci_is_deterministic():
    assert bootstrap_ci(SCORES) == bootstrap_ci(list(SCORES))


def test_bootstrap_ci_depends_on_the_seed():
    assert bootstrap_ci(SCORES, seed=1) != bootstrap_ci(SCORES, seed=2)


def test_bootstrap_ci_of_another_statistic():
    low, high = bootstrap_ci(SCORES, statistic=np.max)
    assert high == 0.91
    assert low in SCORES and 0.47 <= low < high  # a max is always one of the values


def test_bootstrap_ci_contains_the_mean():
    low, high = bootstrap_ci(BINARY)
    assert low < 0.6 < high
    assert low >= 0.0 and high <= 1.0


def test_bootstrap_ci_of_equal_values_has_zero_width():
    assert bootstrap_ci([0.25] * 12) == (0.25, 0.25)


def test_bootstrap_ci_of_a_single_value():
    assert bootstrap_ci([0.7]) == (0.7, 0.7)


def test_bootstrap_ci_of_no_values_is_nan():
    low, high = bootstrap_ci([])
    assert math.isnan(low) and math.isnan(high)


def test_macro_f1_hand_computed_with_an_unparsed_answer():
    gold = ["yes", "yes", "no", "maybe", "maybe", "no"]
    predicted = ["yes", "no", "no", "maybe", None, "yes"]
    # yes:   tp=1 (#0), fp=1 (#5), fn=1 (#1) -> 2/(2+1+1) = 1/2
    # no:    tp=1 (#2), fp=1 (#1), fn=1 (#5) -> 2/(2+1+1) = 1/2
    # maybe: tp=1 (#3), fp=0,      fn=1 (#4, unparsed) -> 2/(2+0+1) = 2/3
    # macro = (1/2 + 1/2 + 2/3) / 3 = 5/9 (dropping the None instead would give 2/3)
    assert macro_f1(gold, predicted, LABELS) == pytest.approx(5 / 9)


def test_macro_f1_class_never_predicted_scores_zero():
    # maybe: tp=0 -> 0; yes and no perfect -> (1 + 1 + 0) / 3
    gold = ["yes", "no", "maybe"]
    predicted = ["yes", "no", None]
    assert macro_f1(gold, predicted, LABELS) == pytest.approx(2 / 3)


def loglik_prediction(item_id: str, gold: str, loglik: list[float]) -> Prediction:
    best = max(range(len(loglik)), key=loglik.__getitem__)
    return Prediction(
        item_id=item_id,
        prompt_hash="h",
        gold=gold,
        parsed_answer=LABELS[best],
        correct=LABELS[best] == gold,
        logprobs={
            "choices": LABELS,
            "loglik": loglik,
            "is_greedy": [False, False, False],
            "char_len": [len(label) for label in LABELS],  # 3, 2, 5
        },
        details={"choices": LABELS},
    )


LOGLIK_PREDICTIONS = [
    # raw argmax "no" (-2.5) is wrong; per char -1.0, -1.25, -0.8 -> "maybe" right
    loglik_prediction("1", "maybe", [-3.0, -2.5, -4.0]),
    # raw "no" right; per char -0.67, -0.5, -0.6 -> "no" right
    loglik_prediction("2", "no", [-2.0, -1.0, -3.0]),
    # raw "no" (-0.9) wrong; per char -0.33, -0.45, -1.0 -> "yes" right
    loglik_prediction("3", "yes", [-1.0, -0.9, -5.0]),
    # raw "no" (-1.8) right; per char -1.33, -0.9, -0.8 -> "maybe" wrong
    loglik_prediction("4", "no", [-4.0, -1.8, -4.0]),
]


def test_loglik_acc_and_per_character_acc_norm_differ():
    metrics = by_name(mode_metrics("loglik", ["acc", "acc_norm"], LOGLIK_PREDICTIONS))
    assert metrics["acc"].value == pytest.approx(2 / 4)
    assert metrics["acc_norm"].value == pytest.approx(3 / 4)
    assert metrics["acc"].n == 4 and metrics["acc_norm"].n == 4
    assert metrics["acc"].ci_low <= 0.5 <= metrics["acc"].ci_high


def test_loglik_mode_reports_no_parse_failure_rate():
    names = [m.name for m in mode_metrics("loglik", ["acc"], LOGLIK_PREDICTIONS)]
    assert names == ["acc", "truncated_items"]


def test_loglik_macro_f1_uses_the_raw_argmax_answers():
    metrics = by_name(mode_metrics("loglik", ["macro_f1"], LOGLIK_PREDICTIONS))
    # gold  maybe, no, yes, no; parsed no, no, no, no
    # yes: 0; no: tp=2, fp=2, fn=0 -> 4/6; maybe: 0 -> (2/3)/3 = 2/9
    assert metrics["macro_f1"].value == pytest.approx(2 / 9)


def generated(item_id: str, gold: str, parsed: str | None, truncated: int = 0) -> Prediction:
    details = {"choices": LABELS}
    if truncated:
        details["truncated_tokens"] = truncated
    return Prediction(
        item_id=item_id,
        prompt_hash="h",
        gold=gold,
        raw_output=parsed or "hmm",
        parsed_answer=parsed,
        correct=parsed == gold,
        parse_failed=parsed is None,
        details=details,
    )


def test_generate_failures_count_as_wrong_and_in_the_failure_rate():
    predictions = [
        generated("1", "yes", "yes"),
        generated("2", "no", None, truncated=12),
        generated("3", "maybe", "maybe"),
        generated("4", "yes", "no"),
    ]
    metrics = by_name(mode_metrics("generate", ["acc", "acc_norm"], predictions))
    assert set(metrics) == {"acc", "parse_failure_rate", "truncated_items"}  # no acc_norm
    assert metrics["acc"].value == pytest.approx(2 / 4)
    assert metrics["parse_failure_rate"].value == pytest.approx(1 / 4)
    assert metrics["truncated_items"].value == 1.0


def test_rouge_of_identical_texts_is_one():
    text = "The patient was treated with antibiotics. He recovered fully."
    [scores] = rouge_scores([text], [text])
    assert scores == {"rouge_1": 1.0, "rouge_2": 1.0, "rouge_l": 1.0, "rouge_lsum": 1.0}


def test_rouge_of_disjoint_texts_is_zero():
    [scores] = rouge_scores(["alpha beta gamma"], ["delta epsilon zeta"])
    assert scores == {"rouge_1": 0.0, "rouge_2": 0.0, "rouge_l": 0.0, "rouge_lsum": 0.0}


def test_rouge_uses_porter_stemming():
    # "patients" and "patient" share the stem "patient"; "treated" (treat) and
    # "treatment" do not: 1 of 2 unigrams match on each side
    [scores] = rouge_scores(["patients treated"], ["patient treatment"])
    assert scores["rouge_1"] == pytest.approx(0.5)
    assert scores["rouge_2"] == 0.0


def test_rouge_scores_one_entry_per_pair():
    results = rouge_scores(["a b", "c d"], ["a b", "x y"])
    assert [r["rouge_1"] for r in results] == [1.0, 0.0]
