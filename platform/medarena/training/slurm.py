"""Submitting a run's batch script to SLURM with `sbatch --parsable` (the job id is the only
thing read from its output). submitit is not used here: it submits pickled Python functions
and follows jobs through `sacct`, which needs SLURM's accounting database; a training run is a
shell script that must stay runnable by hand with plain `sbatch`."""

from __future__ import annotations

import shutil
import subprocess
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
