"""A sweep as SLURM job arrays: the cells not completed are split into jobs (one variant per
job, `cells_per_job` at most), and the jobs that need the same resources form one array. Each
array task is one worker (`python -m medarena.sweep.job`) that claims its cells in the shared
database, so a resubmission, or another sweep, never runs a cell twice.

GPUs per job come from the variant's size and the hardware profile; the database must be one
every node reaches (PostgreSQL): a SQLite file is refused."""

from __future__ import annotations

import hashlib
import json
import math
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

from medarena.errors import Refused
from medarena.registry import STATE_DIR, Registry
from medarena.schemas import HardwareProfile, ModelVariant
from medarena.store import Store
from medarena.sweep.cells import Cell, SweepCells
from medarena.sweep.run import LEASE_S, is_completed
from medarena.sweep.spec import SlurmSettings
from medarena.training.slurm import require_sbatch, submit

JOB_MODULE = "medarena.sweep.job"  # what each array task runs (tests pause it)
# weights x this for the KV cache, activations and the CUDA context (medarena's choice)
INFERENCE_OVERHEAD = 1.2
BYTES_PER_PARAM = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class ArrayJob:
    job_id: str
    script: Path
    tasks: int
    cells: int
    gpus: int  # per array task


def require_shared_database(url: str) -> None:
    if make_url(url).get_backend_name() == "sqlite":
        raise Refused(
            "a SLURM sweep writes from every node of its job array into one database, and a "
            "SQLite file cannot be shared safely between nodes: pass --db with a PostgreSQL "
            "URL (postgresql+psycopg://user@host/dbname). SQLite is fine for local workers "
            "(`medarena sweep run FILE --workers N`)"
        )


def gpus_per_job(variant: ModelVariant, hardware: HardwareProfile, engine: str) -> int:
    """GPUs that hold the variant's weights with room to run (at least its tensor_parallel);
    refused when one node is not enough."""
    if engine == "openai":
        return 0  # an API: nothing runs here
    quantization = variant.quantization
    per_param = quantization.bits / 8 if quantization else BYTES_PER_PARAM[variant.dtype]
    needed_gb = variant.params_b * per_param * INFERENCE_OVERHEAD
    gpus = max(variant.tensor_parallel, math.ceil(needed_gb / hardware.gpu_memory_gb))
    if gpus > hardware.gpus_per_node:
        raise Refused(
            f"{variant.name} needs {gpus} GPUs of {hardware.name} ({needed_gb:.0f} GB), more "
            f"than one node's {hardware.gpus_per_node}: a sweep job runs on one node"
        )
    return gpus


def split_jobs(cells: list[Cell], cells_per_job: int) -> list[list[Cell]]:
    """One variant per job (its engine loads once), at most `cells_per_job` cells (0: all)."""
    jobs: list[list[Cell]] = []
    for cell in cells:
        last = jobs[-1] if jobs else None
        full = last is not None and cells_per_job and len(last) >= cells_per_job
        if last is None or last[0].variant != cell.variant or full:
            jobs.append([cell])
        else:
            last.append(cell)
    return jobs


def arrays(registry: Registry, swept: SweepCells, cells: list[Cell]) -> dict[int, list[list[Cell]]]:
    """The jobs of `cells` by the GPUs each needs: one array per entry."""
    sweep = swept.sweep
    hardware = registry.hardware_profile(sweep.hardware)
    by_gpus: dict[int, list[list[Cell]]] = {}
    for job in split_jobs(cells, sweep.slurm.cells_per_job):
        variant = registry.variant(job[0].variant).variant
        engine = sweep.engine_of(variant.name)
        gpus = gpus_per_job(variant, hardware, engine) if sweep.slurm.gpus else 0
        by_gpus.setdefault(gpus, []).append(job)
    return dict(sorted(by_gpus.items()))


def submit_sweep(
    registry: Registry, swept: SweepCells, sweep_file: Path, db_url: str
) -> list[ArrayJob]:
    """Write and submit one array per resource shape for the cells not completed."""
    require_shared_database(db_url)
    require_sbatch()
    sweep = swept.sweep
    with Store(db_url) as store:
        todo = [cell for cell in swept.cells if not is_completed(store, cell)]
    by_gpus = arrays(registry, swept, todo)
    folder = registry.root / STATE_DIR / "sweeps" / sweep.name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    submitted = []
    for gpus, jobs in by_gpus.items():
        job_file = folder / f"array-{stamp}-{gpus}gpu.json"
        _write_private(
            job_file,
            {
                "workspace": str(registry.root),
                "db_url": db_url,  # may hold a password: the file is the user's alone
                "sweep_file": str(sweep_file.resolve()),
                "sha256": file_sha256(sweep_file),
                "lease_s": LEASE_S,
                "jobs": [[cell.key for cell in job] for job in jobs],
            },
        )
        script = job_file.with_suffix(".sbatch")
        script.write_text(array_script(sweep.name, job_file, len(jobs), gpus, sweep.slurm))
        subprocess.run(["bash", "-n", str(script)], check=True)
        done = submit(script)
        cells = sum(len(job) for job in jobs)
        submitted.append(ArrayJob(done.job_id, script, len(jobs), cells, gpus))
    return submitted


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_private(path: Path, data: dict) -> None:
    path.touch(mode=0o600)
    path.write_text(json.dumps(data, indent=2))


def array_script(name: str, job_file: Path, tasks: int, gpus: int, slurm: SlurmSettings) -> str:
    """The batch script of one array: task i runs job i of `job_file`."""
    throttle = f"%{slurm.max_parallel}" if slurm.max_parallel else ""
    options = [
        f"--job-name=sweep-{name}",
        f"--array=0-{tasks - 1}{throttle}",
        "--ntasks=1",
        f"--cpus-per-task={slurm.cpus_per_task}",
        *([f"--gpus-per-task={gpus}"] if gpus else []),
        *([f"--mem={slurm.mem}"] if slurm.mem else []),
        *([f"--time={slurm.time}"] if slurm.time else []),
        *([f"--partition={slurm.partition}"] if slurm.partition else []),
        *slurm.sbatch,
        f"--output={job_file.parent}/slurm-%A_%a.out",
    ]
    return (
        "#!/usr/bin/env bash\n"
        + "".join(f"#SBATCH {option}\n" for option in options)
        + f"# {tasks} job(s) of sweep {name}, each one worker claiming its cells in the shared\n"
        "# database. `medarena sweep run FILE --slurm` again submits only what is not completed.\n"
        f"exec {shlex.quote(sys.executable)} -m {JOB_MODULE} {shlex.quote(str(job_file))}\n"
    )
