"""Preparation as datatrove stages, run by its local executor (or its SLURM executor).

    clean     (tasks)   readers -> Normalise -> LengthFilter -> CleanedWriter
                        [-> ExactSignature] [-> NearSignature]
    exact     (1)       ExactFind                                  (when cleaning.exact_dedup)
    buckets   (bands)   NearBuckets                                (when near_dedup_threshold)
    cluster   (1)       FirstKeptCluster
    tokenize  (tasks)   CleanedBatches [-> DropListed exact] [-> DropListed near] -> Tokenize

Every stage keeps its logs, per-task stats and completion marks under `work/<stage>/`; a stage
run again skips its completed tasks, so a killed preparation resumes at its first unfinished task.
`work/inputs.json` names what the intermediate files were made from; other inputs start afresh.
"""

from __future__ import annotations

import json
import shutil
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import multiprocess
from datatrove.executor import LocalPipelineExecutor
from datatrove.utils.stats import PipelineStats, Stats

from medarena.data.clean import Cleaning, CleaningReport, LengthFilter, Normalise
from medarena.data.corpus import Source, source_reader
from medarena.data.dedup import (
    ExactFind,
    ExactSignature,
    FirstKeptCluster,
    NearBuckets,
    NearSignature,
    minhash_config,
)
from medarena.data.engine import quiet
from medarena.data.steps import CleanedBatches, CleanedWriter, DropListed, Tokenize

INPUTS = "inputs.json"


@dataclass(frozen=True)
class Stage:
    name: str
    pipeline: list
    tasks: int


@dataclass(frozen=True)
class TokenizerSpec:
    """What the tokenize tasks need of the tokenizer (picklable, no transformers import)."""

    json: str
    eos: int
    dtype: str


def stages(
    sources: list[Source],
    cleaning: Cleaning,
    pretrain_dir: Path,
    work: Path,
    tokenizer: TokenizerSpec,
    *,
    tasks: int,
    seed: int,
) -> list[Stage]:
    """The stages of one preparation; readers are built (and paths checked) here, before any
    task runs."""
    readers = [source_reader(source, pretrain_dir) for source in sources]
    order = {source.name: index for index, source in enumerate(sources)}
    clean = [*readers, Normalise(), LengthFilter(cleaning.min_words, cleaning.max_words)]
    clean.append(CleanedWriter(work / "cleaned", order))
    tokenize: list = [CleanedBatches(work / "cleaned", [source.name for source in sources])]
    result = []
    if cleaning.exact_dedup:
        clean.append(ExactSignature(work / "exact"))
        tokenize.append(DropListed(work / "exact", "exact_duplicates"))
    if cleaning.near_dedup_threshold is not None:
        config = minhash_config(cleaning, seed)
        clean.append(NearSignature(str(work / "minhash" / "signatures"), config))
        tokenize.append(DropListed(work / "minhash" / "remove", "near_duplicates"))
    result.append(Stage("clean", clean, tasks))
    if cleaning.exact_dedup:
        result.append(Stage("exact", [ExactFind(work / "exact", tasks)], 1))
    if cleaning.near_dedup_threshold is not None:
        buckets = NearBuckets(work / "minhash" / "signatures", work / "minhash" / "buckets", config)
        result.append(Stage("buckets", [buckets], config.num_buckets))
        cluster = FirstKeptCluster(
            str(work / "minhash" / "buckets"), work / "minhash" / "remove", work / "cleaned", config
        )
        result.append(Stage("cluster", [cluster], 1))
    tokenize.append(Tokenize(work / "tokens", tokenizer.json, tokenizer.eos, tokenizer.dtype))
    result.append(Stage("tokenize", tokenize, tasks))
    return result


def open_work(work: Path, inputs: dict[str, Any]) -> None:
    """Keep the intermediate files of the same inputs (to resume); start afresh otherwise."""
    marker = work / INPUTS
    if marker.exists() and json.loads(marker.read_text()) == inputs:
        return
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    marker.write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n")


class LeanLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor with a leaner task runner: no manager process per run and
    no log sinks per task (adding loguru sinks cost more than a small preparation); each task
    still saves its stats and is marked complete only after its last step returned."""

    def run(self) -> None:
        ranks = self.get_incomplete_ranks(range(self.tasks))
        if self.workers == 1 or len(ranks) <= 1:
            for rank in ranks:
                self._run_for_rank(rank)
            return
        context = multiprocess.get_context(self.start_method)
        with context.Pool(min(self.workers, len(ranks))) as pool:
            list(pool.imap_unordered(self._run_for_rank, ranks))

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1) -> PipelineStats:
        data = None
        for step in self.pipeline:
            step.stats = Stats(str(step))  # counts of this task only
            data = step(data, rank, self.world_size)
        if data:
            deque(data, maxlen=0)
        stats = PipelineStats(self.pipeline)
        with self.logging_dir.open(f"stats/{rank:05d}.json", "w") as handle:
            stats.save_to_disk(handle)
        self.mark_rank_as_completed(rank)
        return stats


def run_local(stage_list: list[Stage], work: Path, workers: int) -> None:
    """Run the stages in order on this machine, `workers` tasks at a time; a failed task
    stops the preparation (its stage is not complete, nothing later runs). datatrove's
    progress messages are silenced; what fails is raised."""
    with quiet():
        _run_stages(stage_list, work, workers)


def _run_stages(stage_list: list[Stage], work: Path, workers: int) -> None:
    for stage in stage_list:
        executor = LeanLocalExecutor(
            stage.pipeline,
            tasks=stage.tasks,
            workers=min(workers, stage.tasks),
            logging_dir=str(work / "logs" / stage.name),
            start_method="fork",
        )
        executor.run()
        if executor.get_incomplete_ranks():
            raise RuntimeError(f"stage {stage.name} has unfinished tasks")


def cleaning_report(work: Path) -> CleaningReport:
    """The cleaning counts of every completed task of every stage."""
    stats = []
    for path in sorted((work / "logs").glob("*/stats/*.json")):
        stats.extend(json.loads(path.read_text()))
    return CleaningReport.from_stats(stats)
