"""Following submitted SLURM jobs through `squeue` (data stages, sweeps): which are still queued,
and waiting until none is. A module of its own below `data`, `training` and `sweep`, which all
submit jobs; nothing here imports medarena."""

from __future__ import annotations

import shutil
import subprocess
import time

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
