"""Submitting a run's batch script to SLURM with `sbatch --parsable` (the job id is the only
thing read from its output). submitit is not used here: it submits pickled Python functions
and follows jobs through `sacct`, which needs SLURM's accounting database; a training run is a
shell script that must stay runnable by hand with plain `sbatch`."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from medarena.errors import OperationFailed, Refused, TrainingFailed


@dataclass(frozen=True)
class Submitted:
    job_id: str
    script: Path
    log: Path  # the job's output (slurm-<id>.out next to the script)


def require_sbatch() -> str:
    """sbatch's path; refused (before anything is prepared) where SLURM is not installed."""
    sbatch = shutil.which("sbatch")
    if sbatch is None:
        raise Refused(
            "--submit needs SLURM's `sbatch` on PATH: run on the cluster's login node, or "
            "without --submit (--nodes N writes slurm.sbatch to submit by hand)"
        )
    return sbatch


def submit(script: Path, *, wait: bool = False) -> Submitted:
    """Submit `script`; with `wait`, return only once the job has ended (raising
    TrainingFailed when it did not succeed)."""
    sbatch = require_sbatch()
    command = [sbatch, "--parsable", *(["--wait"] if wait else []), str(script)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=script.parent)
    # --parsable prints `<job id>` or `<job id>;<cluster>`
    job_id = done.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise OperationFailed(
            f"sbatch {script} failed (exit {done.returncode}): "
            f"{done.stderr.strip() or done.stdout.strip()}"
        )
    submitted = Submitted(job_id, script, script.parent / f"slurm-{job_id}.out")
    if wait and done.returncode != 0:
        raise TrainingFailed(
            f"SLURM job {job_id} ended with exit {done.returncode} (see {submitted.log}); "
            "submit again to resume from the last checkpoint"
        )
    return submitted


# squeue's reason for a job that waits on a dependency that failed: it will never run (a
# cluster without --kill-on-invalid-dep keeps it pending)
NEVER_RUNS = "DependencyNeverSatisfied"


def listed_jobs(job_ids: list[str]) -> dict[str, str] | None:
    """Those of `job_ids` that squeue still lists (pending or running; a running array task under
    its array's id), each with squeue's reason; None where squeue could not answer (not
    installed, the controller unreachable): the caller asks again or gives up. squeue lists no
    ended job, and refuses ids it no longer knows ("Invalid job id"): those ended too."""
    if not job_ids:
        return {}
    if shutil.which("squeue") is None:
        return None
    shown = subprocess.run(
        ["squeue", "-h", "-o", "%F %r", "-j", ",".join(job_ids)], capture_output=True, text=True
    )
    if shown.returncode != 0:
        return {} if "Invalid job id" in shown.stderr else None
    rows = [line.split(maxsplit=1) for line in shown.stdout.splitlines() if line.strip()]
    return {row[0]: row[1].strip() if len(row) > 1 else "" for row in rows}


def wait_for_jobs(job_ids: list[str], *, poll_s: float = 2.0) -> None:
    """Return once squeue lists none of `job_ids`. While squeue cannot answer, keep asking (a
    controller restart must not pass for the jobs' end). Jobs that will never run (their
    dependency failed) are cancelled: the jobs that depend on them then fail in turn."""
    while True:
        listed = listed_jobs(job_ids)
        if listed is not None:
            doomed = [job for job, reason in listed.items() if reason == NEVER_RUNS]
            if doomed:
                subprocess.run(["scancel", *doomed], capture_output=True)
            if not listed:
                return
        time.sleep(poll_s)
