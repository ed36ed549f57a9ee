"""`medarena sweep run | status`: evaluation sweeps (variants x tasks x settings from one YAML
file) run by local workers or a SLURM job array into one database."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from medarena.cli.common import out, reports_errors
from medarena.errors import Refused

app = typer.Typer(help="Evaluation sweeps: variants x tasks x settings.", no_args_is_help=True)

SWEEP_FILE = typer.Argument(..., exists=True, dir_okay=False, help="The sweep's YAML file.")


def _cells(ctx: typer.Context, path: Path, on_cluster: bool) -> tuple[Any, Any]:
    """The registry and the sweep's cells (checked, data read: nothing stored yet); checked to
    run on the cluster's GPUs (`on_cluster` and the sweep asks for GPUs: a login node without
    one plans GPU-only variants all the same) or on this machine."""
    from medarena.sweep.cells import expand
    from medarena.sweep.spec import load_sweep

    registry = ctx.obj.registry()
    sweep = load_sweep(path, registry)
    return registry, expand(registry, sweep, "cuda" if on_cluster and sweep.slurm.gpus else None)


@app.command("run")
@reports_errors
def run(
    ctx: typer.Context,
    path: Path = SWEEP_FILE,
    plan_only: bool = typer.Option(False, "--plan", help="Print the cells, items and cost only."),
    workers: int = typer.Option(1, min=1, help="Worker processes on this machine."),
    slurm: bool = typer.Option(False, help="Submit a SLURM job array (needs PostgreSQL)."),
    wait: bool = typer.Option(False, help="With --slurm: until the array's jobs have ended."),
    worker: str | None = typer.Option(None, hidden=True, help="i/n: one of --workers' workers."),
    lease: float = typer.Option(300.0, hidden=True, help="Claim lease in seconds."),
) -> None:
    """Run every cell that is not completed (a rerun or resubmission runs only what is left,
    resuming interrupted runs); cells claimed by another worker or sweep are never run twice."""
    registry, swept = _cells(ctx, path, on_cluster=slurm)
    if plan_only:
        print_plan(registry, swept)
        if slurm:
            from medarena.sweep.slurm import arrays

            for gpus, jobs in arrays(registry, swept, swept.cells).items():
                variants = sorted({job[0].variant for job in jobs})
                out.print(
                    f"SLURM array: {len(jobs)} job(s), {gpus} GPU(s) each: {', '.join(variants)}",
                    highlight=False,
                )
        return
    if slurm:
        from medarena.slurm_queue import wait_for_jobs
        from medarena.sweep.slurm import submit_sweep

        submitted = submit_sweep(registry, swept, path, ctx.obj.db_url())
        if not submitted:
            out.print(f"every cell of {swept.sweep.name} is completed: nothing to submit")
        for job in submitted:
            out.print(
                f"SLURM array job {job.job_id} submitted: {job.tasks} task(s), {job.cells} "
                f"cell(s), {job.gpus} GPU(s) each ({job.script})",
                highlight=False,
            )
        if wait and submitted:
            wait_for_jobs([job.job_id for job in submitted])
    elif worker is not None or workers == 1:
        _work_here(ctx, registry, swept, worker, lease)
    else:
        from medarena.sweep.run import start_workers

        workspace = registry.root
        codes = start_workers(workspace, ctx.obj.db_url(), path.resolve(), workers, lease)
        out.print(f"{workers} workers ended with exit codes {codes}")
    with ctx.obj.store() as store:
        from medarena.sweep.status import cell_states, counts

        states = cell_states(store, swept.cells)
    if worker is None:
        print_states(swept.sweep.name, states)
    if not slurm and counts(states)["failed"]:
        raise typer.Exit(1)


def _work_here(ctx: typer.Context, registry: Any, swept: Any, worker: str | None, lease: float):
    from medarena.cli.evaluate import progress_bar
    from medarena.sweep.run import new_holder, stop_on_sigterm, work, worker_share

    cells = swept.cells
    if worker is not None:
        index, _, count = worker.partition("/")
        if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
            raise Refused(f"--worker takes i/n with i < n, not {worker!r}")
        cells = worker_share(cells, int(index), int(count))
        stop_on_sigterm()
    holder = new_holder()
    with ctx.obj.store() as store:
        report = work(
            store,
            registry,
            swept,
            cells,
            holder=holder,
            lease_s=lease,
            progress=progress_bar,
            on_ran=lambda label: out.print(f"ran: {label}", highlight=False),
        )
    for label, error in report.failed.items():
        out.print(f"failed: {label}: {error}", highlight=False)


@app.command("status")
@reports_errors
def status(
    ctx: typer.Context,
    path: Path = SWEEP_FILE,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Each cell: done, running (who holds it), failed (why) or pending."""
    from medarena.sweep.status import cell_states

    _, swept = _cells(ctx, path, on_cluster=True)  # shown wherever the cells run
    with ctx.obj.store() as store:
        states = cell_states(store, swept.cells)
    if as_json:
        rows = [
            {
                "variant": s.cell.variant,
                "task": s.cell.task.name,
                "setting": s.cell.setting,
                "mode": s.cell.spec.scoring_mode,
                "shots": s.cell.options.shots,
                "seed": s.cell.options.seed,
                "state": s.state,
                "detail": s.detail,
                "run_id": s.run_id,
            }
            for s in states
        ]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    print_states(swept.sweep.name, states)


def print_states(name: str, states: list[Any]) -> None:
    from medarena.sweep.status import counts

    summary = ", ".join(f"{count} {state}" for state, count in counts(states).items())
    table = Table(title=f"sweep {name}: {summary}")
    for column in ("variant", "task", "setting", "mode", "shots", "seed", "state", "detail"):
        table.add_column(column)
    for s in states:
        cell = s.cell
        table.add_row(
            cell.variant,
            cell.task.name,
            cell.setting,
            cell.spec.scoring_mode,
            str(cell.options.shots),
            str(cell.options.seed),
            s.state,
            s.detail,
        )
    out.print(table)


def print_plan(registry: Any, swept: Any) -> None:
    from medarena.sweep.status import estimates

    sweep = swept.sweep
    found = estimates(registry, swept)
    api = any(e.gpu_hours is None for e in found)
    table = Table(
        title=f"plan of sweep {sweep.name}: {len(found)} runs (estimates on {sweep.hardware})"
    )
    for column in ("variant", "task", "setting", "mode", "shots", "seed", "items", "tokens"):
        table.add_column(column)
    table.add_column("GPU-hours")
    if api:
        table.add_column("cost (USD)")
    for e in found:
        cell = e.cell
        row = [
            cell.variant,
            cell.task.name,
            cell.setting,
            cell.spec.scoring_mode,
            str(cell.options.shots),
            str(cell.options.seed),
            f"{cell.items:,}",
            f"{e.tokens:,.0f}",
            "-" if e.gpu_hours is None else f"{e.gpu_hours:.3f}",
        ]
        if api:
            row.append("-" if e.cost_usd is None else f"{e.cost_usd:,.4f}")
        table.add_row(*row)
    out.print(table)
    hours = [e.gpu_hours for e in found if e.gpu_hours is not None]
    items = sum(e.cell.items for e in found)
    line = f"{len(found)} runs, {items:,} items"
    if hours:
        line += f", about {sum(hours):.2f} GPU-hours on {sweep.hardware}"
    costs = [e.cost_usd for e in found if e.gpu_hours is None]
    if costs:
        line += f", API cost about ${sum(cost or 0.0 for cost in costs):,.4f}"
        if None in costs:
            line += " (some API variants declare no prices)"
    how = "prompts at 40% MFU, generated tokens at 2% MFU (docs/PERFORMANCE.md, Baselines), "
    out.print(
        f"{line}: {how if hours else ''}4 characters per token, every generation at its full "
        "token budget",
        highlight=False,
    )
