"""A paired comparison split by contamination: accuracy on the clean and on the contaminated
items separately, each with its bootstrap CI, and the paired test on the clean items alone.

An item is contaminated when the latest contamination check of either variant on the task
flagged it (`medarena contamination`): a difference measured on items one of the two saw in
training says less about either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medarena.compare.bootstrap import bootstrap_ci
from medarena.compare.paired import PairedStats, item_values, paired_stats
from medarena.compare.runs import Comparison
from medarena.errors import Refused
from medarena.store.reads import StoreReader


@dataclass(frozen=True)
class Subset:
    """One side of the split: both variants' mean on its items, with 95% bootstrap CIs."""

    name: str  # clean | contaminated
    n: int
    mean_a: float
    ci_a: tuple[float, float]
    mean_b: float
    ci_b: tuple[float, float]


@dataclass(frozen=True)
class ContaminationSplit:
    checks: dict[str, int | None]  # variant -> the check used (None: never checked)
    subsets: list[Subset]
    clean: PairedStats | None  # the paired test on the clean items (None: no clean item)


def split_by_contamination(
    store: StoreReader, comparison: Comparison, metric: str
) -> ContaminationSplit | None:
    """The comparison split by the variants' latest checks on its task; None when neither
    variant was checked."""
    run_a, run_b = comparison.run_a, comparison.run_b
    checks = {
        variant: store.latest_contamination(variant, run_a.task)
        for variant in (run_a.variant, run_b.variant)
    }
    if all(check is None for check in checks.values()):
        return None
    flagged = set().union(
        *(store.contaminated_item_ids(check.id) for check in checks.values() if check and check.id)
    )
    values_a = item_values([a for a, _ in comparison.pairs], metric)
    values_b = item_values([b for _, b in comparison.pairs], metric)
    subsets, clean_stats = [], None
    for name, items in (
        ("clean", [item for item in values_a if item not in flagged]),
        ("contaminated", [item for item in values_a if item in flagged]),
    ):
        if not items:
            continue
        first = np.array([values_a[item] for item in items])
        second = np.array([values_b[item] for item in items])
        subsets.append(
            Subset(
                name,
                len(items),
                float(first.mean()),
                bootstrap_ci(first),
                float(second.mean()),
                bootstrap_ci(second),
            )
        )
        if name == "clean":
            try:
                clean_stats = paired_stats(
                    {i: values_a[i] for i in items}, {i: values_b[i] for i in items}, metric
                )
            except Refused:
                clean_stats = None
    used = {variant: check.id if check else None for variant, check in checks.items()}
    return ContaminationSplit(used, subsets, clean_stats)
