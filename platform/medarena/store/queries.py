"""What results mean, defined once: the run key, the latest completed run, the default paired
metric and how a value with its CI is printed. The Store, compare, the dashboard and the CLI all
use these; none of them restates one."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, Subquery, func, select

from medarena.results import F1_METRICS, EvalRunSpec, Prediction
from medarena.store.models import EvalRunRow, MetricRow, ModelVariantRow, TaskRow

COMPLETED = "completed"

# ------------------------------------------------------------------------------ the run key

# What identifies an evaluation: a run with the same key is resumed instead of started again,
# and at most one unfinished run per key exists (eval_runs.open_key holds run_key_hash). The
# order is part of the stored hash: never reorder.
RUN_KEY = (
    "variant",
    "task",
    "dataset_hash",
    "prompt_template_hash",
    "scoring_mode",
    "shots",
    "seed",
    "engine",
    "weights_hash",
    # added by migration 0005 (2026-11-30): runs stored before it have NULL, which no new
    # run's key matches, so they stay readable but are never reused for a new evaluation
    "settings_hash",
)


def run_key_hash(spec: EvalRunSpec) -> str:
    """The sha256 of `spec`'s run key (what eval_runs.open_key holds while a run is open)."""
    key = [getattr(spec, name) for name in RUN_KEY]
    if spec.settings_hash is None:  # a key from before 0005 hashes as it did then
        key = key[:-1]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def same_run_key(spec: EvalRunSpec) -> list[ColumnElement[bool]]:
    """WHERE conditions matching the runs with `spec`'s key, on eval_runs joined with
    model_variants and tasks (a NULL weights hash matches NULL)."""
    named = {"variant": ModelVariantRow.name, "task": TaskRow.name}
    return [
        (named[name] if name in named else getattr(EvalRunRow, name)) == getattr(spec, name)
        for name in RUN_KEY
    ]


# ---------------------------------------------------------------------- latest completed run

# a result is reported per variant x task x setting: the latest run of each stands for it
LATEST_PER = (EvalRunRow.variant_id, EvalRunRow.task_id, EvalRunRow.scoring_mode, EvalRunRow.shots)


def latest_completed_runs(*where: ColumnElement[bool]) -> Subquery:
    """The latest completed run per variant x task x scoring mode x shots: the completed run
    with the highest id (ids grow in creation order). `where` narrows the runs considered (on
    eval_runs' own columns). One column: `run_id`."""
    return (
        select(func.max(EvalRunRow.id).label("run_id"))
        .where(EvalRunRow.status == COMPLETED, *where)
        .group_by(*LATEST_PER)
        .subquery()
    )


def latest_metrics_query(*columns: Any, where: Sequence[ColumnElement[bool]] = ()) -> Select:
    """SELECT `columns` from the metrics of the latest completed runs (`where`: on eval_runs'
    own columns), joined with their run, variant and task."""
    latest = latest_completed_runs(*where)
    return (
        select(*columns)
        .select_from(MetricRow)
        .join(latest, latest.c.run_id == MetricRow.eval_run_id)
        .join(EvalRunRow, EvalRunRow.id == MetricRow.eval_run_id)
        .join(ModelVariantRow, ModelVariantRow.id == EvalRunRow.variant_id)
        .join(TaskRow, TaskRow.id == EvalRunRow.task_id)
    )


def variant_is(name: str) -> ColumnElement[bool]:
    """eval_runs of the variant called `name` (a condition on eval_runs' own columns)."""
    return EvalRunRow.variant_id.in_(select(ModelVariantRow.id).where(ModelVariantRow.name == name))


def task_is(name: str) -> ColumnElement[bool]:
    """eval_runs of the task called `name` (a condition on eval_runs' own columns)."""
    return EvalRunRow.task_id.in_(select(TaskRow.id).where(TaskRow.name == name))


# ------------------------------------------------------------------- the paired metric

ACCURACY = "acc"
ROUGE_L = "rouge_l"


def paired_metrics(predictions: Sequence[Prediction]) -> list[str]:
    """What two runs like this one can be compared on item by item: `acc` when the items are
    scored right or wrong, else the per-item scores stored in the details (ROUGE-L first); then
    the corpus F1 metrics whose per-item counts are stored (or, for `macro_f1`, derivable from
    one answer of a closed set)."""
    details = (predictions[0].details or {}) if predictions else {}
    counted = set(details.get("f1_counts", {})) | ({"labels"} if "choices" in details else set())
    f1 = [name for name, (key, _) in F1_METRICS.items() if key in counted]
    if "f1_counts" not in details:  # one answer from a closed set: macro F1 is the reported one
        f1 = [name for name in f1 if name == "macro_f1"]
    if not predictions or all(p.correct is not None for p in predictions):
        return [ACCURACY, *f1]
    scores = [name for name, value in details.items() if isinstance(value, int | float)]
    scores = sorted(scores, key=lambda name: (name != ROUGE_L, name))
    # a kind that counts what it finds (entities): its corpus F1 leads, the tallies follow
    return [*f1, *scores] if "f1_counts" in details else scores + f1


def default_paired_metric(predictions: Sequence[Prediction]) -> str:
    """`acc` for items scored right or wrong, else ROUGE-L (summarization) or the first per-item
    score there is."""
    return next(iter(paired_metrics(predictions)), ROUGE_L)


# ------------------------------------------------------------------------------ formatting


class WithCI(Protocol):
    """A metric value with its confidence interval (MetricValue, LeaderboardRow, RunMetric)."""

    value: float
    ci_low: float | None
    ci_high: float | None


def format_ci(metric: WithCI) -> str:
    """`0.412 [0.301, 0.520]`, or the value alone when there is no CI (None or NaN)."""
    low, high = metric.ci_low, metric.ci_high
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{metric.value:.3f}"
    return f"{metric.value:.3f} [{low:.3f}, {high:.3f}]"
