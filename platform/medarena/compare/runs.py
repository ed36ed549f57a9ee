"""Find the two runs to compare in the store and compare them item by item."""

from __future__ import annotations

from dataclasses import dataclass

from medarena.compare.paired import PairedStats, item_values, paired_f1_stats, paired_stats
from medarena.errors import Refused
from medarena.results import F1_METRICS, EvalRun, Prediction
from medarena.store import Store
from medarena.store.queries import default_paired_metric


@dataclass(frozen=True)
class Comparison:
    run_a: EvalRun
    run_b: EvalRun
    stats: PairedStats
    # items in both runs, in item-id order: (A's prediction, B's prediction)
    pairs: list[tuple[Prediction, Prediction]]


def _latest_by_setting(store: Store, variant: str, task: str) -> dict[tuple[str, int], EvalRun]:
    """The latest completed run of `variant` on `task` per (scoring mode, shots)."""
    return {
        (run.scoring_mode, run.shots): run for run in store.latest_runs(variant=variant, task=task)
    }


def pick_setting(
    a: dict[tuple[str, int], EvalRun],
    b: dict[tuple[str, int], EvalRun],
    names: tuple[str, str],
    task: str,
    scoring_mode: str | None,
    shots: int | None,
) -> tuple[str, int]:
    """The one (scoring mode, shots) both variants have runs for, narrowed by the options."""
    common = sorted(
        key
        for key in a.keys() & b.keys()
        if (scoring_mode is None or key[0] == scoring_mode) and (shots is None or key[1] == shots)
    )
    if len(common) == 1:
        return common[0]

    def listed(runs: dict[tuple[str, int], EvalRun]) -> str:
        return ", ".join(f"{mode} {k}-shot" for mode, k in sorted(runs)) or "none"

    if not common:
        raise Refused(
            f"no completed runs of both variants on {task!r} in the same setting"
            f"{_wanted(scoring_mode, shots)}: {names[0]} has {listed(a)}; "
            f"{names[1]} has {listed(b)}"
        )
    choices = ", ".join(f"{mode} {k}-shot" for mode, k in common)
    raise Refused(
        f"both variants have several settings on {task!r} ({choices}): pick one "
        "with --mode and --shots"
    )


def _wanted(scoring_mode: str | None, shots: int | None) -> str:
    parts = [f"mode {scoring_mode}"] if scoring_mode else []
    parts += [] if shots is None else [f"{shots}-shot"]
    return f" ({', '.join(parts)})" if parts else ""


def compare_variants(
    store: Store,
    variant_a: str,
    variant_b: str,
    task: str,
    *,
    scoring_mode: str | None = None,
    shots: int | None = None,
    metric: str | None = None,
) -> Comparison:
    """Latest completed run of each variant on `task` in a common setting, compared per item."""
    known = set(store.variant_names())
    for name in (variant_a, variant_b):
        if name not in known:
            raise Refused(f"variant {name!r} is not in the store (run `medarena models sync`)")
    runs_a = _latest_by_setting(store, variant_a, task)
    runs_b = _latest_by_setting(store, variant_b, task)
    setting = pick_setting(runs_a, runs_b, (variant_a, variant_b), task, scoring_mode, shots)
    run_a, run_b = runs_a[setting], runs_b[setting]
    predictions_a, predictions_b = store.predictions(run_a.id), store.predictions(run_b.id)
    metric = metric or default_paired_metric(predictions_a)
    if metric in F1_METRICS:  # corpus-level: resample items, recompute both F1s
        stats = paired_f1_stats(predictions_a, predictions_b, metric)
    else:
        stats = paired_stats(
            item_values(predictions_a, metric), item_values(predictions_b, metric), metric
        )
    by_id = {p.item_id: p for p in predictions_b}
    pairs = [(p, by_id[p.item_id]) for p in predictions_a if p.item_id in by_id]
    return Comparison(run_a, run_b, stats, pairs)
