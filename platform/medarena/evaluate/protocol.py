"""Evaluation protocols as data: how a paper or a leaderboard evaluated each task (scoring, shots,
seeds, chain of thought, self-consistency, prompt overrides, metric settings, split and item
count), so a published number can be compared with a measured one obtained the same way.

A protocol is a YAML file under `benchmarks/protocols/` (`medarena protocols ls | show`), validated
like every spec; `plan_protocol` turns it into the (task, options) plans that `medarena eval
--protocol` and `medarena reproduce` run. Everything a protocol sets lands in the run key through
the options and the task fields it overrides (evaluate/identity.py), never through its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from medarena.errors import Problem, ProblemsError, Refused, UnknownName
from medarena.evaluate.bartscore import DEFAULT_MODEL as BARTSCORE_DEFAULT
from medarena.evaluate.extractors import EXTRACTORS
from medarena.evaluate.kinds import TASK_KINDS
from medarena.evaluate.runner import EvalOptions
from medarena.evaluate.spec import BenchmarkTask, Generation
from medarena.registry import Registry, VariantEntry, find_workspace
from medarena.results import Expectations
from medarena.schemas import Name, Spec
from medarena.value_provenance import Gap, Provenance, provenance_gaps, provenance_problems
from medarena.yaml_source import load_spec_folder

PROTOCOLS_DIR = Path("benchmarks") / "protocols"
# a protocol's fields that only document it (no value to source)
DOCUMENTATION = frozenset({"source", "url", "differences"})


class TaskProtocol(Spec):
    """How one task is evaluated under the protocol."""

    task: Name = Field(description="a benchmark spec under benchmarks/")
    mode: str = Field(description="scoring mode: loglik (labels), cloze (option text), generate")
    shots: int = Field(0, ge=0)
    seeds: list[int] = Field([0], min_length=1, description="few-shot draws / sampling seeds")
    cot: bool = False
    samples: int = Field(1, ge=1, description="self-consistency: samples per item, majority vote")
    temperature: float = Field(0.0, ge=0.0)
    extraction: str = Field(
        "medarena", description="answer extraction rule of generate runs (evaluate/extractors.py)"
    )
    bertscore_model: str = Field("minilm", description="BERTScore encoder (summarization)")
    bartscore_model: str = Field(
        BARTSCORE_DEFAULT, description="BARTScore's BART, a hub id or directory (summarization)"
    )
    use_chat_template: bool = True
    # overrides of the benchmark spec's own fields (they enter the run key as task fields)
    instruction: str | None = Field(None, description="replaces the spec's instruction")
    max_new_tokens: int | None = Field(None, gt=0, description="replaces generation length")
    stop: list[str] | None = Field(None, description="replaces the generation stop strings")
    metrics: list[str] | None = Field(
        None, min_length=1, description="replaces the spec's metrics (ones its kind allows)"
    )
    # what the published numbers were computed on, compared by `medarena reproduce`
    split: str = Field("test", description="the split the source reports on")
    expected_items: int | None = Field(None, gt=0, description="items of that split")
    notes: str | None = None

    @field_validator("extraction")
    @classmethod
    def _known_rule(cls, name: str) -> str:
        if name not in EXTRACTORS:
            raise ValueError(f"unknown extraction rule {name!r}; known: {list(EXTRACTORS)}")
        return name


class SizeOverride(Spec):
    """Settings that change with model size (Meditron: 3-shot for 7B, 5-shot for 70B)."""

    min_params_b: float = Field(gt=0, description="applies to variants at least this large")
    shots: int = Field(ge=0)


class Protocol(Spec):
    """A named evaluation protocol, with the source that defines it."""

    name: Name
    description: str
    source: str = Field(description="paper and table, leaderboard or code that defines it")
    url: str | None = None
    aggregate: Literal["single", "mean_sd"] = Field(
        "single", description="mean_sd: mean and standard deviation over the seeds"
    )
    tasks: list[TaskProtocol] = Field(min_length=1)
    size_overrides: list[SizeOverride] = Field(default_factory=list)
    differences: list[str] = Field(
        default_factory=list,
        description="known ways medarena's run differs from the source's (stated, not hidden)",
    )
    provenance: Provenance = Field(
        default_factory=dict,
        description="where each value comes from: field path -> {source: ...} or "
        "{medarena: reason}; when given, every value must be marked",
    )

    def provenance_gaps(self) -> list[Gap]:
        return provenance_gaps(self, self.provenance, DOCUMENTATION)

    @model_validator(mode="after")
    def _one_entry_per_task(self) -> Protocol:
        names = [entry.task for entry in self.tasks]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"tasks listed twice: {duplicated}")
        return self

    def entry(self, task: str) -> TaskProtocol | None:
        return next((entry for entry in self.tasks if entry.task == task), None)


def load_protocols(workspace: str | Path | None = None) -> dict[str, Protocol]:
    """Every protocol under benchmarks/protocols/; ProblemsError lists ALL problems."""
    root = find_workspace(workspace)
    headline = f"protocols in {root / PROTOCOLS_DIR} are invalid"
    return load_spec_folder(root, PROTOCOLS_DIR, Protocol, headline, check=provenance_problems)


def get_protocol(protocols: dict[str, Protocol], name: str) -> Protocol:
    if name not in protocols:
        raise UnknownName("protocol", name, list(protocols))
    return protocols[name]


def check_tasks(protocol: Protocol, benchmarks: dict[str, BenchmarkTask]) -> None:
    """Every task a protocol names exists and allows the protocol's mode and metrics (file and
    field named)."""
    shown = str(PROTOCOLS_DIR / f"{protocol.name}.yaml")
    problems = []
    for index, entry in enumerate(protocol.tasks):
        where = f"tasks[{index}]"
        if entry.task not in benchmarks:
            known = ", ".join(sorted(benchmarks))
            problems.append(
                Problem(
                    shown, None, f"{where}.task", f"no benchmark {entry.task!r}; known: {known}"
                )
            )
            continue
        task = benchmarks[entry.task]
        if entry.mode not in task.scoring_modes:
            allowed = task.scoring_modes
            problems.append(Problem(shown, None, f"{where}.mode", f"{entry.task} allows {allowed}"))
        allowed_metrics = TASK_KINDS.get(task.kind).metrics
        for metric in entry.metrics or ():
            if metric not in allowed_metrics:
                message = f"{metric!r} is no {task.kind} metric; allowed: {list(allowed_metrics)}"
                problems.append(Problem(shown, None, f"{where}.metrics", message))
    if problems:
        raise ProblemsError(
            problems, headline=f"protocol {protocol.name!r} does not fit the benchmarks"
        )


@dataclass(frozen=True)
class ProtocolRun:
    """One (task, options) of a protocol for one variant."""

    entry: TaskProtocol
    task: BenchmarkTask  # with the protocol's overrides applied
    options: EvalOptions


def shots_for(protocol: Protocol, entry: TaskProtocol, variant: VariantEntry) -> int:
    """The entry's shots, or the largest size override the variant reaches; a size its provider
    never published (an API model) reaches none: the source states shots per size only for
    models of known size."""
    shots, params_b = entry.shots, variant.variant.params_b
    for override in sorted(protocol.size_overrides, key=lambda o: o.min_params_b):
        if entry.shots and params_b is not None and params_b >= override.min_params_b:
            shots = override.shots
    return shots


def plan_protocol(
    protocol: Protocol,
    benchmarks: dict[str, BenchmarkTask],
    variant: VariantEntry,
    base: EvalOptions,
    *,
    tasks: list[str] | None = None,
) -> list[ProtocolRun]:
    """The runs the protocol makes for `variant`: one per task and seed. `base` carries what the
    protocol does not set (engine, data, limit, chunk size); `tasks` narrows the tasks."""
    from dataclasses import replace

    if tasks:
        unknown = sorted(set(tasks) - {entry.task for entry in protocol.tasks})
        if unknown:
            raise Refused(f"protocol {protocol.name!r} has no task {unknown}")
    runs = []
    for entry in protocol.tasks:
        if tasks and entry.task not in tasks:
            continue
        if entry.task not in benchmarks:
            raise UnknownName("benchmark task", entry.task, list(benchmarks))
        task = _with_overrides(benchmarks[entry.task], entry)
        for seed in entry.seeds:
            options = replace(
                base,
                mode=entry.mode,
                shots=shots_for(protocol, entry, variant),
                seed=seed,
                cot=entry.cot,
                samples=entry.samples,
                temperature=entry.temperature,
                bertscore_encoder=entry.bertscore_model,
                bartscore_model=entry.bartscore_model,
                use_chat_template=entry.use_chat_template,
                extraction=entry.extraction,
            )
            runs.append(ProtocolRun(entry, task, options))
    return runs


def _with_overrides(task: BenchmarkTask, entry: TaskProtocol) -> BenchmarkTask:
    update: dict[str, object] = {}
    if entry.instruction is not None:
        update["instruction"] = entry.instruction
    if entry.metrics is not None:
        update["metrics"] = list(entry.metrics)
    if entry.max_new_tokens is not None or entry.stop is not None:
        update["generation"] = Generation(
            max_new_tokens=entry.max_new_tokens or task.generation.max_new_tokens,
            cot_max_new_tokens=task.generation.cot_max_new_tokens,
            stop=entry.stop if entry.stop is not None else task.generation.stop,
        )
    return task.model_copy(update=update) if update else task


def check_references(
    registry: Registry, protocols: dict[str, Protocol], benchmarks: dict[str, BenchmarkTask]
) -> None:
    """Every published result names a known protocol preset (or its own in words) and a task
    that is a benchmark spec, unless it says why not (`unmapped`)."""
    problems = []
    for key, reference in registry.references.items():
        shown = registry.files.get(f"references:{key}", key)
        for index, result in enumerate(reference.results):
            where = f"results[{index}]"
            if result.protocol is not None and result.protocol not in protocols:
                known = ", ".join(sorted(protocols))
                message = f"unknown protocol {result.protocol!r}; known: {known}"
                problems.append(Problem(shown, None, f"{where}.protocol", message))
            if result.unmapped is None and result.task not in benchmarks:
                message = (
                    f"task {result.task!r} is no benchmark spec: name one, or say why in `unmapped`"
                )
                problems.append(Problem(shown, None, f"{where}.task", message))
    if problems:
        raise ProblemsError(problems, headline="published results do not fit the benchmarks")


def expected_setting(
    protocol: Protocol, entry: TaskProtocol, variant: VariantEntry
) -> tuple[str, int]:
    """The (scoring-mode key, shots) a measured run has when it follows `entry`."""
    from medarena.evaluate.modes import SCORING_MODES
    from medarena.evaluate.modes.base import ScoringOptions

    options = ScoringOptions(
        cot=entry.cot,
        samples=entry.samples,
        temperature=entry.temperature,
        extraction=entry.extraction,
    )
    return SCORING_MODES.get(entry.mode).key(options), shots_for(protocol, entry, variant)


def expectations(registry: Registry, protocols: dict[str, Protocol]) -> Expectations:
    """For every published result under a preset protocol that has its task: the setting a
    measured run of that variant needs to stand beside it."""
    found: dict[tuple[str, str, str | None], tuple[str, int]] = {}
    for reference in registry.references.values():
        for result in reference.results:
            protocol = protocols.get(result.protocol or "")
            entry = protocol.entry(result.task) if protocol else None
            variant = registry.variants.get(result.variant)
            if protocol is not None and entry is not None and variant is not None:
                key = (result.variant, result.task, result.protocol)
                found[key] = expected_setting(protocol, entry, variant)
    return found


def sync_registry(store: Any, registry: Registry) -> Any:
    """Mirror the registry into the store with each published result's expected setting (from
    the workspace's protocols, if it has any). Returns the store's SyncReport."""
    return store.sync_registry(registry, expectations(registry, load_protocols(registry.root)))
