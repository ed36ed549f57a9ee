"""Evaluation plans as plain functions: which (task, options) pairs a request makes, checked and
with their data read before the store is opened, then run for every variant with one engine per
variant. `medarena eval` and the demo call these; nothing here prints (progress goes to a
callback the caller provides)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

from medarena.errors import Refused
from medarena.evaluate.modes import SCORING_MODES
from medarena.evaluate.protocol import Protocol, sync_registry
from medarena.evaluate.runner import EvalOptions, EvalOutcome, TaskData, evaluate, load_task_data
from medarena.evaluate.spec import BenchmarkTask, load_benchmarks, select_tasks
from medarena.registry import Registry, VariantEntry

Plan = tuple[BenchmarkTask, EvalOptions]
Outcome = tuple[BenchmarkTask, EvalOptions, EvalOutcome]
# label -> a context whose value is called with (done, total) as items are scored
Progress = Callable[[str], AbstractContextManager[Callable[[int, int], None]]]
# (task, options) -> a context around that plan's run whose value says whether to run it (a
# sweep worker's claim on the cell; it may also handle the run's failure)
Guard = Callable[[BenchmarkTask, EvalOptions], AbstractContextManager[bool]]


@dataclass(frozen=True)
class PlannedEvaluation:
    """Everything checked before a model loads or the store opens: each variant with its plans
    (a protocol's shots can depend on the variant's size) and the items they read."""

    work: list[tuple[VariantEntry, list[Plan]]]
    task_data: dict[tuple[Any, ...], TaskData]


def plan_evaluation(
    registry: Registry,
    models: list[str],
    task_names: list[str],
    options: EvalOptions,
    *,
    mode: str | None = None,
    seeds: list[int] | None = None,
    device: str | None = None,
) -> PlannedEvaluation:
    """One plan per task and seed (`task_names` ["all"]: every benchmark); `mode` None: each
    task's `default_mode` for the variant. Bad combinations are refused and bad data
    (file:line: field) reported here, before any model loads; `device`: the device kind the
    runs will have (None: this machine's)."""
    _check_options(options)
    entries = [registry.variant(name) for name in models]
    benchmarks = load_benchmarks(registry.root)
    tasks = (
        list(benchmarks.values()) if task_names == ["all"] else select_tasks(benchmarks, task_names)
    )
    work = [
        (
            entry,
            [
                (task, replace(options, mode=mode or default_mode(registry, entry, task), seed=s))
                for task in tasks
                for s in seeds or [options.seed]
            ],
        )
        for entry in entries
    ]
    return _checked(registry, work, device)


def default_mode(registry: Registry, entry: VariantEntry, task: BenchmarkTask) -> str:
    """The task's first scoring mode, or generate for a variant that cannot be scored by
    log-likelihood (an API model without prompt log-probabilities) where the task allows it."""
    first = task.scoring_modes[0]
    variant = entry.variant
    refusal = registry.weights_source(variant).loglik_refusal(variant.source, variant.name)
    if (
        refusal
        and SCORING_MODES.get(first).scores_loglikelihood
        and "generate" in task.scoring_modes
    ):
        return "generate"
    return first


def plan_protocol_evaluation(
    registry: Registry,
    protocol: Protocol,
    models: list[str],
    task_names: list[str],
    options: EvalOptions,
    *,
    device: str | None = None,
) -> PlannedEvaluation:
    """A protocol's runs for every variant (`task_names`: a subset of its tasks); `options`
    carries what the protocol does not set (engine, data, limit, truncation, chunk size);
    `device` as for `plan_evaluation`."""
    from medarena.evaluate.protocol import check_tasks, plan_protocol

    _check_options(options)
    benchmarks = load_benchmarks(registry.root)
    check_tasks(protocol, benchmarks)
    work = []
    for name in models:
        entry = registry.variant(name)
        runs = plan_protocol(protocol, benchmarks, entry, options, tasks=task_names)
        work.append((entry, [(run.task, run.options) for run in runs]))
    return _checked(registry, work, device)


def _check_options(options: EvalOptions) -> None:
    from medarena.evaluate.engines import ENGINES
    from medarena.evaluate.tokens import TRUNCATION_POLICIES

    if options.engine not in ENGINES:
        raise Refused(f"unknown engine {options.engine!r}; known: {', '.join(ENGINES)}")
    if options.truncation not in TRUNCATION_POLICIES:
        raise Refused(f"--truncation must be one of {TRUNCATION_POLICIES}")


def _checked(
    registry: Registry, work: list[tuple[VariantEntry, list[Plan]]], device: str | None
) -> PlannedEvaluation:
    from medarena.evaluate.engines import check_runnable, engine_class

    every = [plan for _, plans in work for plan in plans]
    for entry, plans in work:  # a variant no engine here can run is refused before any work
        for _, task_options in plans[:1]:
            engine = task_options.engine
            kind = device or engine_class(engine).device_kind({})
            check_runnable(engine, entry.variant, kind)
    for task, task_options in every:
        task_options.check(task)
    return PlannedEvaluation(work, read_task_data(registry, every))


def read_task_data(registry: Registry, plans: list[Plan]) -> dict[tuple[Any, ...], TaskData]:
    """Each plan's items, read once per task_data_key."""
    loaded: dict[tuple[Any, ...], TaskData] = {}
    for task, options in plans:
        key = task_data_key(task, options)
        if key not in loaded:
            loaded[key] = load_task_data(
                task,
                registry.root,
                data=options.data,
                limit=options.limit,
                need_pool=options.shots > 0,
            )
    return loaded


def task_data_key(task: BenchmarkTask, options: EvalOptions) -> tuple[Any, ...]:
    """What load_task_data's result depends on, besides the task."""
    return (task.name, options.data, options.limit, options.shots > 0)


def every_mode(registry: Registry) -> list[Plan]:
    """Every bundled task in each of its scoring modes, 0-shot, seed 0 (the demo's sweep)."""
    tasks = load_benchmarks(registry.root)
    return [
        (task, EvalOptions(mode=mode)) for task in tasks.values() for mode in task.scoring_modes
    ]


def run_plans(
    store: Any,
    registry: Registry,
    entries: list[VariantEntry],
    plans: list[Plan],
    engine: str,
    batch_size: int = 32,
    *,
    concurrency: int = 8,
    rerun: bool = False,
    task_data: dict[tuple[Any, ...], TaskData] | None = None,
    progress: Progress | None = None,
    guard: Guard | None = None,
) -> list[Outcome]:
    """Every plan for every variant; one engine per variant, loaded only if some item still
    needs scoring, closed when the variant is done. `task_data`: items already read, by
    task_data_key; `guard`: runs each plan inside it, skipping those it refuses."""
    from medarena.evaluate.engines import engine_class, load_engine

    sync_registry(store, registry)
    outcomes = []
    for entry in entries:
        loaded: list[Any] = []

        def engine_loader(entry: VariantEntry = entry, loaded: list[Any] = loaded) -> Any:
            if not loaded:
                offered = {"batch_size": batch_size, "concurrency": concurrency}
                taken = engine_class(engine).options
                extra = {name: value for name, value in offered.items() if name in taken}
                loaded.append(load_engine(engine, registry, entry, **extra))
            return loaded[0]

        try:
            for task, options in plans:
                label = f"{entry.variant.name} {task.name} {options.mode} seed={options.seed}"
                with (guard or _always)(task, options) as go:
                    if not go:
                        continue
                    with (progress or _silent)(label) as advance:
                        outcome = evaluate(
                            store,
                            registry,
                            entry.variant.name,
                            task,
                            options,
                            engine_loader,
                            advance,
                            rerun=rerun,
                            task_data=(task_data or {}).get(task_data_key(task, options)),
                        )
                    outcomes.append((task, options, outcome))
        finally:
            if loaded:
                loaded[0].close()
    return outcomes


def _silent(label: str) -> AbstractContextManager[Callable[[int, int], None]]:
    return nullcontext(lambda done, total: None)


def _always(task: BenchmarkTask, options: EvalOptions) -> AbstractContextManager[bool]:
    return nullcontext(True)
