"""Resolve a recipe x model x hardware x cluster size into a concrete run, before any compute.
Shared by continual pretraining (every parameter trains) and LoRA tuning (a frozen base, in
16-bit or 4-bit, plus a few trainable parameters).

Memory per GPU follows the ZeRO paper's accounting for mixed-precision Adam with Psi
parameters: 2 Psi bytes of 16-bit weights, 2 Psi of gradients, 12 Psi of fp32 master weights and
Adam moments; ZeRO-1 shards the 12 Psi, ZeRO-2 also the gradients, ZeRO-3 everything.
Activations (flash/SDPA attention, so no seq^2 term) follow Korthikanti et al. 2022: about
34 x seq x hidden bytes per sequence and layer, or 2 x seq x hidden per layer plus one full
layer with activation checkpointing. The plan escalates ZeRO stage, then offloads, until it fits.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from medarena.errors import PlanError, Refused
from medarena.registry import Registry, VariantEntry
from medarena.schemas import HardwareProfile
from medarena.training.recipe import TrainingRecipe

GIB = 1024**3


@dataclass(frozen=True)
class KnownShape:
    """A published architecture, for variants whose config is not on disk (plans stay offline).
    Values from each model's config.json on the hub."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    source: str


# by parameter count in billions; the nearest one stands in for a variant without a local config
KNOWN_SHAPES = {
    1.1: KnownShape(2048, 5632, 22, 32, 4, 32000, "TinyLlama/TinyLlama-1.1B config.json"),
    6.74: KnownShape(4096, 11008, 32, 32, 32, 32000, "meta-llama/Llama-2-7b-hf config.json"),
    7.24: KnownShape(4096, 14336, 32, 32, 8, 32000, "mistralai/Mistral-7B-v0.1 config.json"),
    13.02: KnownShape(5120, 13824, 40, 40, 40, 32000, "meta-llama/Llama-2-13b-hf config.json"),
    68.98: KnownShape(8192, 28672, 80, 64, 8, 32000, "meta-llama/Llama-2-70b-hf config.json"),
}
# measured on one H100 (docs/PERFORMANCE.md, Baselines): DeepSpeed ZeRO-2, 1.1B shape, seq 2048
ASSUMED_MFU = 0.29
USABLE_MEMORY = 0.9  # leave room for the CUDA context, fragmentation and buffers


@dataclass(frozen=True)
class ModelShape:
    params: float
    hidden: int
    layers: int
    vocab: int | None = None


@dataclass(frozen=True)
class Memory:
    """Per-GPU bytes, in GiB."""

    parameters: float
    gradients: float
    optimizer: float
    activations: float

    @property
    def total(self) -> float:
        return self.parameters + self.gradients + self.optimizer + self.activations


@dataclass(frozen=True)
class Plan:
    recipe: str
    variant: str
    hardware: str | None
    nodes: int
    gpus_per_node: int
    world_size: int
    deepspeed: bool
    zero_stage: int
    offload_optimizer: bool
    offload_params: bool
    activation_checkpointing: bool
    bf16: bool
    sequence_length: int
    global_batch: int
    micro_batch: int
    grad_accum: int
    lr: float
    steps: int
    tokens: int
    memory_gib: Memory | None
    gpu_memory_gib: float | None
    gpu_hours: float | None
    trainable_params: float | None = None
    notes: list[str] = field(default_factory=list)


def trainable_size(entry: VariantEntry) -> float:
    """The variant's size in billions; a model behind an API has no weights to train."""
    variant = entry.variant
    if variant.source.kind == "api" or variant.params_b is None:
        raise Refused(
            f"{variant.name} is a model behind an API ({variant.source.base_url}): it has no "
            "weights here to train or to plan memory for; choose a variant with weights"
        )
    return variant.params_b


def model_shape(registry: Registry, entry: VariantEntry) -> ModelShape:
    """Shape from the model's config.json when it is on disk, else from the known sizes."""
    params_b = trainable_size(entry)
    params = params_b * 1e9
    try:
        config_file = Path(registry.weights_location(entry.variant)) / "config.json"
    except Refused:
        config_file = None
    if config_file is not None and config_file.is_file():
        config = json.loads(config_file.read_text())
        return ModelShape(
            params, config["hidden_size"], config["num_hidden_layers"], config.get("vocab_size")
        )
    known = known_shape(params_b)
    return ModelShape(params, known.hidden, known.layers)


def known_shape(params_b: float) -> KnownShape:
    """The published shape nearest in size to `params_b`."""
    return KNOWN_SHAPES[min(KNOWN_SHAPES, key=lambda size: abs(size - params_b))]


def memory(
    shape: ModelShape,
    stage: int,
    world: int,
    micro: int,
    seq: int,
    ckpt: bool,
    offload_optimizer: bool,
    offload_params: bool,
    *,
    trainable: float | None = None,
    weight_bytes: float = 2.0,
) -> Memory:
    """`trainable` parameters (default: all) carry gradients and Adam state; the weights take
    `weight_bytes` each (2 for bf16, about 0.5 for a 4-bit QLoRA base)."""
    psi = shape.params
    trained = psi if trainable is None else trainable
    params = weight_bytes * psi / (world if stage >= 3 else 1)
    grads = 2 * trained / (world if stage >= 2 else 1)
    optimizer = 12 * trained / (world if stage >= 1 else 1)
    if offload_optimizer:
        optimizer = 0.0
    if offload_params:
        params = 0.0
    per_layer = 34 * seq * shape.hidden * micro
    activations = (
        shape.layers * 2 * seq * shape.hidden * micro + per_layer
        if ckpt
        else shape.layers * per_layer
    )
    return Memory(params / GIB, grads / GIB, optimizer / GIB, activations / GIB)


def resolve(
    recipe: TrainingRecipe,
    registry: Registry,
    entry: VariantEntry,
    *,
    hardware: HardwareProfile | None,
    nodes: int = 1,
    gpus: int | None = None,
    tokens: int | None = None,
    trainable: float | None = None,
    weight_bytes: float = 2.0,
) -> Plan:
    """The run this recipe makes on this cluster; PlanError when it cannot run.

    `tokens`: the data's size (default: the recipe's published size); `trainable`: parameters
    that train (default: all); `weight_bytes`: per frozen weight (QLoRA: 0.5).
    """
    override = recipe.overrides.get(entry.variant.name)
    seq = (override and override.sequence_length) or recipe.sequence_length
    global_batch = (override and override.global_batch_sequences) or recipe.global_batch_sequences
    lr = (override and override.lr) or recipe.optimizer.lr
    if seq > entry.variant.context_length:
        raise PlanError(
            f"sequence length {seq} exceeds {entry.variant.name}'s context of "
            f"{entry.variant.context_length}"
        )
    per_node = gpus or (hardware.gpus_per_node if hardware else 1)
    world = per_node * nodes
    if not recipe.deepspeed.enabled and world > 1:
        raise PlanError(
            f"recipe {recipe.name!r} runs a plain PyTorch loop (deepspeed.enabled: false), which "
            f"is one process; enable DeepSpeed to train on {world} GPUs/processes"
        )
    if global_batch % world:
        fits = [b for b in range(world, 2 * global_batch + world, world)]
        nearest = min(fits, key=lambda b: abs(b - global_batch))
        raise PlanError(
            f"global batch {global_batch} is not divisible by {world} data-parallel ranks; "
            f"use a global batch of {nearest} or a number of GPUs that divides {global_batch}"
        )
    shape = model_shape(registry, entry)
    settings = recipe.deepspeed
    notes: list[str] = []
    if hardware is None:  # CPU processes: no memory model, one sequence per micro-batch step
        micro = _largest_micro(global_batch // world, lambda m: True)
        stage, offload_opt, offload_par, mem = settings.zero_stage, False, False, None
    else:
        budget = hardware.gpu_memory_gb * (1e9 / GIB) * USABLE_MEMORY
        sizes = {"trainable": trainable, "weight_bytes": weight_bytes}
        stage, offload_opt, offload_par, micro, mem = _fit(
            shape, settings, world, seq, global_batch // world, budget, notes, sizes
        )
    if not settings.enabled:
        stage, offload_opt, offload_par = 0, False, False
    total_tokens = tokens if tokens is not None else recipe.published_tokens()
    steps = recipe.max_steps or max(
        1, math.ceil(total_tokens * recipe.epochs / (global_batch * seq))
    )
    if recipe.max_steps and total_tokens:
        notes.append(f"max_steps {recipe.max_steps} caps the run")
    gpu_hours = None
    if hardware is not None and total_tokens:
        per_gpu = ASSUMED_MFU * hardware.bf16_tflops * 1e12 / (6 * shape.params)
        gpu_hours = steps * global_batch * seq / per_gpu / 3600
        notes.append(f"GPU-hours at {ASSUMED_MFU:.0%} MFU (DeepSpeed ZeRO-2 measured on an H100)")
    return Plan(
        recipe=recipe.name,
        variant=entry.variant.name,
        hardware=hardware.name if hardware else None,
        nodes=nodes,
        gpus_per_node=per_node,
        world_size=world,
        deepspeed=settings.enabled,
        zero_stage=stage,
        offload_optimizer=offload_opt,
        offload_params=offload_par,
        activation_checkpointing=settings.activation_checkpointing,
        bf16=settings.bf16 and hardware is not None,
        sequence_length=seq,
        global_batch=global_batch,
        micro_batch=micro,
        grad_accum=global_batch // (world * micro),
        lr=lr,
        steps=steps,
        tokens=steps * global_batch * seq,
        memory_gib=mem,
        gpu_memory_gib=hardware.gpu_memory_gb * 1e9 / GIB if hardware else None,
        gpu_hours=gpu_hours,
        trainable_params=trainable,
        notes=notes,
    )


def _largest_micro(per_rank: int, fits) -> int:
    """The largest micro-batch that divides the per-rank batch and fits (1 always exists)."""
    for micro in sorted((m for m in range(1, per_rank + 1) if per_rank % m == 0), reverse=True):
        if micro <= 64 and fits(micro):
            return micro
    return 1


def _fit(shape, settings, world, seq, per_rank, budget, notes, sizes):
    ckpt = settings.activation_checkpointing
    if settings.enabled:
        options = [(stage, False, False) for stage in range(settings.zero_stage, 4)]
        options += [(3, True, False), (3, True, True)]
    else:  # a plain loop has no ZeRO to escalate to
        options = [(0, False, False)]
    for stage, offload_opt, offload_par in options:
        if (
            memory(shape, stage, world, 1, seq, ckpt, offload_opt, offload_par, **sizes).total
            > budget
        ):
            continue
        micro = _largest_micro(
            per_rank,
            lambda m, s=stage, o=offload_opt, p=offload_par: (
                memory(shape, s, world, m, seq, ckpt, o, p, **sizes).total <= budget
            ),
        )
        if stage != settings.zero_stage or offload_opt:
            notes.append(
                f"ZeRO-{settings.zero_stage} does not fit in {budget:.0f} GiB per GPU: "
                f"ZeRO-{stage}{' + optimizer offload' if offload_opt else ''}"
                f"{' + parameter offload' if offload_par else ''}"
            )
        return (
            stage,
            offload_opt,
            offload_par,
            micro,
            memory(shape, stage, world, micro, seq, ckpt, offload_opt, offload_par, **sizes),
        )
    if not settings.enabled:
        raise PlanError(
            f"{shape.params / 1e9:.1f}B parameters do not fit in {budget:.0f} GiB with a plain "
            "PyTorch loop; enable DeepSpeed (ZeRO-3 and offload shard and move the weights)"
        )
    needed = memory(shape, 3, 1, 1, seq, ckpt, True, False, **sizes)
    gpus = math.ceil((2 * shape.params / GIB) / max(budget - needed.activations, 1e-9))
    raise PlanError(
        f"{shape.params / 1e9:.1f}B parameters do not fit on {world} GPU(s) of {budget:.0f} GiB "
        f"usable even with ZeRO-3 and CPU offload; use at least {max(gpus, world + 1)} GPUs"
    )
