"""The data pipeline of a recipe, end to end: the datatrove stages (read, normalise, filter,
exact and near dedup, tokenize; `medarena.data.pipeline`) then medarena's token-ratio mix and
EOS packing into shards, streamed from the tokenized files. Every step is counted in the index."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from medarena.data.clean import Cleaning, CleaningReport
from medarena.data.corpus import Source, source_bytes
from medarena.data.pack import (
    PackReport,
    TokenizedSource,
    eos_of,
    gather_source,
    pack,
    token_dtype,
)
from medarena.data.pipeline import (
    INPUTS,
    Stage,
    TokenizerSpec,
    cleaning_report,
    open_work,
    run_local,
    stages,
)
from medarena.errors import Problem, ProblemsError, UserError

if TYPE_CHECKING:
    from medarena.data.slurm import SlurmSettings, StageJob


class MixRecipe(Protocol):
    """What preparation reads from a recipe. A `PretrainRecipe` is one; data/ does not import
    it (pretrain/ builds on data/, never the other way round)."""

    @property
    def name(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def sequence_length(self) -> int: ...
    @property
    def sources(self) -> list[Source]: ...
    @property
    def cleaning(self) -> Cleaning: ...
    def mix_ratios(self) -> dict[str, float]: ...
    def content_hash(self) -> str: ...


# medarena's choice: below this, a process pool costs more than it saves
BYTES_PER_WORKER = 32 * 2**20


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(sources: list[Source], pretrain_dir: Path) -> int:
    """The machine's cores, but one worker per 32 MiB of local input at least (a tiny mix is
    prepared in this process); a hub source counts as large."""
    sizes = [source_bytes(source, pretrain_dir) for source in sources]
    if any(size is None for size in sizes):
        return cores()
    return max(1, min(cores(), -(-sum(sizes) // BYTES_PER_WORKER)))


def work_dir(out_dir: Path) -> Path:
    """The intermediate files of a preparation, next to its output (kept until it succeeds)."""
    return out_dir.with_name(out_dir.name + ".work")


@dataclass(frozen=True)
class Staged:
    """The stages of one preparation in its work folder, and what they were made from."""

    stages: list[Stage]
    inputs: dict[str, Any]  # written to work/inputs.json: other inputs start afresh
    tasks: int
    dtype: np.dtype


def recorded_tasks(work: Path, inputs: dict[str, Any]) -> int | None:
    """The task count of the work folder of the same other inputs (a preparation resumed, or
    packed after its stages ran on SLURM, keeps its task count)."""
    marker = work / INPUTS
    if not marker.exists():
        return None
    recorded = json.loads(marker.read_text())
    tasks = recorded.pop("tasks", None)
    return tasks if recorded == inputs else None


def staged(
    recipe: MixRecipe,
    tokenizer: Any,
    pretrain_dir: Path,
    work: Path,
    *,
    tasks: int | None,
    workers: int,
) -> Staged:
    """The stages (readers built, paths checked) with `tasks` (default: the work folder's, else
    `workers`)."""
    dtype = token_dtype(len(tokenizer))
    encoder_json = tokenizer.backend_tokenizer.to_str()
    spec = TokenizerSpec(encoder_json, eos_of(tokenizer), dtype.name)
    inputs = {
        "recipe_sha256": recipe.content_hash(),
        "pretrain_dir": str(pretrain_dir.resolve()),
        "tokenizer_sha256": hashlib.sha256(encoder_json.encode()).hexdigest(),
        "eos": spec.eos,
    }
    tasks = tasks or recorded_tasks(work, inputs) or workers
    stage_list = stages(
        recipe.sources, recipe.cleaning, pretrain_dir, work, spec, tasks=tasks, seed=recipe.seed
    )
    return Staged(stage_list, {**inputs, "tasks": tasks}, tasks, dtype)


def checked_report(recipe: MixRecipe, work: Path) -> CleaningReport:
    """The cleaning counts of the completed stages; a source of the mix left empty is an error."""
    report = cleaning_report(work)
    emptied = [
        Problem(f"recipe {recipe.name}", None, f"sources.{name}", "no document left after cleaning")
        for name, ratio in recipe.mix_ratios().items()
        if ratio > 0 and not report.counts["documents_out"].get(name)
    ]
    if emptied:
        raise ProblemsError(emptied, "empty source after cleaning")
    return report


def clean_and_tokenize(
    recipe: MixRecipe,
    tokenizer: Any,
    pretrain_dir: Path,
    work: Path,
    *,
    workers: int | None = None,
    tasks: int | None = None,
) -> tuple[CleaningReport, dict[str, TokenizedSource], int]:
    """Run the datatrove stages in `work` (resuming completed tasks of the same inputs); the
    cleaning counts, each source's tokens, memory-mapped from `work`, and the task count."""
    workers = workers or default_workers(recipe.sources, pretrain_dir)
    plan = staged(recipe, tokenizer, pretrain_dir, work, tasks=tasks, workers=workers)
    open_work(work, plan.inputs)
    run_local(plan.stages, work, workers)
    report = checked_report(recipe, work)
    tokenized = {
        source.name: gather_source(work / "tokens" / source.name, plan.tasks, plan.dtype)
        for source in recipe.sources
    }
    return report, tokenized, plan.tasks


@dataclass(frozen=True)
class StagedData:
    work: Path
    tasks: int
    jobs: list[StageJob]  # submitted to SLURM; empty for a run here
    cleaning: dict[str, Any] | None  # None while the stages run on SLURM


def prepare_stages(
    recipe: MixRecipe,
    tokenizer: Any,
    pretrain_dir: Path,
    out_dir: Path,
    *,
    workers: int | None = None,
    tasks: int | None = None,
    slurm: SlurmSettings | None = None,
    wait: bool = False,
) -> StagedData:
    """The datatrove stages of `prepare(..., out_dir)` without the mix and packing: run here
    (`workers` tasks at once) or submitted to SLURM as job arrays (`slurm`; with `wait`, return
    once the jobs ended, raising what failed). `prepare` on the same `out_dir` then finds the
    stages complete and only mixes and packs. Bad input leaves nothing behind."""
    from medarena.data import slurm as cluster

    workers = workers or default_workers(recipe.sources, pretrain_dir)
    work = work_dir(out_dir)
    cluster.refuse_while_running(work)  # before anything could be removed
    created = _first_missing(work)
    try:
        plan = staged(recipe, tokenizer, pretrain_dir, work, tasks=tasks, workers=workers)
        open_work(work, plan.inputs)
        jobs: list[StageJob] = []
        if slurm is None:
            run_local(plan.stages, work, workers)
        else:
            jobs = cluster.submit(plan.stages, work, slurm, arrays=plan.tasks)
            if not wait:
                return StagedData(work, plan.tasks, jobs, None)
            cluster.wait(jobs)
            cluster.check_complete(plan.stages, work)
        report = checked_report(recipe, work)
    except UserError:
        shutil.rmtree(created, ignore_errors=True)
        raise
    return StagedData(work, plan.tasks, jobs, json.loads(json.dumps(report.as_dict())))


def _first_missing(path: Path) -> Path:
    """The outermost folder of `path` that does not exist yet."""
    while not path.parent.exists():
        path = path.parent
    return path


def prepare(
    recipe: MixRecipe,
    tokenizer: Any,
    pretrain_dir: Path,
    out_dir: Path,
    *,
    sequence_length: int | None = None,
    workers: int | None = None,
    tasks: int | None = None,
) -> tuple[PackReport, dict[str, Any]]:
    """Packed shards of the recipe's mix in `out_dir`; returns the pack report and the
    cleaning counts. `tasks` (default: `workers`, default: `default_workers`) split the work;
    the same inputs, seed and task count give the same shards byte for byte. A killed
    preparation called again resumes at its first unfinished task."""
    from medarena.data.slurm import refuse_while_running

    workers = workers or default_workers(recipe.sources, pretrain_dir)
    work = work_dir(out_dir)
    refuse_while_running(work)  # before anything could be removed
    created = _first_missing(work)
    try:
        report, tokenized, tasks = clean_and_tokenize(
            recipe, tokenizer, pretrain_dir, work, workers=workers, tasks=tasks
        )
    except UserError:
        # bad input: nothing to resume (the fix changes the inputs), nothing is left behind;
        # a killed or crashed preparation keeps its completed tasks
        shutil.rmtree(created, ignore_errors=True)
        raise
    metadata = {
        "recipe": recipe.name,
        "recipe_sha256": recipe.content_hash(),
        "tokenizer": getattr(tokenizer, "name_or_path", ""),
        "tokenizer_vocab": len(tokenizer),
        "tasks": tasks,
        "cleaning": report.as_dict(),
    }
    packed = pack(
        tokenized,
        recipe.mix_ratios(),
        out_dir,
        sequence_length=sequence_length or recipe.sequence_length,
        seed=recipe.seed,
        metadata=metadata,
    )
    shutil.rmtree(work)
    return packed, json.loads(json.dumps(report.as_dict()))
