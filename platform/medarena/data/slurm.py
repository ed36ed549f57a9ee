"""The preparation stages on a SLURM cluster, through datatrove's SLURM executor.

Each stage is a job array (`sbatch --array`) depending on the stage before (`afterok`, with
`--kill-on-invalid-dep=yes`: a failed stage cancels the later ones instead of leaving them
pending). The tasks are the local run's tasks, logging where the local run looks for completed
tasks (`work/logs/<stage>/completions`), so a resubmission runs the unfinished tasks only and
`prepare` on the same work folder finds the stages complete and only mixes and packs.

A task that fails on bad input leaves the error itself (pickled) beside its log, so whoever waits
for the jobs re-raises it whole, as a local run does (file, line, field). The submitted job ids
are kept in `work/slurm.json`: a local run, or a second submission, is refused while they run.
"""

from __future__ import annotations

import json
import math
import pickle
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from datatrove.executor import SlurmPipelineExecutor
from datatrove.utils.stats import PipelineStats, Stats

from medarena.data.engine import quiet
from medarena.data.pipeline import Stage
from medarena.errors import MedarenaError, OperationFailed, Refused
from medarena.slurm_queue import NEVER_RUNS, listed_jobs, wait_for_jobs

JOBS = "slurm.json"
ERRORS = "errors"  # under a stage's logging folder: errors/<rank>.pickle


@dataclass(frozen=True)
class SlurmSettings:
    """What every stage's job array asks of the cluster."""

    partition: str | None = None  # None: the cluster's default partition
    time: str = "24:00:00"  # per array task
    cpus_per_task: int = 1
    mem_per_cpu_gb: int = 2


@dataclass(frozen=True)
class StageJob:
    stage: str
    tasks: int
    job_id: str | None  # None: every task was already complete, nothing submitted


class StageExecutor(SlurmPipelineExecutor):
    """datatrove's SLURM executor with three adjustments: no extra job per stage to merge the
    stats (medarena reads the per-task stats), counts reset at each task (a job that runs several
    tasks writes each task's own counts, as the local run does), and a medarena error of a task
    kept beside its log."""

    def launch_merge_stats(self) -> None:
        return None

    def get_sbatch_args(self, max_array: int = 1) -> dict:
        args = super().get_sbatch_args(max_array)
        if self.partition is None:
            del args["partition"]  # the cluster's default partition
        return args

    def _run_for_rank(self, rank: int, local_rank: int = 0, node_rank: int = -1) -> PipelineStats:
        for step in self.pipeline:
            step.stats = Stats(str(step))
        try:
            return super()._run_for_rank(rank, local_rank, node_rank)
        except MedarenaError as error:
            with self.logging_dir.open(f"{ERRORS}/{rank:05d}.pickle", "wb") as handle:
                pickle.dump(error, handle)
            raise


def executors(
    stage_list: list[Stage], work: Path, settings: SlurmSettings, *, arrays: int
) -> list[StageExecutor]:
    """One executor per stage, each depending on the one before; a stage of more tasks than
    `arrays` runs several tasks per array job (at most `arrays` jobs per stage)."""
    # the job finds datatrove's `launch_pickled_pipeline` next to this interpreter
    path = f'export PATH="{Path(sys.executable).parent}:$PATH"'
    chain: list[StageExecutor] = []
    for stage in stage_list:
        chain.append(
            StageExecutor(
                stage.pipeline,
                tasks=stage.tasks,
                time=settings.time,
                partition=settings.partition,  # type: ignore[arg-type]
                cpus_per_task=settings.cpus_per_task,
                mem_per_cpu_gb=settings.mem_per_cpu_gb,
                job_name=f"medarena-data-{stage.name}",
                qos=None,  # type: ignore[arg-type]  # the cluster's default
                env_command=path,
                sbatch_args={"kill-on-invalid-dep": "yes"},
                tasks_per_job=math.ceil(stage.tasks / arrays),
                logging_dir=str(work / "logs" / stage.name),
                depends=chain[-1] if chain else None,
            )
        )
    return chain


def submit(
    stage_list: list[Stage], work: Path, settings: SlurmSettings, *, arrays: int
) -> list[StageJob]:
    """Submit the stages' unfinished tasks (the stages before first); their job ids. The
    caller refuses first while earlier jobs of `work` run (`refuse_while_running`)."""
    chain = executors(stage_list, work, settings, arrays=arrays)
    for stage in stage_list:
        shutil.rmtree(work / "logs" / stage.name / ERRORS, ignore_errors=True)
    try:
        with quiet():
            chain[-1].launch_job()  # launches the stages it depends on first
    except subprocess.CalledProcessError as error:
        raise OperationFailed(
            f"sbatch failed (exit {error.returncode}; its message is above)"
        ) from error
    except FileNotFoundError as error:
        raise Refused("--slurm needs SLURM's `sbatch` on PATH") from error
    finally:  # what was submitted, also when a later stage failed to submit
        jobs = [
            StageJob(stage.name, stage.tasks, _job_id(executor))
            for stage, executor in zip(stage_list, chain, strict=True)
        ]
        submitted = {job.stage: job.job_id for job in jobs}
        (work / JOBS).write_text(json.dumps(submitted, indent=2) + "\n")
    return jobs


def _job_id(executor: StageExecutor) -> str | None:
    """None where nothing was submitted (every task complete: datatrove's -1, or not reached)."""
    return None if executor.job_id in (None, -1) else str(executor.job_id)


def active(job_ids: list[str]) -> list[str]:
    """Those of `job_ids` still to run or running (none where squeue cannot answer: the check
    before a local run or a submission does not block on an unreachable controller)."""
    listed = listed_jobs(job_ids) or {}
    return [job for job in job_ids if job in listed and listed[job] != NEVER_RUNS]


def submitted_jobs(work: Path) -> list[str]:
    path = work / JOBS
    if not path.exists():
        return []
    return [job for job in json.loads(path.read_text()).values() if job is not None]


def refuse_while_running(work: Path) -> None:
    """Refused while jobs submitted for this work folder are pending or running."""
    running = active(submitted_jobs(work))
    if running:
        raise Refused(
            f"the data stages of {work} are running on SLURM (jobs {', '.join(running)}): "
            "wait for them to end, or scancel them"
        )


def wait(jobs: list[StageJob], poll: float = 2.0) -> None:
    """Return once every submitted job has left the queue (a failed stage's followers are
    cancelled: `wait_for_jobs`)."""
    wait_for_jobs([job.job_id for job in jobs if job.job_id is not None], poll_s=poll)


def check_complete(stage_list: list[Stage], work: Path) -> None:
    """Raise what kept a stage from completing: a task's medarena error whole (the first, by
    stage and rank), else which tasks did not complete and where their logs are."""
    for stage in stage_list:
        logs = work / "logs" / stage.name
        done = {path.name for path in (logs / "completions").glob("*")}
        missing = [rank for rank in range(stage.tasks) if f"{rank:05d}" not in done]
        if not missing:
            continue
        errors = sorted((logs / ERRORS).glob("*.pickle"))
        if errors:
            raise pickle.loads(errors[0].read_bytes())
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise OperationFailed(
            f"stage {stage.name}: tasks {shown} did not complete on SLURM (failed or cancelled; "
            f"their logs: {logs / 'slurm_logs'}, {logs / 'logs'}); submit again to run only them"
        )
