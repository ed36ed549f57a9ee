"""One task of a sweep's SLURM array: `python -m medarena.sweep.job JOB_FILE [INDEX]` (INDEX
defaults to $SLURM_ARRAY_TASK_ID). It runs job INDEX of the file written at submission: the
cells with those run keys, each under a claim in the shared database, without waiting for
cells that another worker holds. SIGTERM (scancel, the time limit) marks the run in progress
interrupted and releases its claim; resubmitting resumes it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from medarena.errors import MedarenaError, Refused
from medarena.registry import load_registry
from medarena.store import Store
from medarena.sweep.cells import expand
from medarena.sweep.run import new_holder, stop_on_sigterm, work
from medarena.sweep.slurm import file_sha256
from medarena.sweep.spec import load_sweep


def run_job(job_file: Path, index: int) -> int:
    job = json.loads(job_file.read_text())
    sweep_file = Path(job["sweep_file"])
    if file_sha256(sweep_file) != job["sha256"]:
        raise Refused(f"{sweep_file} changed since it was submitted: submit the sweep again")
    registry = load_registry(job["workspace"])
    swept = expand(registry, load_sweep(sweep_file, registry))
    by_key = {cell.key: cell for cell in swept.cells}
    cells = [by_key[key] for key in job["jobs"][index]]
    holder = new_holder()
    print(f"sweep {swept.sweep.name}: job {index}, {len(cells)} cell(s), holder {holder.id}")
    with Store(job["db_url"]) as store:
        report = work(
            store,
            registry,
            swept,
            cells,
            holder=holder,
            lease_s=job["lease_s"],
            wait=False,
            on_ran=lambda label: print(f"ran: {label}", flush=True),
        )
    for label in report.held:
        print(f"held by another worker: {label}")
    for label, error in report.failed.items():
        print(f"failed: {label}: {error}")
    return 1 if report.failed else 0


def main(argv: list[str]) -> int:
    stop_on_sigterm()
    index = int(argv[1]) if len(argv) > 1 else int(os.environ["SLURM_ARRAY_TASK_ID"])
    try:
        return run_job(Path(argv[0]), index)
    except MedarenaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
