"""Training runs as plain functions: plan, prepare (check, prepare the data, record the run,
write the run contract), launch on this machine or write cluster launchers, register the outputs.

Continual pretraining and instruction tuning share this flow; what differs is how the data is
prepared (`medarena.data` packs token shards, `medarena.instruct.prepare` encodes chat examples)
and what is registered at the end (one model; the merged model and its adapter). The training
itself runs in separate processes (`python -m medarena.pretrain.train RUN_DIR`, ...), so one code
path serves one CPU process, one GPU node and a cluster. The CLI (`medarena train ...`) and the
demo call these functions; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import shutil
import signal
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from medarena.data.estimate import DataPlan
from medarena.errors import PlanError, Problem, ProblemsError, Refused, TrainingFailed
from medarena.registry import Registry, VariantEntry, add_family, load_registry
from medarena.training.contract import LoraContract, QloraContract, RunContract
from medarena.training.launch import LAUNCHERS
from medarena.training.plan import Plan, known_shape, model_shape, resolve, trainable_size

if TYPE_CHECKING:
    from medarena.data.prepare import StagedData
    from medarena.data.slurm import SlurmSettings

Kind = Literal["pretrain", "instruct"]
RUNS = "runs"  # under the workspace's .medarena/
MODULES: dict[str, str] = {
    "pretrain": "medarena.pretrain.train",
    "instruct": "medarena.instruct.train",
}


@dataclass(frozen=True)
class Placement:
    """Where and how a run goes: the same options for both kinds of training."""

    hardware: str | None = None  # a hardware profile; None: CPU processes
    gpus: int | None = None  # per node (or CPU processes)
    nodes: int = 1  # more than one: cluster launchers are written instead of starting
    launcher: str = "auto"  # auto, torchrun or deepspeed (one machine)

    def check(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise Refused(f"--launcher must be one of {LAUNCHERS}")


@dataclass(frozen=True)
class PreparedRun:
    """A run ready to start (new, or found unfinished and resumed)."""

    name: str  # the output variant's name
    run_dir: Path
    contract: RunContract
    resumed: bool
    checkpoint: str | None = None  # tag a resumed run continues from
    data_summary: str | None = None  # what the data preparation produced (new runs)


@dataclass(frozen=True)
class FinishedRun:
    tokens_seen: int
    base_variant: str
    registered: list[str]


@dataclass(frozen=True)
class InstructPlan:
    plan: Plan
    data_summary: str


def run_dir_of(registry: Registry, name: str) -> Path:
    return registry.state_dir / RUNS / name


# ---------------------------------------------------------------------------- pretraining


def plan_pretrain(registry: Registry, recipe_name: str, model: str, where: Placement) -> Plan:
    """The resolved plan (batches, ZeRO stage, memory, steps, GPU-hours); nothing is written."""
    from medarena.pretrain.recipe import get_recipe, load_recipes

    where.check()
    recipe = get_recipe(load_recipes(registry.root), recipe_name)
    return _resolve(registry, recipe, registry.variant(model), where)


def plan_pretrain_data(registry: Registry, recipe_name: str, where: Placement) -> DataPlan:
    """The data stage of the plan: corpus bytes, expected tokens, CPU core-hours and wall time
    on the chosen nodes, peak memory per worker, intermediate disk; nothing is read."""
    from medarena.data.estimate import plan_data
    from medarena.data.prepare import cores
    from medarena.pretrain.recipe import get_recipe, load_recipes

    recipe = get_recipe(load_recipes(registry.root), recipe_name)
    return plan_data(
        recipe.sources,
        recipe.published_tokens(),
        registry.root / "pretrain",
        nodes=where.nodes,
        cores_per_node=cores(),
    )


def prepare_pretrain(
    registry: Registry,
    db_url: str,
    recipe_name: str,
    model: str,
    where: Placement,
    output: str | None = None,
    *,
    workers: int | None = None,
) -> PreparedRun:
    """Resume the unfinished run of the same name, or check, pack the data (`workers` tasks at
    once, default: the machine's cores), record the run and write its contract. Nothing is
    written when a check fails."""
    from medarena.data.prepare import prepare
    from medarena.pretrain.recipe import get_recipe, load_recipes

    where.check()
    recipe = get_recipe(load_recipes(registry.root), recipe_name)
    entry = registry.variant(model)
    plan = _resolve(registry, recipe, entry, where)
    name = output or f"{model}-{recipe.name}"
    run_dir = run_dir_of(registry, name)
    resumed = _resumable(registry, run_dir, [name])
    if resumed is not None:
        return resumed
    location = registry.weights_location(entry.variant)
    tokenizer = _checked_tokenizer(location, recipe.tokenizer, registry, entry)
    packed, cleaning = prepare(
        recipe,
        tokenizer,
        registry.root / "pretrain",
        run_dir / "data",
        sequence_length=plan.sequence_length,
        workers=workers,
    )
    mix = {source: asdict(share) for source, share in packed.mix.items()}
    contract = _start_run(
        registry, db_url, recipe, entry, plan, "pretrain", location, {"cleaning": cleaning}, mix
    )
    contract.write(run_dir)
    summary = f"data: {packed.sequences:,} sequences of {packed.sequence_length} tokens; mix " + (
        ", ".join(
            f"{s} {share.share:.1%} ({share.epochs:.2f} ep)" for s, share in packed.mix.items()
        )
    )
    return PreparedRun(name, run_dir, contract, resumed=False, data_summary=summary)


def stage_pretrain_data(
    registry: Registry,
    recipe_name: str,
    model: str,
    output: str | None = None,
    *,
    workers: int | None = None,
    tasks: int | None = None,
    slurm: SlurmSettings | None = None,
    wait: bool = False,
) -> StagedData:
    """The data stages of the run `prepare_pretrain` would start (clean, dedup, tokenize; not
    the mix and packing) in its data folder: here, or submitted to SLURM (with `wait`: until the
    jobs ended). `prepare_pretrain` of the same run then only mixes and packs."""
    from medarena.data.prepare import prepare_stages
    from medarena.pretrain.recipe import get_recipe, load_recipes

    recipe = get_recipe(load_recipes(registry.root), recipe_name)
    entry = registry.variant(model)
    name = output or f"{model}-{recipe.name}"
    run_dir = run_dir_of(registry, name)
    if RunContract.exists(run_dir):
        raise Refused(f"run {name!r} has its data packed already; `train pretrain` resumes it")
    location = registry.weights_location(entry.variant)
    tokenizer = _checked_tokenizer(location, recipe.tokenizer, registry, entry)
    return prepare_stages(
        recipe,
        tokenizer,
        registry.root / "pretrain",
        run_dir / "data",
        workers=workers,
        tasks=tasks,
        slurm=slurm,
        wait=wait,
    )


# ------------------------------------------------------------------------ instruction tuning


def plan_instruct(
    registry: Registry, recipe_name: str, model: str, where: Placement
) -> InstructPlan:
    """The plan with the data encoded to count its tokens (in a temporary folder, removed).
    Offline: a config or tokenizer not on disk is not fetched; the plan then assumes the
    published shape of the nearest size and counts examples without encoding them, and says so
    in its notes."""
    where.check()
    recipe, entry = _instruct_inputs(registry, recipe_name, model)
    checked = _check_instruct(registry, recipe, entry, where, local_only=True)
    from medarena.instruct import prepare as prep

    with tempfile.TemporaryDirectory(prefix="medarena-plan-") as staging:
        tokenized = prep.prepare_tokenizer(
            checked.location, checked.template, Path(staging), local_only=True
        )
        if tokenized is not None:
            plan, summary, _ = _encode_instruct(
                registry, recipe, entry, where, checked, tokenized, Path(staging)
            )
            return InstructPlan(_noted(plan, checked.assumed), summary)
    per_source = prep.count_examples(recipe, checked.template, registry.root)
    examples = sum(per_source.values())
    first = _resolve(registry, recipe, entry, where, **checked.sizes)
    plan = _resolve(
        registry, recipe, entry, where, tokens=examples * first.sequence_length, **checked.sizes
    )
    assumed = [
        *checked.assumed,
        f"data not encoded: no tokenizer of {checked.location} on disk; steps assume all "
        f"{examples:,} examples are kept (token counts and cuts unknown)",
    ]
    summary = f"data: {examples:,} examples read; " + ", ".join(
        f"{k} {v}" for k, v in per_source.items()
    )
    return InstructPlan(_noted(plan, assumed), summary)


def _noted(plan: Plan, notes: list[str]) -> Plan:
    return dataclasses.replace(plan, notes=[*plan.notes, *notes])


def prepare_instruct(
    registry: Registry,
    db_url: str,
    recipe_name: str,
    model: str,
    where: Placement,
    output: str | None = None,
) -> PreparedRun:
    """Resume the unfinished run of the same name, or check everything, encode the data, record
    the run and write its contract. A failed check leaves nothing behind (the data is prepared
    in a staging folder renamed into place at the end)."""
    where.check()
    recipe, entry = _instruct_inputs(registry, recipe_name, model)
    name = output or f"{model}-{recipe.name}"
    run_dir = run_dir_of(registry, name)
    resumed = _resumable(registry, run_dir, [name, f"{name}-adapter"])
    if resumed is not None:
        return resumed
    checked = _check_instruct(registry, recipe, entry, where)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.preparing-"))
    try:
        from medarena.instruct import prepare as prep

        tokenized = prep.prepare_tokenizer(checked.location, checked.template, staging)
        plan, summary, prepared = _encode_instruct(
            registry, recipe, entry, where, checked, tokenized, staging
        )
        data, added, template = prepared
        prep.write_summary(data, staging / "data")
        contract = _start_run(
            registry,
            db_url,
            recipe,
            entry,
            plan,
            "instruct",
            checked.location,
            {"chat_template": template.name, "data": asdict(data), "added_tokens": added},
            {source: {"examples": count} for source, count in data.per_source.items()},
            lora=LoraContract(
                **{**recipe.lora.model_dump(mode="json"), "target_modules": checked.targets}
            ),
            qlora=QloraContract(**recipe.qlora.model_dump(mode="json")) if recipe.qlora else None,
            chat_template=template.name,
            added_tokens=added,
            trainable_params=checked.trainable,
        )
        contract.write(staging)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        staging.rename(run_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PreparedRun(name, run_dir, contract, resumed=False, data_summary=summary)


@dataclass(frozen=True)
class _CheckedInstruct:
    location: str
    template: Any
    targets: list[str]
    trainable: int
    sizes: dict[str, float]
    assumed: list[str]  # what a plan assumed because it stayed offline


def _instruct_inputs(registry: Registry, recipe_name: str, model: str) -> tuple[Any, VariantEntry]:
    from medarena.instruct.recipe import get_recipe, load_recipes

    return get_recipe(load_recipes(registry.root), recipe_name), registry.variant(model)


def _check_instruct(
    registry: Registry, recipe: Any, entry: VariantEntry, where: Placement, *, local_only=False
) -> _CheckedInstruct:
    """The chat template, QLoRA's requirements and the LoRA targets against the model's real
    linear layers (`local_only` and no config on disk: those of the published shape nearest in
    size), before anything is encoded."""
    from medarena.instruct import prepare as prep

    params_b = trainable_size(entry)  # a model behind an API is refused before anything is read
    template_name = recipe.chat_template or entry.variant.chat_template
    if template_name is None:
        raise Refused(
            f"recipe {recipe.name!r} names no chat_template and {entry.variant.name} has none; "
            "set chat_template in the recipe"
        )
    if recipe.qlora is not None and (where.hardware is None or recipe.deepspeed.enabled):
        raise PlanError(
            "QLoRA needs a CUDA GPU (--hardware) and a plain loop (deepspeed.enabled: false): "
            "bitsandbytes 4-bit weights are not sharded by ZeRO here"
        )
    location = registry.weights_location(entry.variant)
    layers = prep.linear_layers(location, local_only=local_only)
    assumed = []
    if layers is None:
        shape = known_shape(params_b)
        layers = prep.assumed_linear_layers(shape)
        assumed.append(f"no config of {location} on disk: LoRA targets sized on {shape.source}")
    targets = prep.check_targets(recipe.lora, layers, f"instruct/{recipe.name}.yaml")
    trainable = prep.adapter_parameters(layers, targets, recipe.lora.r)
    sizes = {"trainable": trainable, "weight_bytes": 0.5 if recipe.qlora else 2.0}
    template = registry.chat_template(template_name)
    return _CheckedInstruct(location, template, targets, trainable, sizes, assumed)


def _encode_instruct(
    registry: Registry,
    recipe: Any,
    entry: VariantEntry,
    where: Placement,
    checked: _CheckedInstruct,
    tokenized: tuple[Any, list[str]],
    staging: Path,
) -> tuple[Plan, str, tuple[Any, list[str], Any]]:
    """Encoded examples into `staging` with the prepared (tokenizer, added tokens); the plan
    sized by the encoded data."""
    from medarena.instruct import prepare as prep

    first = _resolve(registry, recipe, entry, where, **checked.sizes)
    tokenizer, added = tokenized
    data = prep.prepare_data(
        recipe, checked.template, tokenizer, registry.root, staging / "data", first.sequence_length
    )
    plan = _resolve(
        registry,
        recipe,
        entry,
        where,
        tokens=data.examples * first.sequence_length,
        **checked.sizes,
    )
    summary = (
        f"data: {data.examples:,} examples ({data.tokens:,} tokens, {data.answer_tokens:,} "
        "in replies); "
        + ", ".join(f"{k} {v}" for k, v in data.per_source.items())
        + f"; {data.truncated} cut at {plan.sequence_length} tokens, {data.dropped} dropped"
        + (f"; added tokens {added}" if added else "")
    )
    return plan, summary, (data, added, checked.template)


# ---------------------------------------------------------------------------- both kinds


def _resolve(
    registry: Registry, recipe: Any, entry: VariantEntry, where: Placement, **sizes: Any
) -> Plan:
    profile = registry.hardware_profile(where.hardware) if where.hardware else None
    return resolve(
        recipe, registry, entry, hardware=profile, nodes=where.nodes, gpus=where.gpus, **sizes
    )


def _resumable(registry: Registry, run_dir: Path, names: list[str]) -> PreparedRun | None:
    """The unfinished run in `run_dir` (the same command resumes it), or None for a new run,
    whose output `names` must be free in the registry."""
    if RunContract.exists(run_dir):
        from medarena.training.loop import check_checkpoint

        contract = RunContract.read(run_dir)
        if contract.status == "completed":
            raise Refused(
                f"run {run_dir.name!r} is complete (its output is registered); use --output"
            )
        tag = check_checkpoint(run_dir)
        return PreparedRun(run_dir.name, run_dir, contract, resumed=True, checkpoint=tag)
    for name in names:
        if name in registry.families or name in registry.variants:
            raise Refused(f"{name!r} is already in the registry; choose another --output")
    return None


def _start_run(
    registry: Registry,
    db_url: str,
    recipe: Any,
    entry: VariantEntry,
    plan: Plan,
    kind: Kind,
    location: str,
    config: dict[str, Any],
    data_mix: dict[str, Any],
    **settings: Any,
) -> RunContract:
    """Record the training run in the store; returns the contract the ranks read (the plan,
    the recipe's optimizer / schedule / seed, where the base is, plus `settings`)."""
    from medarena.evaluate.protocol import sync_registry
    from medarena.store import Store

    with Store(db_url) as store:
        sync_registry(store, registry)
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
    return RunContract(
        kind=kind,
        status="running",
        training_run_id=record.id,
        db_url=db_url,
        base_location=location,
        plan=plan,
        optimizer=recipe.optimizer.model_dump(mode="json"),
        schedule=recipe.schedule.model_dump(mode="json"),
        seed=recipe.seed,
        checkpoint_every=recipe.checkpoint_every,
        params=model_shape(registry, entry).params,
        peak_flops=hardware.bf16_tflops * 1e12 if hardware else None,
        **settings,
    )


def _checked_tokenizer(location: str, name: str, registry: Registry, entry: VariantEntry) -> Any:
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


def write_cluster(prepared: PreparedRun, hostfile: Path | None, workspace: Path) -> list[Path]:
    """launch.sh (deepspeed over a hostfile) and slurm.sbatch in the run's folder."""
    from medarena.training.launch import write_cluster_scripts

    plan = prepared.contract.plan
    return write_cluster_scripts(
        MODULES[prepared.contract.kind],
        prepared.run_dir,
        nodes=plan.nodes,
        gpus_per_node=plan.gpus_per_node,
        gpu=plan.hardware is not None,
        hostfile=hostfile,
        job_name=prepared.name,
        workspace=workspace,
    )


def submit_to_slurm(prepared: PreparedRun, workspace: Path, *, wait: bool = False) -> Any:
    """Write the cluster scripts and submit slurm.sbatch (`medarena.training.slurm.Submitted`).
    The job registers the outputs itself when the ranks succeed."""
    from medarena.training.slurm import submit

    _, sbatch = write_cluster(prepared, None, workspace)
    return submit(sbatch, wait=wait)


def train_locally(prepared: PreparedRun, launcher: str = "auto") -> None:
    """Start the run's ranks on this machine (as many as its plan has). A failed or killed run
    is marked in the store and raises TrainingFailed; the same call again resumes it."""
    from medarena.training.launch import run_local

    contract = prepared.contract
    code = run_local(MODULES[contract.kind], prepared.run_dir, contract.plan.world_size, launcher)
    if code != 0:
        mark_stopped(contract, code)


def mark_stopped(contract: RunContract, code: int) -> None:
    """Record in the store that the ranks exited with `code` (killed: interrupted, else
    failed) and raise TrainingFailed."""
    from medarena.store import Store

    # a signal: negative from subprocess, 128 + signal from a shell
    signalled = -code if code < 0 else code - 128
    stopped = signalled in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
    status = "interrupted" if stopped else "failed"
    with Store(contract.db_url) as store:
        store.set_training_run_status(contract.training_run_id, status)
    raise TrainingFailed(
        f"training stopped ({status}, exit {code}); run the same command again to resume from "
        "the last checkpoint"
    )


def register_outputs(registry: Registry, prepared: PreparedRun) -> FinishedRun:
    """Register what the run produced as a new family in the workspace's generated layer
    (.medarena/models/), link it in the store and close the run. Pretraining produces one
    model; instruction tuning the merged model and its adapter."""
    from medarena.evaluate.protocol import sync_registry
    from medarena.store import Store

    contract = prepared.contract
    if contract.kind == "pretrain":
        from medarena.pretrain.train import EXPORT

        variants = [_output_variant(registry, contract, prepared.run_dir / EXPORT, prepared.name)]
        what = "Continual pretraining"
    else:
        variants = _instruct_outputs(registry, contract, prepared.run_dir, prepared.name)
        what = "LoRA instruction tuning"
    _register_family(registry, contract, prepared.name, variants, what)
    with Store(contract.db_url) as store:
        sync_registry(store, load_registry(registry.root))
        done = store.finish_training_run(
            contract.training_run_id,
            status="completed",
            output_variant=variants[0]["name"],
            also_produced=[v["name"] for v in variants[1:]],
        )
    contract.completed().write(prepared.run_dir)
    return FinishedRun(done.tokens_seen, done.base_variant, [v["name"] for v in variants])


def _output_variant(
    registry: Registry, contract: RunContract, folder: Path, name: str, **changes: Any
) -> dict[str, Any]:
    """A registry variant for trained weights in `folder`, derived from the base variant."""
    base = registry.variant(contract.plan.variant)
    variant = base.variant.model_dump(mode="json", exclude_none=True)
    variant.update(
        name=name,
        source={"kind": "local", "path": str(folder.relative_to(registry.root))},
        parent=base.variant.name,
        recipes=[contract.plan.recipe],
        dtype="bfloat16" if contract.plan.bf16 else "float32",
        **changes,
    )
    variant.pop("quantization", None)
    variant.pop("notes", None)
    return variant


def _instruct_outputs(
    registry: Registry, contract: RunContract, run_dir: Path, name: str
) -> list[dict[str, Any]]:
    """Merge the adapter into standalone weights; the merged model and the adapter become
    variants, both rendering prompts with the run's chat template."""
    from medarena.adapters import merge_adapter
    from medarena.instruct.train import ADAPTER

    merged = merge_adapter(contract.base_location, run_dir / ADAPTER, run_dir / "merged")
    tuned = {"chat_template": contract.chat_template, "instruction_tuned": True}
    adapter = _output_variant(registry, contract, run_dir / ADAPTER, f"{name}-adapter", **tuned)
    adapter["source"] = {
        "kind": "adapter",
        "path": adapter["source"]["path"],
        "base": contract.plan.variant,
    }
    return [_output_variant(registry, contract, merged, name, **tuned), adapter]


def _register_family(
    registry: Registry, contract: RunContract, name: str, variants: list[dict[str, Any]], what: str
) -> None:
    from medarena.schemas import ModelFamily

    base = registry.variant(contract.plan.variant)
    family = ModelFamily.model_validate(
        {
            "name": name,
            "display_name": f"{base.variant.name} + {contract.plan.recipe} (local run)",
            "developer": "medarena (local training run)",
            "license": base.family.license,
            "continued_from": base.family.name,
            "description": f"{what} of {base.variant.name} with recipe "
            f"{contract.plan.recipe}; training run {contract.training_run_id}.",
            "variants": variants,
        }
    )
    if registry.families.get(name) == family:
        # written by this run before a kill stopped it short of closing the run: the card is
        # this run's own, so the rerun finishes instead of refusing a duplicate
        return
    add_family(registry, family, origin=f"training run {contract.training_run_id}", generated=True)
