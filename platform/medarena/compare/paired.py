"""Paired statistics of two evaluation runs on the same items.

Both runs are aligned by item id. Each item gets one number per run (1/0 for correctness, or a
per-item score such as ROUGE-L); the item is a win for A when A's number is higher. Significance:
the exact two-sided binomial test on the discordant items (McNemar's exact test for correctness,
the sign test for scores; the same arithmetic), and a paired bootstrap CI of the mean difference.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medarena.compare.bootstrap import bootstrap_ci
from medarena.compare.corpus import f1_score, paired_f1, prediction_counts, task_classes
from medarena.errors import Refused
from medarena.results import F1_METRICS, Prediction
from medarena.store.queries import ACCURACY


@dataclass(frozen=True)
class PairedStats:
    """A against B on the items both runs scored; `difference` = mean_a - mean_b."""

    metric: str
    n: int
    wins: int
    losses: int
    ties: int
    mean_a: float
    mean_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str
    only_in_a: int
    only_in_b: int


def exact_binomial_p(wins: int, losses: int) -> float:
    """Two-sided exact binomial test of wins vs losses at p = 0.5 (McNemar exact / sign test):
    min(1, 2 * P(X <= min(wins, losses))) with X ~ Binomial(wins + losses, 0.5); 1.0 if no
    discordant pair."""
    if wins < 0 or losses < 0:
        raise ValueError("wins and losses must be counts (>= 0)")
    total = wins + losses
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, i) for i in range(min(wins, losses) + 1))
    # exact integer arithmetic until the one division, so large counts do not lose precision
    return min(1.0, 2 * tail / 2**total)


def item_values(predictions: Sequence[Prediction], metric: str) -> dict[str, float]:
    """One number per item: correctness (an unparsed or unscored answer counts as wrong, as in
    the `acc` metric), the per-item score stored in the prediction's details, or for a corpus
    F1 metric the micro F1 of the item's own counts (1.0 for an item with nothing to find and
    nothing found)."""
    values: dict[str, float] = {}
    for prediction in predictions:
        if metric in F1_METRICS:
            counts = prediction_counts(prediction, F1_METRICS[metric][0])
            values[prediction.item_id] = f1_score([counts], "micro") if counts else 1.0
            continue
        if metric == ACCURACY:
            values[prediction.item_id] = 1.0 if prediction.correct else 0.0
            continue
        value = (prediction.details or {}).get(metric)
        if not isinstance(value, int | float) or math.isnan(value):
            raise Refused(
                f"item {prediction.item_id!r} has no per-item {metric!r} score "
                f"(stored details: {sorted(prediction.details or {})})"
            )
        values[prediction.item_id] = float(value)
    return values


def _shared_items(a: Collection[str], b: Collection[str]) -> list[str]:
    common = sorted(set(a) & set(b))
    if not common:
        raise Refused(
            f"the two runs share no item (A has {len(a)} items, B has {len(b)}): "
            "they were not run on the same data"
        )
    return common


def _paired(
    metric: str,
    per_a: Mapping[str, float],
    per_b: Mapping[str, float],
    common: list[str],
    estimate: tuple[float, float, float, float, float],
    p_value: float | None,
    test: str,
    ids: tuple[Collection[str], Collection[str]],
) -> PairedStats:
    """Wins, losses and ties from the items' own values; `estimate`: (A, B, difference, CI
    low, CI high) of the metric; `p_value` None: the exact binomial test on wins and losses;
    `ids`: every item of A and of B, shared or not."""
    wins = sum(per_a[item] > per_b[item] for item in common)
    losses = sum(per_a[item] < per_b[item] for item in common)
    if p_value is None:
        p_value = exact_binomial_p(wins, losses)
    mean_a, mean_b, difference, low, high = estimate
    return PairedStats(
        metric=metric,
        n=len(common),
        wins=wins,
        losses=losses,
        ties=len(common) - wins - losses,
        mean_a=mean_a,
        mean_b=mean_b,
        difference=difference,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        test=test,
        only_in_a=len(set(ids[0]) - set(ids[1])),
        only_in_b=len(set(ids[1]) - set(ids[0])),
    )


def paired_f1_stats(a: Sequence[Prediction], b: Sequence[Prediction], metric: str) -> PairedStats:
    """A corpus F1 metric on the items of both runs: the difference of the two F1s with a paired
    bootstrap CI and p-value (the same resampled items for both runs); wins and losses are the
    items whose own F1 (`item_values`) is higher in A or in B."""
    key, average = F1_METRICS[metric]
    by_id_a, by_id_b = {p.item_id: p for p in a}, {p.item_id: p for p in b}
    common = _shared_items(by_id_a, by_id_b)
    first = [by_id_a[item] for item in common]
    second = [by_id_b[item] for item in common]
    classes = task_classes([*first, *second])
    paired = paired_f1(
        [prediction_counts(p, key) for p in first],
        [prediction_counts(p, key) for p in second],
        average,
        classes,
    )
    estimate = (paired.f1_a, paired.f1_b, paired.difference, paired.ci_low, paired.ci_high)
    return _paired(
        metric,
        item_values(first, metric),
        item_values(second, metric),
        common,
        estimate,
        paired.p_value,
        "paired bootstrap",
        (by_id_a, by_id_b),
    )


def paired_stats(a: Mapping[str, float], b: Mapping[str, float], metric: str) -> PairedStats:
    """Compare on the items present in both runs; the counts of the others are reported."""
    common = _shared_items(a, b)
    first = np.array([a[item] for item in common])
    second = np.array([b[item] for item in common])
    differences = first - second
    low, high = bootstrap_ci(differences)
    estimate = (float(first.mean()), float(second.mean()), float(differences.mean()), low, high)
    test = "exact McNemar" if metric == ACCURACY else "exact sign test"
    return _paired(metric, a, b, common, estimate, None, test, (a, b))
