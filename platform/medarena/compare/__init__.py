"""Paired statistics between evaluation runs: bootstrap CIs, exact McNemar / sign tests,
per-item wins and losses. Pure Python + numpy: the dashboard imports it without torch."""

from medarena.compare.bootstrap import bootstrap_ci
from medarena.compare.contamination import ContaminationSplit, split_by_contamination
from medarena.compare.paired import PairedStats, exact_binomial_p, item_values, paired_stats
from medarena.compare.published import beside_measured
from medarena.compare.runs import Comparison, compare_variants

__all__ = [
    "Comparison",
    "ContaminationSplit",
    "PairedStats",
    "beside_measured",
    "bootstrap_ci",
    "compare_variants",
    "exact_binomial_p",
    "item_values",
    "paired_stats",
    "split_by_contamination",
]
