"""`medarena rescore`: parse a stored generate run's raw outputs again with another registered
extraction rule (medarena.evaluate.extractors), without calling a model.

The result is a new completed run with its own predictions, metrics and CIs, linked to its
source (`rescored_runs`). Its run key is the one a fresh evaluation with that rule would have
(scoring mode `generate+x=<rule>`, the rule's version in the settings hash), so it stands in its
own cell of `results` and is compared like any run; rescoring again with the same rule reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from medarena.errors import Refused
from medarena.evaluate.extractors import EXTRACTORS
from medarena.evaluate.formats import Item
from medarena.evaluate.identity import settings_hash
from medarena.evaluate.kinds import TASK_KINDS
from medarena.evaluate.modes.generate import GENERATE, parsed_fields
from medarena.evaluate.runner import EvalOptions, load_task_data
from medarena.evaluate.spec import BenchmarkTask
from medarena.provenance import code_version
from medarena.results import EvalRun, EvalRunSpec, MetricValue, Prediction
from medarena.store import Store


@dataclass(frozen=True)
class Rescored:
    run: EvalRun
    source: EvalRun
    metrics: list[MetricValue]
    changed: int  # items whose parsed answer differs from the source run's
    reused: bool  # a run with this key was stored already


def rescore(store: Store, root: Path, run_id: int, extraction: str) -> Rescored:
    """Parse run `run_id`'s stored outputs with `extraction`; Refused (nothing written) when
    the run is unknown, unfinished, has no generated text, or its items changed since."""
    rule = EXTRACTORS.get(extraction)
    source = store.eval_run(run_id)
    spec = store.eval_run_spec(run_id)
    if source is None or spec is None:
        raise Refused(f"no evaluation run {run_id} in the store (see `medarena results`)")
    if source.status != "completed":
        raise Refused(f"run {run_id} is {source.status}: finish it before rescoring")
    if spec.scoring_mode.split("+")[0] != GENERATE.name:
        raise Refused(
            f"run {run_id} was scored by {spec.scoring_mode} (log-likelihood): it stores no "
            "generated text to parse again"
        )
    if TASK_KINDS.get(spec.task_kind).rule is not None:
        raise Refused(
            f"run {run_id} ({spec.task}, {spec.task_kind}) is parsed by its kind's own rule: "
            "the extraction rules apply to answers picked from choices"
        )
    if not TASK_KINDS.get(spec.task_kind).choices:
        raise Refused(
            f"run {run_id} ({spec.task}) is scored against reference texts: there is no answer "
            "to extract"
        )
    task = BenchmarkTask.model_validate(spec.task_spec)
    options = replace(_options(spec.config), extraction=extraction)
    new_spec = replace(
        spec,
        scoring_mode=GENERATE.key(options.scoring()),
        settings_hash=settings_hash(task, options),
        code_version=code_version(),
        config={**spec.config, "extraction": extraction, "rescored_from": run_id},
    )
    stored = store.find_eval_run(new_spec)
    if stored is not None and stored.status == "completed":
        return Rescored(stored, source, store.metrics(stored.id), 0, True)
    items = _items(task, root, options, spec, run_id)
    old = store.predictions(run_id)
    new = [_reparsed(prediction, items, options, run_id) for prediction in old]
    metrics = GENERATE.metrics(task, new)
    run = store.add_rescored_run(new_spec, run_id, (rule.name, rule.version), new, metrics)
    changed = sum(a.parsed_answer != b.parsed_answer for a, b in zip(old, new, strict=True))
    return Rescored(run, source, metrics, changed, False)


def _options(config: dict[str, Any]) -> EvalOptions:
    known = {field.name for field in fields(EvalOptions)}
    return EvalOptions(**{name: value for name, value in config.items() if name in known})


def _items(
    task: BenchmarkTask, root: Path, options: EvalOptions, spec: EvalRunSpec, run_id: int
) -> dict[str, Item]:
    """The run's items as they were scored (the dataset hash must match: the option texts
    some rules read come from them)."""
    data = load_task_data(
        task, root, data=options.data, limit=options.limit, need_pool=options.shots > 0
    )
    if data.hash != spec.dataset_hash:
        raise Refused(
            f"the items of task {task.name} changed since run {run_id} was stored (dataset hash "
            f"{data.hash[:12]} now, {spec.dataset_hash[:12]} then): its outputs cannot be "
            "matched to their items"
        )
    return {item.id: item for item in data.items}


def _reparsed(
    prediction: Prediction, items: dict[str, Item], options: EvalOptions, run_id: int
) -> Prediction:
    if prediction.item_id not in items or prediction.raw_output is None:
        raise Refused(f"run {run_id}: item {prediction.item_id!r} has no stored output to parse")
    details = dict(prediction.details or {})
    texts = details.get("samples") or [prediction.raw_output]
    fields_ = parsed_fields(items[prediction.item_id], texts, options.scoring())
    return replace(prediction, **{**fields_, "details": {**details, **fields_["details"]}})
