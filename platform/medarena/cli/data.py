"""`medarena data prepare`: the data stages of a pretraining run (clean, dedup, tokenize), here
or on a SLURM cluster as datatrove job arrays; `medarena train pretrain` of the same run then
only mixes and packs. The work is done by `medarena.training.service.stage_pretrain_data`."""

from __future__ import annotations

import shutil

import typer

from medarena.cli.common import out, reports_errors
from medarena.errors import Refused

app = typer.Typer(help="Pretraining data: preparation here or on SLURM.", no_args_is_help=True)


@app.command("prepare")
@reports_errors
def prepare(
    ctx: typer.Context,
    recipe_name: str = typer.Option(..., "--recipe", "-r", help="A recipe under pretrain/."),
    model: str = typer.Option(..., "--model", "-m", help="The variant `train pretrain` continues."),
    output: str | None = typer.Option(
        None, help="The run's name, as `train pretrain --output` (default: model-recipe)."
    ),
    tasks: int | None = typer.Option(
        None,
        min=1,
        help="Tasks the work is split in; the same count gives the same shards (default: the "
        "run's earlier count, else --workers).",
    ),
    workers: int | None = typer.Option(
        None, min=1, help="Tasks run at once here (default: the machine's cores)."
    ),
    slurm: bool = typer.Option(
        False, "--slurm", help="Submit the stages to SLURM as dependent job arrays."
    ),
    partition: str | None = typer.Option(None, help="With --slurm (default: the cluster's)."),
    time: str = typer.Option("24:00:00", help="With --slurm: the time limit of each task."),
    mem_per_cpu_gb: int = typer.Option(2, min=1, help="With --slurm: memory per CPU (GB)."),
    wait: bool = typer.Option(False, "--wait", help="With --slurm: return when the jobs ended."),
) -> None:
    """Clean, deduplicate and tokenize a recipe's data for `train pretrain -r R -m M`."""
    from medarena.training.service import stage_pretrain_data

    if not slurm and (wait or partition):
        raise Refused("--wait and --partition go with --slurm")
    settings = None
    if slurm:
        from medarena.data.slurm import SlurmSettings

        if shutil.which("sbatch") is None:
            raise Refused("--slurm needs SLURM's `sbatch` on PATH: run on the cluster's login node")
        settings = SlurmSettings(partition, time, 1, mem_per_cpu_gb)
    registry = ctx.obj.registry()
    staged = stage_pretrain_data(
        registry,
        recipe_name,
        model,
        output,
        workers=workers,
        tasks=tasks,
        slurm=settings,
        wait=wait,
    )
    for job in staged.jobs:
        state = "already complete" if job.job_id is None else f"SLURM job {job.job_id}"
        out.print(f"stage {job.stage} ({job.tasks} tasks): {state}")
    if staged.cleaning is None:
        out.print(f"submitted; logs under {staged.work / 'logs'}; once the jobs have ended:")
    else:
        kept = sum(staged.cleaning["documents_out"].values())
        read = sum(staged.cleaning["documents_in"].values())
        out.print(f"{staged.tasks} tasks done: {kept:,} of {read:,} documents kept; next:")
    named = f" --output {output}" if output else ""
    out.print(f"  medarena train pretrain -r {recipe_name} -m {model}{named}   # mixes and packs")
