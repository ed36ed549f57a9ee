"""A sweep's cells: one per variant x task x setting x seed, each exactly the evaluation
`medarena eval` (or `eval --protocol`) would plan for it, with its run key. Plans come from
medarena.evaluate.plans, so a cell's run key is the sequential run's by construction."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from medarena.evaluate.plans import (
    PlannedEvaluation,
    plan_evaluation,
    plan_protocol_evaluation,
    task_data_key,
)
from medarena.evaluate.runner import EvalOptions, TaskData, plan_run
from medarena.evaluate.spec import BenchmarkTask
from medarena.registry import Registry
from medarena.results import EvalRunSpec
from medarena.store.queries import run_key_hash
from medarena.sweep.spec import Sweep, SweepSetting


@dataclass(frozen=True)
class Cell:
    variant: str
    task: BenchmarkTask  # with a protocol's overrides applied
    setting: str  # the setting's or protocol's name (several, comma-separated, sharing a run)
    options: EvalOptions
    spec: EvalRunSpec  # the run key (engine version left empty, as plan_run does)
    key: str  # run_key_hash(spec): what the cell is claimed and found by
    items: int

    @property
    def label(self) -> str:
        return f"{self.variant} / {self.task.name} / {self.setting} / seed {self.options.seed}"


@dataclass(frozen=True)
class SweepCells:
    sweep: Sweep
    cells: list[Cell]
    task_data: dict[tuple[Any, ...], TaskData]  # by evaluate.plans.task_data_key

    def data(self, cell: Cell) -> TaskData:
        return self.task_data[task_data_key(cell.task, cell.options)]


def setting_options(base: EvalOptions, setting: SweepSetting) -> EvalOptions:
    """`medarena eval`'s options for a named setting (mode and seeds are plan arguments)."""
    return replace(
        base,
        shots=setting.shots,
        cot=setting.cot,
        samples=setting.samples,
        temperature=setting.temperature,
        extraction=setting.extraction,
        bertscore_encoder=setting.bertscore_model,
        bartscore_model=setting.bartscore_model,
        use_chat_template=setting.chat_template,
    )


def _plans(
    registry: Registry, sweep: Sweep, variants: list[str], base: EvalOptions, device: str | None
) -> list[tuple[str, PlannedEvaluation]]:
    """(setting or protocol name, its plan) for `variants` under `base` options."""
    if sweep.settings:
        return [
            (
                setting.name,
                plan_evaluation(
                    registry,
                    variants,
                    sweep.tasks,
                    setting_options(base, setting),
                    mode=setting.mode,
                    seeds=setting.seeds,
                    device=device,
                ),
            )
            for setting in sweep.settings
        ]
    from medarena.evaluate.protocol import get_protocol, load_protocols

    protocols = load_protocols(registry.root)
    return [
        (
            name,
            plan_protocol_evaluation(
                registry, get_protocol(protocols, name), variants, sweep.tasks, base, device=device
            ),
        )
        for name in sweep.protocols
    ]


def expand(registry: Registry, sweep: Sweep, device: str | None = None) -> SweepCells:
    """Every cell, in variant, task, setting, seed order; refused (before anything runs) as
    `medarena eval` would refuse it on device kind `device` (None: this machine's). Cells of two
    settings or protocols that make the same run are one cell, named after both."""
    planned: list[tuple[str, PlannedEvaluation]] = []
    by_engine: dict[str, list[str]] = {}  # the variants each engine runs, in the sweep's order
    for variant in sweep.variants:
        by_engine.setdefault(sweep.engine_of(variant), []).append(variant)
    for engine, variants in by_engine.items():
        planned.extend(_plans(registry, sweep, variants, sweep.base_options(engine), device))
    task_rank = {name: index for index, name in enumerate(sweep.tasks)}
    variant_rank = {name: index for index, name in enumerate(sweep.variants)}
    ordered: list[tuple[tuple[int, ...], Cell]] = []
    task_data: dict[tuple[Any, ...], TaskData] = {}
    for setting_rank, (label, plan) in enumerate(planned):
        task_data.update(plan.task_data)
        for entry, plans in plan.work:
            for task, options in plans:
                data = plan.task_data[task_data_key(task, options)]
                spec = plan_run(registry, entry.variant.name, task, options, data).spec
                cell = Cell(
                    entry.variant.name,
                    task,
                    label,
                    options,
                    spec,
                    run_key_hash(spec),
                    len(data.items),
                )
                rank = task_rank.setdefault(task.name, len(task_rank))
                position = (variant_rank[cell.variant], rank, setting_rank, options.seed)
                ordered.append((position, cell))
    cells: dict[str, Cell] = {}
    for _, cell in sorted(ordered, key=lambda pair: pair[0]):
        if cell.key in cells:
            first = cells[cell.key]
            cells[cell.key] = replace(first, setting=f"{first.setting}, {cell.setting}")
        else:
            cells[cell.key] = cell
    return SweepCells(sweep, list(cells.values()), task_data)
