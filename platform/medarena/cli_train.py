"""`medarena train pretrain` and `medarena train instruct`: plan, run (one process or several),
or write cluster launchers. Both kinds share this flow; what differs is how the data is prepared
and what is registered at the end.

Imported by medarena.cli after its commands are defined. The training itself runs in separate
processes (`medarena.pretrain.train`, `medarena.instruct.train`), so one code path serves one
CPU, one GPU node and SLURM.
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
from medarena.errors import Problem, ProblemsError

train_app = typer.Typer(
    help="Training: continual pretraining (DeepSpeed), LoRA instruction tuning (PEFT).",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")
RUNS = "runs"
MODULES = {"pretrain": "medarena.pretrain.train", "instruct": "medarena.instruct.train"}
# where and how a run goes: the same options for both kinds of training
HARDWARE = typer.Option(
    None, help="Hardware profile (a100-80gb-sxm, h100-80gb-sxm); none: CPU processes."
)
GPUS = typer.Option(None, min=1, help="GPUs (or CPU processes) per node.")
NODES = typer.Option(1, min=1, help="Machines; more than one writes cluster launchers.")
PLAN_ONLY = typer.Option(False, "--plan", help="Print the resolved run; start nothing.")
LAUNCHER = typer.Option("auto", help="auto, torchrun or deepspeed (on one machine).")
HOSTFILE = typer.Option(None, help="DeepSpeed hostfile for several machines.")


@train_app.command("pretrain")
@reports_errors
@refuses_bad_settings
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
    output: str | None = typer.Option(
        None, help="Name of the new variant (default: model-recipe)."
    ),
) -> None:
    """Continually pretrain a registry variant on a recipe's data mix with DeepSpeed."""
    from medarena.training.plan import resolve

    _check_launcher(launcher)
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
    run = _resumable(registry, run_dir, [name]) or _prepare_run(
        ctx, registry, recipe, entry, plan, run_dir
    )
    if nodes > 1:
        _write_cluster("pretrain", run_dir, run, hostfile, name)
        return
    _train_here(ctx, "pretrain", run, run_dir, launcher)
    variants = [_output_variant(registry, run, run_dir / "export", name)]
    _finish(ctx, registry, run, run_dir, name, variants, "Continual pretraining")


def _check_launcher(launcher: str) -> None:
    from medarena.training.launch import LAUNCHERS

    if launcher not in LAUNCHERS:
        raise ValueError(f"--launcher must be one of {LAUNCHERS}")


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


def _resumable(registry: Registry, run_dir: Path, names: list[str]) -> dict[str, Any] | None:
    """run.json of an unfinished run in `run_dir` (the same command resumes it), or None for a
    new run, whose output `names` must be free in the registry."""
    run_file = run_dir / "run.json"
    if run_file.is_file():
        run = json.loads(run_file.read_text())
        if run["status"] == "completed":
            raise ValueError(
                f"run {run_dir.name!r} is complete (its output is registered); use --output"
            )
        from medarena.training.loop import check_checkpoint

        tag = check_checkpoint(run_dir)
        out.print(f"resuming run {run_dir.name} from {run_dir} ({tag or 'no checkpoint yet'})")
        return run
    for name in names:
        if name in registry.families or name in registry.variants:
            raise ValueError(f"{name!r} is already in the registry; choose another --output")
    return None


def _prepare_run(ctx, registry, recipe, entry, plan, run_dir) -> dict[str, Any]:
    """Check, pack the data, record the run, write run.json. Nothing is written when a check
    fails."""
    location = registry.weights_location(entry.variant)
    tokenizer = _checked_tokenizer(location, recipe.tokenizer, registry, entry)
    from medarena.data.prepare import prepare

    packed, cleaning = prepare(
        recipe,
        tokenizer,
        registry.root / "pretrain",
        run_dir / "data",
        sequence_length=plan.sequence_length,
    )
    mix = {source: asdict(share) for source, share in packed.mix.items()}
    run = _start_run(
        ctx, registry, recipe, entry, plan, "pretrain", location, {"cleaning": cleaning}, mix
    )
    _write_run(run_dir, run)
    out.print(
        f"data: {packed.sequences:,} sequences of {packed.sequence_length} tokens; mix "
        + ", ".join(
            f"{s} {share.share:.1%} ({share.epochs:.2f} ep)" for s, share in packed.mix.items()
        )
    )
    return run


def _start_run(
    ctx,
    registry: Registry,
    recipe: Any,
    entry: Any,
    plan: Any,
    kind: str,
    location: str,
    config: dict[str, Any],
    data_mix: dict[str, Any],
    **settings: Any,
) -> dict[str, Any]:
    """Record the training run in the store; returns the run.json the ranks read (the plan,
    the recipe's optimizer / schedule / seed, where the base is, plus `settings`)."""
    from medarena.training.plan import model_shape

    with ctx.obj.store() as store:
        store.sync_registry(registry)
        record = store.create_training_run(
            kind=kind,
            recipe_name=recipe.name,
            recipe_hash=recipe.content_hash(),
            base_variant=entry.variant.name,
            config={"plan": asdict(plan), "recipe": recipe.model_dump(mode="json"), **config},
            world_size=plan.world_size,
            hardware=plan.hardware,
            data_mix=data_mix,
        )
    hardware = registry.hardware_profile(plan.hardware) if plan.hardware else None
    return {
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
        **settings,
    }


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


def _write_cluster(kind: str, run_dir: Path, run: dict[str, Any], hostfile, name: str) -> None:
    from medarena.training.launch import write_cluster_scripts

    scripts = write_cluster_scripts(
        MODULES[kind],
        run_dir,
        nodes=run["plan"]["nodes"],
        gpus_per_node=run["plan"]["gpus_per_node"],
        hostfile=hostfile,
        job_name=name,
    )
    out.print("cluster launchers written (run one of them on the cluster):")
    for script in scripts:
        out.print(f"  {script}")


def _train_here(ctx, kind: str, run: dict[str, Any], run_dir: Path, launcher: str) -> None:
    """Start the run's ranks on this machine (as many as its plan has); a failed or killed run
    is marked and exits non-zero."""
    from medarena.training.launch import run_local

    code = run_local(MODULES[kind], run_dir, run["plan"]["world_size"], launcher)
    if code == 0:
        return
    status = (
        "interrupted"
        if code < 0 and -code in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
        else "failed"
    )
    with ctx.obj.store() as store:
        store.set_training_run_status(run["training_run_id"], status)
    err.print(
        f"error: training stopped ({status}, exit {code}); run the same command "
        "again to resume from the last checkpoint",
        style="red",
    )
    raise typer.Exit(EXIT_FAILED)


def _finish(ctx, registry, run, run_dir, name, variants: list[dict[str, Any]], what: str) -> None:
    """Register the outputs as a new family and close the training run."""
    _register_family(registry, run, name, variants, what)
    with ctx.obj.store() as store:
        store.sync_registry(ctx.obj.registry())
        done = store.finish_training_run(
            run["training_run_id"],
            status="completed",
            output_variant=variants[0]["name"],
            also_produced=[v["name"] for v in variants[1:]],
        )
    run["status"] = "completed"
    _write_run(run_dir, run)
    out.print(
        f"done: {done.tokens_seen:,} tokens; registered {', '.join(v['name'] for v in variants)} "
        f"(parent {done.base_variant}) from {run_dir}"
    )


def _output_variant(
    registry: Registry, run: dict[str, Any], folder: Path, name: str, **changes: Any
) -> dict[str, Any]:
    """A registry variant for trained weights in `folder`, derived from the base variant."""
    base = registry.variant(run["plan"]["variant"])
    variant = base.variant.model_dump(mode="json", exclude_none=True)
    variant.update(
        name=name,
        source={"kind": "local", "path": str(folder.relative_to(registry.root))},
        parent=base.variant.name,
        recipes=[run["plan"]["recipe"]],
        dtype="bfloat16" if run["plan"]["bf16"] else "float32",
        **changes,
    )
    variant.pop("quantization", None)
    variant.pop("notes", None)
    return variant


def _register_family(registry, run, name: str, variants: list[dict[str, Any]], what: str) -> None:
    from medarena.schemas import ModelFamily

    base = registry.variant(run["plan"]["variant"])
    family = ModelFamily.model_validate(
        {
            "name": name,
            "display_name": f"{base.variant.name} + {run['plan']['recipe']} (local run)",
            "developer": "medarena (local training run)",
            "license": base.family.license,
            "continued_from": base.family.name,
            "description": f"{what} of {base.variant.name} with recipe "
            f"{run['plan']['recipe']}; training run {run['training_run_id']}.",
            "variants": variants,
        }
    )
    if registry.families.get(name) == family:
        # written by this run before a kill stopped it short of closing the run: the card is
        # this run's own, so the rerun finishes instead of refusing a duplicate
        return
    add_family(registry, family, origin=f"training run {run['training_run_id']}")


@train_app.command("instruct")
@reports_errors
@refuses_bad_settings
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
    output: str | None = typer.Option(
        None, help="Name of the new variant (default: model-recipe); its adapter: NAME-adapter."
    ),
) -> None:
    """LoRA-tune a registry variant on a recipe's instruction data (PEFT, optionally DeepSpeed),
    then register the merged model and the adapter as variants."""
    from medarena.instruct.recipe import get_recipe as get_instruct_recipe
    from medarena.instruct.recipe import load_recipes as load_instruct_recipes

    _check_launcher(launcher)
    registry: Registry = ctx.obj.registry()
    recipe = get_instruct_recipe(load_instruct_recipes(registry.root), recipe_name)
    entry = registry.variant(model)
    profile = registry.hardware_profile(hardware) if hardware else None
    name = output or f"{model}-{recipe.name}"
    run_dir = registry.state_dir / RUNS / name
    run = None if plan_only else _resumable(registry, run_dir, [name, f"{name}-adapter"])
    if run is None:
        run = _prepare_instruct(
            ctx, registry, recipe, entry, profile, nodes, gpus, run_dir, plan_only
        )
        if run is None:
            return
    if nodes > 1:
        _write_cluster("instruct", run_dir, run, hostfile, name)
        return
    _train_here(ctx, "instruct", run, run_dir, launcher)
    _finish(
        ctx,
        registry,
        run,
        run_dir,
        name,
        _instruct_outputs(registry, run, run_dir, name),
        "LoRA instruction tuning",
    )


def _prepare_instruct(ctx, registry, recipe, entry, profile, nodes, gpus, run_dir, plan_only):
    """Check everything, encode the data, resolve the plan; then either print the plan (and
    keep nothing) or record the run and write run.json. A failed check leaves nothing behind."""
    import shutil
    import tempfile

    from medarena.instruct import prepare as prep
    from medarena.training.plan import PlanError, resolve

    template_name = recipe.chat_template or entry.variant.chat_template
    if template_name is None:
        raise ValueError(
            f"recipe {recipe.name!r} names no chat_template and {entry.variant.name} has none; "
            "set chat_template in the recipe"
        )
    template = registry.chat_template(template_name)
    if recipe.qlora is not None and (profile is None or recipe.deepspeed.enabled):
        raise PlanError(
            "QLoRA needs a CUDA GPU (--hardware) and a plain loop (deepspeed.enabled: false): "
            "bitsandbytes 4-bit weights are not sharded by ZeRO here"
        )
    location = registry.weights_location(entry.variant)
    layers = prep.linear_layers(location)
    targets = prep.check_targets(recipe.lora, layers, f"instruct/{recipe.name}.yaml")
    trainable = prep.adapter_parameters(layers, targets, recipe.lora.r)
    sizes = {"trainable": trainable, "weight_bytes": 0.5 if recipe.qlora else 2.0}
    first = resolve(recipe, registry, entry, hardware=profile, nodes=nodes, gpus=gpus, **sizes)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.preparing-"))
    try:
        tokenizer, added = prep.prepare_tokenizer(location, template, staging)
        data = prep.prepare_data(
            recipe, template, tokenizer, registry.root, staging / "data", first.sequence_length
        )
        plan = resolve(
            recipe,
            registry,
            entry,
            hardware=profile,
            nodes=nodes,
            gpus=gpus,
            tokens=data.examples * first.sequence_length,
            **sizes,
        )
        out.print(
            f"data: {data.examples:,} examples ({data.tokens:,} tokens, {data.answer_tokens:,} "
            f"in replies); "
            + ", ".join(f"{k} {v}" for k, v in data.per_source.items())
            + f"; {data.truncated} cut at {plan.sequence_length} tokens, {data.dropped} dropped"
            + (f"; added tokens {added}" if added else "")
        )
        if plan_only:
            _print_plan(plan)
            return None
        prep.write_summary(data, staging / "data")
        run = _start_run(
            ctx,
            registry,
            recipe,
            entry,
            plan,
            "instruct",
            location,
            {"chat_template": template.name, "data": asdict(data), "added_tokens": added},
            {source: {"examples": count} for source, count in data.per_source.items()},
            lora={**recipe.lora.model_dump(mode="json"), "target_modules": targets},
            qlora=recipe.qlora.model_dump(mode="json") if recipe.qlora else None,
            chat_template=template.name,
            added_tokens=added,
            trainable_params=trainable,
        )
        _write_run(staging, run)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        staging.rename(run_dir)
        return run
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _instruct_outputs(registry, run, run_dir: Path, name: str) -> list[dict[str, Any]]:
    """Merge the adapter into standalone weights; the merged model and the adapter become
    variants, both rendering prompts with the run's chat template."""
    from medarena.adapters import merge_adapter
    from medarena.instruct.train import ADAPTER

    merged = merge_adapter(run["base_location"], run_dir / ADAPTER, run_dir / "merged")
    tuned = {"chat_template": run["chat_template"], "instruction_tuned": True}
    adapter = _output_variant(registry, run, run_dir / ADAPTER, f"{name}-adapter", **tuned)
    adapter["source"] = {
        "kind": "adapter",
        "path": adapter["source"]["path"],
        "base": run["plan"]["variant"],
    }
    return [_output_variant(registry, run, merged, name, **tuned), adapter]


def demo_training(
    ctx: typer.Context, kind: str, model: str, recipe_name: str, output: str
) -> str | None:
    """`medarena demo`'s training steps: a recipe (`kind` pretrain or instruct) on one CPU
    process, once. Returns the trained variant's name (None when the workspace lacks the
    recipe)."""
    from medarena.instruct.recipe import load_recipes as load_instruct_recipes

    registry: Registry = ctx.obj.registry()
    recipes = (load_recipes if kind == "pretrain" else load_instruct_recipes)(registry.root)
    if recipe_name not in recipes:
        out.print(f"no recipe {recipe_name!r} under {registry.root / kind}: skipped")
        return None
    if output in registry.variants:
        out.print(f"{output} is already trained and registered: reused")
        return output
    command = pretrain if kind == "pretrain" else instruct
    command(
        ctx,
        recipe_name=recipe_name,
        model=model,
        hardware=None,
        gpus=None,
        nodes=1,
        plan_only=False,
        launcher="auto",
        hostfile=None,
        output=output,
    )
    return output
