"""Running a sweep's cells: a worker claims each cell in the store before evaluating it, renews
its claims while it works and releases each when done, so workers on any number of processes
or nodes (and two sweeps that share cells) never run a cell twice. A cell is evaluated through
`evaluate.plans.run_plans`, one engine per variant, exactly as `medarena eval` would.

`sweep run --workers N` starts N worker processes here; a SLURM array task is one worker
(medarena.sweep.job)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

from medarena.evaluate.plans import Guard, Progress, run_plans
from medarena.evaluate.runner import EvalOptions
from medarena.evaluate.spec import BenchmarkTask
from medarena.registry import Registry
from medarena.store import Store
from medarena.store.claims import Holder
from medarena.store.queries import COMPLETED
from medarena.sweep.cells import Cell, SweepCells

LEASE_S = 300.0  # a claim not renewed for this long is taken over (medarena's choice)


def new_holder() -> Holder:
    """This process as a claim holder (with its SLURM array task, when it is one)."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    slurm_job = f"{job}_{task}" if job and task else os.environ.get("SLURM_JOB_ID")
    return Holder(str(uuid4()), socket.gethostname(), os.getpid(), slurm_job)


def stop_on_sigterm() -> None:
    """scancel (or a time limit) sends SIGTERM: stop as Ctrl-C would, so the run in progress is
    marked interrupted and the claim released on the way out."""

    def stop(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


@dataclass
class WorkerReport:
    ran: list[str] = field(default_factory=list)  # labels of cells this worker completed
    failed: dict[str, str] = field(default_factory=dict)  # label -> error
    held: list[str] = field(default_factory=list)  # left to other holders (not waited for)
    on_ran: Callable[[str], None] | None = None  # told of each completed cell as it ends

    def completed(self, label: str) -> None:
        self.ran.append(label)
        if self.on_ran is not None:
            self.on_ran(label)


def is_completed(store: Store, cell: Cell) -> bool:
    run = store.find_eval_run(cell.spec)
    return run is not None and run.status == COMPLETED


@contextmanager
def renewing(url: str, holder: Holder, lease_s: float) -> Iterator[None]:
    """Renew the holder's claims every quarter lease, on a connection of its own."""
    stopped = threading.Event()

    def renew() -> None:
        store = None
        while not stopped.wait(lease_s / 4):
            try:  # a database that is briefly unreachable must not end the renewals
                store = store or Store(url)
                store.renew_claims(holder.id, lease_s)
            except Exception:  # tried again a quarter lease later
                continue
        if store is not None:
            store.close()

    thread = threading.Thread(target=renew, name="sweep-claims", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join(timeout=30)


def work(
    store: Store,
    registry: Registry,
    swept: SweepCells,
    cells: list[Cell],
    *,
    holder: Holder,
    lease_s: float = LEASE_S,
    wait: bool = True,
    poll_s: float = 2.0,
    progress: Progress | None = None,
    on_ran: Callable[[str], None] | None = None,
) -> WorkerReport:
    """Run `cells` in order, each under a claim; a cell another live holder has is left, and
    with `wait` taken up again until it is completed (or its holder's claim lapses). A cell
    that fails is recorded with its error and the worker goes on."""
    report = WorkerReport(on_ran=on_ran)
    todo = [cell for cell in cells if not is_completed(store, cell)]
    with renewing(store.url, holder, lease_s):
        while todo:
            held = _one_pass(store, registry, swept, todo, holder, lease_s, report, progress)
            if not wait:
                report.held = [cell.label for cell in held]
                break
            todo = [cell for cell in held if not is_completed(store, cell)]
            if todo:
                time.sleep(poll_s)
    return report


def _one_pass(
    store: Store,
    registry: Registry,
    swept: SweepCells,
    cells: list[Cell],
    holder: Holder,
    lease_s: float,
    report: WorkerReport,
    progress: Progress | None,
) -> list[Cell]:
    """Each variant's cells through run_plans (one engine per variant); returns the cells
    that other holders have."""
    held: list[Cell] = []
    by_variant: dict[str, list[Cell]] = {}
    for cell in cells:
        by_variant.setdefault(cell.variant, []).append(cell)
    sweep = swept.sweep
    for variant, group in by_variant.items():
        claimed = _claiming(store, sweep.name, group, holder, lease_s, report, held)
        run_plans(
            store,
            registry,
            [registry.variant(variant)],
            [(cell.task, cell.options) for cell in group],
            sweep.engine_of(variant),
            sweep.batch_size,
            concurrency=sweep.concurrency,
            task_data=swept.task_data,
            progress=progress,
            guard=claimed,
        )
    return held


def _claiming(
    store: Store,
    sweep: str,
    group: list[Cell],
    holder: Holder,
    lease_s: float,
    report: WorkerReport,
    held: list[Cell],
) -> Guard:
    """run_plans' guard for `group`'s plans: each runs only under the holder's claim."""
    pending = iter(group)

    @contextmanager
    def claimed(task: BenchmarkTask, options: EvalOptions) -> Iterator[bool]:
        cell = next(pending)  # run_plans calls this once per plan, in order
        assert (cell.task.name, cell.options) == (task.name, options)
        if is_completed(store, cell):
            yield False
            return
        if not store.claim_cell(
            cell.key, sweep=sweep, cell=cell.label, holder=holder, lease_s=lease_s
        ):
            held.append(cell)
            yield False
            return
        try:
            # another worker may have completed it between the check and the claim
            yield not is_completed(store, cell)
        except Exception as exc:  # the cell failed: record it, go on with the others
            message = f"{type(exc).__name__}: {exc}"
            store.release_claim(cell.key, holder.id, error=message)
            report.failed[cell.label] = message
            return
        except BaseException:  # stopped (SIGTERM, Ctrl-C): let go, the run is resumable
            store.release_claim(cell.key, holder.id)
            raise
        store.release_claim(cell.key, holder.id)
        if is_completed(store, cell):
            report.completed(cell.label)

    return claimed


def worker_share(cells: list[Cell], index: int, count: int) -> list[Cell]:
    """Worker `index` of `count`: its contiguous share of the cells first (variants stay
    together, so it loads few models), then the others' shares, to take over what is left."""
    size = -(-len(cells) // count)
    start = min(index * size, len(cells))
    return cells[start:] + cells[:start]


def start_workers(
    workspace: Path, db_url: str, sweep_file: Path, count: int, lease_s: float
) -> list[int]:
    """`count` worker processes (`medarena sweep run FILE --worker i/count`); waits for them
    and returns their exit codes."""
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from medarena.cli import app; app()",
                "--workspace",
                str(workspace),
                "--db",
                db_url,
                "sweep",
                "run",
                str(sweep_file),
                "--worker",
                f"{index}/{count}",
                "--lease",
                str(lease_s),
            ]
        )
        for index in range(count)
    ]
    try:
        return [process.wait() for process in processes]
    except BaseException:  # stopped: stop the workers too (they release their claims)
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()
        raise
