"""Percentile bootstrap confidence intervals (pure numpy: the dashboard imports it without torch).

Shared by evaluation (a metric's CI over items) and paired comparisons (the CI of a mean
per-item difference: resampling the differences resamples the items of both runs jointly).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20231127


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[np.ndarray], float] = np.mean,
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap 95% CI of `statistic` over items (resampled with replacement)."""
    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return (float("nan"), float("nan")) if len(data) == 0 else (data[0], data[0])
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, len(data), size=(resamples, len(data)))
    stats = np.array([statistic(data[row]) for row in indices])
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(low), float(high)
