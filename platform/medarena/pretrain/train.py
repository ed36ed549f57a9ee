"""The training process: `python -m medarena.pretrain.train RUN_DIR`, one per rank.

Launched by `medarena train pretrain` directly, or by torchrun / the deepspeed launcher / SLURM
with the same argument. Everything it needs is in RUN_DIR/run.json (written by the command):
the resolved plan, the recipe's optimizer and schedule, the base model location, the packed
data and the store. It resumes from RUN_DIR/checkpoints when a checkpoint exists: engine state,
data position (sequences consumed) and RNG states.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINTS = "checkpoints"
EXPORT = "export"


def lr_lambda(schedule: dict[str, Any], steps: int, base_lr: float):
    """Warmup (linear from 0) then cosine / linear decay to min_lr, or constant."""
    warmup = schedule.get("warmup_steps")
    if warmup is None:
        warmup = round((schedule.get("warmup_ratio") or 0.0) * steps)
    floor = schedule.get("min_lr", 0.0) / base_lr

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule["kind"] == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        shape = (
            0.5 * (1 + math.cos(math.pi * progress))
            if schedule["kind"] == "cosine"
            else (1 - progress)
        )
        return floor + (1 - floor) * shape

    return factor


def deepspeed_config(plan: dict[str, Any], grad_clip: float | None) -> dict[str, Any]:
    """DeepSpeed's config from the resolved plan (the optimizer is a torch AdamW handed to
    `initialize`, so no fused_adam JIT build is needed)."""
    zero: dict[str, Any] = {"stage": plan["zero_stage"]}
    if plan["zero_stage"] == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if plan["offload_optimizer"]:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if plan["offload_params"]:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    config: dict[str, Any] = {
        "train_batch_size": plan["global_batch"],
        "train_micro_batch_size_per_gpu": plan["micro_batch"],
        "gradient_accumulation_steps": plan["grad_accum"],
        "zero_optimization": zero,
        "bf16": {"enabled": plan["bf16"]},
        "steps_per_print": 10**9,
        "zero_allow_untested_optimizer": True,
    }
    if grad_clip:
        config["gradient_clipping"] = grad_clip
    return config


def main(run_dir: Path) -> None:
    import deepspeed
    from transformers import AutoModelForCausalLM

    from medarena.data.pack import PackedDataset

    run = json.loads((run_dir / "run.json").read_text())
    plan, optim = run["plan"], run["optimizer"]
    on_gpu = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    if world != plan["world_size"]:
        raise RuntimeError(f"launched with {world} ranks; the plan has {plan['world_size']}")
    torch.manual_seed(run["seed"])
    dtype = torch.bfloat16 if plan["bf16"] else torch.float32
    model = AutoModelForCausalLM.from_pretrained(run["base_location"], dtype=dtype)
    if plan["activation_checkpointing"]:
        model.gradient_checkpointing_enable()
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=plan["lr"],
        betas=tuple(optim["betas"]),
        eps=optim["eps"],
        weight_decay=optim["weight_decay"],
        fused=on_gpu,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(run["schedule"], plan["steps"], plan["lr"])
    )
    engine, _, _, scheduler = deepspeed.initialize(
        model=model,
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=deepspeed_config(plan, optim["grad_clip"]),
    )
    if engine.zero_optimization_stage() != plan["zero_stage"] or engine.dp_world_size != world:
        raise RuntimeError("DeepSpeed did not start the planned ZeRO stage / data parallelism")
    if rank == 0:
        print(
            f"engine: DeepSpeed ZeRO-{engine.zero_optimization_stage()}, data-parallel "
            f"size {engine.dp_world_size}, {plan['steps']} steps",
            flush=True,
        )
    step, position = _resume(engine, run_dir)
    data = PackedDataset(run_dir / "data")
    stream = data.sequences(run["seed"], start=position)
    recorder = _Recorder(run, rank) if rank == 0 else None
    params = run["params"]  # ZeRO-3 partitions the module's own tensors
    while step < plan["steps"]:
        started = time.perf_counter()
        batch = np.stack([next(stream) for _ in range(plan["global_batch"])]).astype(np.int64)
        micro, losses = plan["micro_batch"], []
        for m in range(plan["grad_accum"]):
            first = (m * world + rank) * micro
            ids = torch.from_numpy(batch[first : first + micro]).to(engine.device)
            loss = engine(input_ids=ids, labels=ids).loss
            engine.backward(loss)
            engine.step()
            losses.append(loss.detach().float())
        step, position = step + 1, position + plan["global_batch"]
        mean = torch.stack(losses).mean()
        torch.distributed.all_reduce(mean)
        seconds = time.perf_counter() - started
        tokens_per_s = plan["global_batch"] * plan["sequence_length"] / seconds
        if recorder is not None:
            recorder.step(
                step,
                (mean / world).item(),
                scheduler.get_last_lr()[0],
                engine.get_global_grad_norm(),
                tokens_per_s,
                params,
                position * plan["sequence_length"],
            )
        if step % run["checkpoint_every"] == 0 or step == plan["steps"]:
            if recorder is not None:
                recorder.flush()
            _save(engine, run_dir, step, position)
    _export(engine, model, run_dir, rank, run["base_location"])
    if recorder is not None:
        recorder.flush()
    torch.distributed.barrier()


def _resume(engine: Any, run_dir: Path) -> tuple[int, int]:
    folder = run_dir / CHECKPOINTS
    if not (folder / "latest").is_file():
        return 0, 0
    _, client = engine.load_checkpoint(str(folder))
    random.setstate(client["python_rng"])
    np.random.set_state(client["numpy_rng"])
    torch.set_rng_state(client["torch_rng"])
    return int(client["step"]), int(client["position"])


def _save(engine: Any, run_dir: Path, step: int, position: int) -> None:
    """DeepSpeed writes the tag's files, then `latest`: a kill mid-save leaves the previous
    checkpoint as the one a restart loads."""
    engine.save_checkpoint(
        str(run_dir / CHECKPOINTS),
        tag=f"step{step:07d}",
        client_state={
            "step": step,
            "position": position,
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(),
            "torch_rng": torch.get_rng_state(),
        },
    )


def _export(engine: Any, model: Any, run_dir: Path, rank: int, base_location: str) -> None:
    """The final weights as HF safetensors (ZeRO-3 shards gathered to rank 0)."""
    import deepspeed

    out = run_dir / EXPORT
    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        if rank == 0:
            state = {k: v.detach().cpu().clone() for k, v in engine.module.state_dict().items()}
            engine.module.save_pretrained(out, state_dict=state, safe_serialization=True)
    if rank == 0:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(base_location).save_pretrained(out)


class _Recorder:
    """Rank 0 writes step metrics to the store every checkpoint (idempotent after a resume)."""

    def __init__(self, run: dict[str, Any], rank: int):
        from medarena.store import Store, TrainingStep

        self.store, self.run_id, self.pending = Store(run["db_url"]), run["training_run_id"], []
        self.peak = run.get("peak_flops")
        self.TrainingStep = TrainingStep

    def step(self, step, loss, lr, grad_norm, tokens_per_s, params, tokens_seen) -> None:
        mfu = 6 * params * tokens_per_s / self.peak if self.peak else None
        norm = float(grad_norm) if grad_norm is not None else None
        self.pending.append(self.TrainingStep(step, loss, lr, norm, tokens_per_s, mfu, tokens_seen))
        print(f"step {step} loss {loss:.4f} lr {lr:.2e} {tokens_per_s:,.0f} tok/s", flush=True)

    def flush(self) -> None:
        if self.pending:
            self.store.add_training_steps(self.run_id, self.pending)
            self.pending = []


def _run_dir(argv: list[str]) -> Path:
    """The run folder; the deepspeed launcher adds `--local_rank=N` (LOCAL_RANK is set too)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m medarena.pretrain.train")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--local_rank", type=int, default=None)
    return parser.parse_args(argv).run_dir


if __name__ == "__main__":
    main(_run_dir(sys.argv[1:]))
