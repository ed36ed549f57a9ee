"""`medarena train pretrain`: plan, run (one process or several), or write cluster launchers.

Imported by medarena.cli after its commands are defined. The training itself runs in separate
processes (`medarena.pretrain.train`), so one code path serves one CPU, one GPU node and SLURM.
"""

from __future__ import annotations

import json
import signal
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from medarena.cli import EXIT_FAILED, app, err, out, reports_errors
from medarena.cli_evaluate import refuses_bad_settings
from medarena.pretrain.recipe import get_recipe, load_recipes
from medarena.registry import Registry, add_family
from medarena.yaml_source import Problem, ProblemsError

train_app = typer.Typer(help="Training: continual pretraining (DeepSpeed).", no_args_is_help=True)
app.add_typer(train_app, name="train")
RUNS = "runs"


@train_app.command("pretrain")
@reports_errors
@refuses_bad_settings
def pretrain(
    ctx: typer.Context,
    recipe_name: str = typer.Option(..., "--recipe", "-r", help="A recipe under pretrain/."),
    model: str = typer.Option(..., "--model", "-m", help="The registry variant to continue."),
    hardware: str | None = typer.Option(
        None, help="Hardware profile (a100-80gb-sxm, h100-80gb-sxm); none: CPU processes."
    ),
    gpus: int | None = typer.Option(None, min=1, help="GPUs (or CPU processes) per node."),
    nodes: int = typer.Option(1, min=1, help="Machines; more than one writes cluster launchers."),
    plan_only: bool = typer.Option(False, "--plan", help="Print the resolved run; start nothing."),
    launcher: str = typer.Option("auto", help="auto, torchrun or deepspeed (on one machine)."),
    hostfile: Path | None = typer.Option(None, help="DeepSpeed hostfile for several machines."),
    output: str | None = typer.Option(
        None, help="Name of the new variant (default: model-recipe)."
    ),
) -> None:
    """Continually pretrain a registry variant on a recipe's data mix with DeepSpeed."""
    from medarena.pretrain.launch import LAUNCHERS
    from medarena.pretrain.plan import resolve

    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher must be one of {LAUNCHERS}")
    registry: Registry = ctx.obj.registry()
    recipe = get_recipe(load_recipes(registry.root), recipe_name)
    entry = registry.variant(model)
    profile = registry.hardware_profile(hardware) if hardware else None
    plan = resolve(recipe, registry, entry, hardware=profile, nodes=nodes, gpus=gpus)
    if plan_only:
        _print_plan(plan)
        return
    name = output or f"{model}-{recipe.name}"
    run_dir = registry.state_dir / RUNS / name
    run = _prepare_run(ctx, registry, recipe, entry, plan, name, run_dir)
    if nodes > 1:
        _write_cluster(run_dir, plan, hostfile, name)
        return
    _train_here(ctx, registry, run, run_dir, plan, launcher, name)


def _print_plan(plan: Any) -> None:
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


def _prepare_run(ctx, registry, recipe, entry, plan, name, run_dir) -> dict[str, Any]:
    """Reuse an unfinished run of the same name (resume), or check, pack data, record, write
    run.json. Nothing is written when a check fails."""
    run_file = run_dir / "run.json"
    if run_file.is_file():
        run = json.loads(run_file.read_text())
        if run["status"] == "completed":
            raise ValueError(f"run {name!r} is complete (its variant is registered); use --output")
        return run
    if name in registry.families or name in registry.variants:
        raise ValueError(f"{name!r} is already in the registry; choose another --output")
    location = registry.weights_location(entry.variant)
    tokenizer = _checked_tokenizer(location, recipe.tokenizer, registry, entry)
    from medarena.data.prepare import prepare, recipe_hash
    from medarena.pretrain.plan import model_shape

    packed, cleaning = prepare(
        recipe,
        tokenizer,
        registry.root / "pretrain",
        run_dir / "data",
        sequence_length=plan.sequence_length,
    )
    mix = {source: asdict(share) for source, share in packed.mix.items()}
    with ctx.obj.store() as store:
        store.sync_registry(registry)
        record = store.create_training_run(
            kind="pretrain",
            recipe_name=recipe.name,
            recipe_hash=recipe_hash(recipe),
            base_variant=entry.variant.name,
            config={
                "plan": asdict(plan),
                "recipe": recipe.model_dump(mode="json"),
                "cleaning": cleaning,
            },
            world_size=plan.world_size,
            hardware=plan.hardware,
            data_mix=mix,
        )
    hardware = registry.hardware_profile(plan.hardware) if plan.hardware else None
    run = {
        "status": "running",
        "training_run_id": record.id,
        "db_url": ctx.obj.db_url(),
        "base_location": location,
        "plan": asdict(plan),
        "optimizer": recipe.optimizer.model_dump(mode="json"),
        "schedule": recipe.schedule.model_dump(mode="json"),
        "seed": recipe.seed,
        "checkpoint_every": recipe.checkpoint_every,
        "params": model_shape(registry, entry).params,
        "peak_flops": hardware.bf16_tflops * 1e12 if hardware else None,
    }
    _write_run(run_dir, run)
    out.print(
        f"data: {packed.sequences:,} sequences of {packed.sequence_length} tokens; mix "
        + ", ".join(
            f"{s} {share.share:.1%} ({share.epochs:.2f} ep)" for s, share in packed.mix.items()
        )
    )
    return run


def _checked_tokenizer(location: str, name: str, registry: Registry, entry: Any) -> Any:
    """The recipe's tokenizer (`model`: the variant's own), refused when it has more tokens
    than the model has embeddings."""
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location if name == "model" else name)
    vocab = AutoConfig.from_pretrained(location).vocab_size
    if len(tokenizer) > vocab:
        raise ProblemsError(
            [
                Problem(
                    registry.files[f"families:{entry.family.name}"],
                    None,
                    entry.variant.name,
                    f"tokenizer has {len(tokenizer)} tokens, the model's vocabulary {vocab}",
                )
            ],
            "tokenizer / model vocabulary mismatch",
        )
    return tokenizer


def _write_run(run_dir: Path, run: dict[str, Any]) -> None:
    from medarena.yaml_source import write_atomic

    write_atomic(run_dir / "run.json", json.dumps(run, indent=2) + "\n")


def _write_cluster(run_dir: Path, plan: Any, hostfile: Path | None, name: str) -> None:
    from medarena.pretrain.launch import write_cluster_scripts

    scripts = write_cluster_scripts(
        run_dir,
        nodes=plan.nodes,
        gpus_per_node=plan.gpus_per_node,
        hostfile=hostfile,
        job_name=name,
    )
    out.print("cluster launchers written (run one of them on the cluster):")
    for script in scripts:
        out.print(f"  {script}")


def _train_here(ctx, registry, run, run_dir, plan, launcher, name) -> None:
    from medarena.pretrain.launch import run_local

    code = run_local(run_dir, plan.world_size, launcher)
    with ctx.obj.store() as store:
        if code != 0:
            status = (
                "interrupted"
                if code < 0 and -code in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
                else "failed"
            )
            store.set_training_run_status(run["training_run_id"], status)
            err.print(
                f"error: training stopped ({status}, exit {code}); run the same command "
                "again to resume from the last checkpoint",
                style="red",
            )
            raise typer.Exit(EXIT_FAILED)
        _register_output(registry, run, run_dir, name)
        store.sync_registry(ctx.obj.registry())
        done = store.finish_training_run(
            run["training_run_id"], status="completed", output_variant=name
        )
    run["status"] = "completed"
    _write_run(run_dir, run)
    out.print(
        f"done: {done.tokens_seen:,} tokens; registered variant {name} "
        f"(parent {done.base_variant}) from {run_dir / 'export'}"
    )


def _register_output(registry: Registry, run: dict[str, Any], run_dir: Path, name: str) -> None:
    from medarena.schemas import ModelFamily

    base = registry.variant(run["plan"]["variant"])
    variant = base.variant.model_dump(mode="json", exclude_none=True)
    variant.update(
        name=name,
        source={"kind": "local", "path": str((run_dir / "export").relative_to(registry.root))},
        parent=base.variant.name,
        recipes=[run["plan"]["recipe"]],
        dtype="bfloat16" if run["plan"]["bf16"] else "float32",
    )
    variant.pop("quantization", None)
    variant.pop("notes", None)
    family = ModelFamily.model_validate(
        {
            "name": name,
            "display_name": f"{base.variant.name} + {run['plan']['recipe']} (local run)",
            "developer": "medarena (local training run)",
            "license": base.family.license,
            "continued_from": base.family.name,
            "description": f"Continual pretraining of {base.variant.name} on the "
            f"{run['plan']['recipe']} mix; training run {run['training_run_id']}.",
            "variants": [variant],
        }
    )
    add_family(registry, family, origin=f"training run {run['training_run_id']}")


def demo_pretraining(ctx: typer.Context, model: str, recipe_name: str) -> str | None:
    """`medarena demo`'s training step: the recipe on one CPU process, once. Returns the
    trained variant's name (None when the workspace ships no recipes)."""
    registry: Registry = ctx.obj.registry()
    recipes = load_recipes(registry.root)
    if recipe_name not in recipes:
        out.print(f"no recipe {recipe_name!r} under {registry.root / 'pretrain'}: skipped")
        return None
    name = f"{model}-{recipe_name}"
    if name in registry.variants:
        out.print(f"{name} is already trained and registered: reused")
        return name
    pretrain(
        ctx,
        recipe_name=recipe_name,
        model=model,
        hardware=None,
        gpus=None,
        nodes=1,
        plan_only=False,
        launcher="auto",
        hostfile=None,
        output=None,
    )
    return name
