"""`medarena train pretrain` and `medarena train instruct`: plan, run (one process or several),
or write cluster launchers. The work is done by `medarena.training.service`; these commands
parse options and print what it reports."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from medarena.cli.common import out, reports_errors
from medarena.errors import Refused
from medarena.training.service import (
    Placement,
    PreparedRun,
    plan_instruct,
    plan_pretrain,
    plan_pretrain_data,
    prepare_instruct,
    prepare_pretrain,
    register_outputs,
    submit_to_slurm,
    train_locally,
    write_cluster,
)

app = typer.Typer(
    help="Training: continual pretraining (DeepSpeed), LoRA instruction tuning (PEFT).",
    no_args_is_help=True,
)
# where and how a run goes: the same options for both kinds of training
HARDWARE = typer.Option(
    None, help="Hardware profile (a100-80gb-sxm, h100-80gb-sxm); none: CPU processes."
)
GPUS = typer.Option(None, min=1, help="GPUs (or CPU processes) per node.")
NODES = typer.Option(1, min=1, help="Machines; more than one writes cluster launchers.")
PLAN_ONLY = typer.Option(False, "--plan", help="Print the resolved run; start nothing.")
LAUNCHER = typer.Option("auto", help="auto, torchrun or deepspeed (on one machine).")
HOSTFILE = typer.Option(None, help="DeepSpeed hostfile for several machines.")
SUBMIT = typer.Option(
    False, "--submit", help="Submit the run to SLURM (sbatch); the job registers the outputs."
)
WAIT = typer.Option(False, "--wait", help="With --submit: return when the job has ended.")


@app.command("pretrain")
@reports_errors
def pretrain(
    ctx: typer.Context,
    recipe_name: str = typer.Option(..., "--recipe", "-r", help="A recipe under pretrain/."),
    model: str = typer.Option(..., "--model", "-m", help="The registry variant to continue."),
    hardware: str | None = HARDWARE,
    gpus: int | None = GPUS,
    nodes: int = NODES,
    plan_only: bool = PLAN_ONLY,
    launcher: str = LAUNCHER,
    hostfile: Path | None = HOSTFILE,
    submit: bool = SUBMIT,
    wait: bool = WAIT,
    output: str | None = typer.Option(
        None, help="Name of the new variant (default: model-recipe)."
    ),
    workers: int | None = typer.Option(
        None, min=1, help="Data preparation tasks run at once (default: the machine's cores)."
    ),
) -> None:
    """Continually pretrain a registry variant on a recipe's data mix with DeepSpeed."""
    registry = ctx.obj.registry()
    where = Placement(hardware, gpus, nodes, launcher)
    check_submission(submit, wait)
    if plan_only:
        print_plan(plan_pretrain(registry, recipe_name, model, where))
        print_data_plan(plan_pretrain_data(registry, recipe_name, where))
        return
    prepared = prepare_pretrain(
        registry, ctx.obj.db_url(), recipe_name, model, where, output, workers=workers
    )
    run_prepared(registry, prepared, hostfile, launcher, submit=submit, wait=wait)


@app.command("instruct")
@reports_errors
def instruct(
    ctx: typer.Context,
    recipe_name: str = typer.Option(..., "--recipe", "-r", help="A recipe under instruct/."),
    model: str = typer.Option(..., "--model", "-m", help="The registry variant to tune."),
    hardware: str | None = HARDWARE,
    gpus: int | None = GPUS,
    nodes: int = NODES,
    plan_only: bool = PLAN_ONLY,
    launcher: str = LAUNCHER,
    hostfile: Path | None = HOSTFILE,
    submit: bool = SUBMIT,
    wait: bool = WAIT,
    output: str | None = typer.Option(
        None, help="Name of the new variant (default: model-recipe); its adapter: NAME-adapter."
    ),
) -> None:
    """LoRA-tune a registry variant on a recipe's instruction data (PEFT, optionally DeepSpeed),
    then register the merged model and the adapter as variants."""
    registry = ctx.obj.registry()
    where = Placement(hardware, gpus, nodes, launcher)
    check_submission(submit, wait)
    if plan_only:
        planned = plan_instruct(registry, recipe_name, model, where)
        out.print(planned.data_summary)
        print_plan(planned.plan)
        return
    prepared = prepare_instruct(registry, ctx.obj.db_url(), recipe_name, model, where, output)
    run_prepared(registry, prepared, hostfile, launcher, submit=submit, wait=wait)


def check_submission(submit: bool, wait: bool) -> None:
    """Refuse --submit / --wait before anything is prepared."""
    if wait and not submit:
        raise Refused("--wait goes with --submit")
    if submit:
        from medarena.training.slurm import require_sbatch

        require_sbatch()


def run_prepared(
    registry: Any,
    prepared: PreparedRun,
    hostfile: Path | None,
    launcher: str = "auto",
    *,
    submit: bool = False,
    wait: bool = False,
) -> None:
    """Report the prepared run, then submit it to SLURM, write cluster launchers (several
    nodes) or train here and register the outputs."""
    if prepared.resumed:
        out.print(
            f"resuming run {prepared.name} from {prepared.run_dir} "
            f"({prepared.checkpoint or 'no checkpoint yet'})"
        )
    else:
        out.print(prepared.data_summary)
    if submit:
        job = submit_to_slurm(prepared, registry.root, wait=wait)
        state = "ended" if wait else "submitted; it registers the outputs when it ends"
        out.print(f"SLURM job {job.job_id} {state} ({job.script}); log: {job.log}")
        return
    if prepared.contract.plan.nodes > 1:
        out.print("cluster launchers written (run one of them on the cluster):")
        for script in write_cluster(prepared, hostfile, registry.root):
            out.print(f"  {script}")
        return
    train_locally(prepared, launcher)
    done = register_outputs(registry, prepared)
    out.print(
        f"done: {done.tokens_seen:,} tokens; registered {', '.join(done.registered)} "
        f"(parent {done.base_variant}) from {prepared.run_dir}"
    )


def print_data_plan(plan: Any) -> None:
    table = Table(title="data preparation", show_header=False)
    rows = {
        "corpus bytes (local)": plan.corpus_bytes,
        "expected tokens": plan.expected_tokens,
        "CPU core-hours": plan.core_hours,
        f"wall hours on {plan.cores} cores": plan.wall_hours,
        "peak memory per worker (MiB)": plan.peak_memory_mib_per_worker,
        "intermediate disk (GiB)": plan.intermediate_disk_gib,
    }
    for key, value in rows.items():
        table.add_row(key, "unknown" if value is None else f"{value:,.1f}")
    table.add_row("notes", "\n".join(plan.notes))
    out.print(table)


def print_plan(plan: Any) -> None:
    table = Table(title=f"plan: {plan.recipe} on {plan.variant}", show_header=False)
    for key, value in asdict(plan).items():
        if key == "memory_gib" and value:
            value = ", ".join(f"{k} {v:.1f}" for k, v in value.items()) + (
                f" (total {plan.memory_gib.total:.1f} GiB per GPU)"
            )
        if isinstance(value, float) and key != "lr":
            value = f"{value:,.1f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        table.add_row(key, "\n".join(value) if isinstance(value, list) else str(value))
    out.print(table)
