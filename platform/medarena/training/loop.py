"""Pieces of the per-rank training process that pretraining and instruction tuning share: the
learning-rate schedule, the DeepSpeed config, one step interface over a DeepSpeed engine or a
plain PyTorch loop, checkpoints that carry the data position and RNG states, and the recorder
that writes step metrics to the store."""

from __future__ import annotations

import argparse
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medarena.errors import Refused
from medarena.training.contract import RunContract
from medarena.training.plan import Plan

CHECKPOINTS = "checkpoints"
LATEST = "latest"  # DeepSpeed's name for the file holding the newest complete tag


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


def deepspeed_config(plan: Plan, grad_clip: float | None) -> dict[str, Any]:
    """DeepSpeed's config from the resolved plan (the optimizer is a torch AdamW handed to
    `initialize`, so no fused_adam JIT build is needed)."""
    zero: dict[str, Any] = {"stage": plan.zero_stage}
    if plan.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if plan.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if plan.offload_params:
        zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    config: dict[str, Any] = {
        "train_batch_size": plan.global_batch,
        "train_micro_batch_size_per_gpu": plan.micro_batch,
        "gradient_accumulation_steps": plan.grad_accum,
        "zero_optimization": zero,
        "bf16": {"enabled": plan.bf16},
        "steps_per_print": 10**9,
        "zero_allow_untested_optimizer": True,
    }
    if grad_clip:
        config["gradient_clipping"] = grad_clip
    return config


def init_distributed(plan: Plan) -> int:
    """Join the process group (nccl on GPUs, gloo on CPU), checking its size against the plan;
    returns this process's rank."""
    import deepspeed

    on_gpu = torch.cuda.is_available()
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    if world != plan.world_size:
        raise RuntimeError(f"launched with {world} ranks; the plan has {plan.world_size}")
    return rank


def adamw(params: Any, plan: Plan, optim: dict[str, Any]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        params,
        lr=plan.lr,
        betas=tuple(optim["betas"]),
        eps=optim["eps"],
        weight_decay=optim["weight_decay"],
        fused=torch.cuda.is_available(),
    )


class StepEngine:
    """One interface over DeepSpeed and a plain loop: call `forward` / `backward` / `step` once
    per micro-batch; the optimizer steps at accumulation boundaries."""

    def __init__(self, model: Any, plan: Plan, optim: dict[str, Any], schedule: Any):
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = adamw(trainable, plan, optim)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(schedule, plan.steps, plan.lr)
        )
        self.module, self.plan, self.grad_clip = model, plan, optim["grad_clip"]
        self.frozen = len(trainable) < len(list(model.parameters()))
        if plan.deepspeed:
            import deepspeed

            self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
                model=model,
                optimizer=optimizer,
                lr_scheduler=self.scheduler,
                config=deepspeed_config(plan, self.grad_clip),
            )
            if (
                self.engine.zero_optimization_stage() != plan.zero_stage
                or self.engine.dp_world_size != plan.world_size
            ):
                raise RuntimeError(
                    "DeepSpeed did not start the planned ZeRO stage / data parallelism"
                )
            self.device = self.engine.device
        else:
            self.engine, self.optimizer = None, optimizer
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            if next(model.parameters()).device.type != self.device.type:
                model.to(self.device)  # a 4-bit (QLoRA) base is placed at load and cannot move
            self.micro_steps, self.norm = 0, None

    def describe(self) -> str:
        if self.engine is None:
            return "plain PyTorch loop, one process"
        return (
            f"DeepSpeed ZeRO-{self.engine.zero_optimization_stage()}, data-parallel size "
            f"{self.engine.dp_world_size}"
        )

    def forward(self, **inputs: Any) -> Any:
        return (self.engine or self.module)(**inputs)

    def backward(self, loss: torch.Tensor) -> None:
        if self.engine is not None:
            self.engine.backward(loss)
        else:
            (loss / self.plan.grad_accum).backward()

    def step(self) -> None:
        if self.engine is not None:
            self.engine.step()
            return
        self.micro_steps += 1
        if self.micro_steps % self.plan.grad_accum:
            return
        params = [p for p in self.module.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, self.grad_clip or float("inf"))
        self.norm = float(norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def last_lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def grad_norm(self) -> float | None:
        norm = self.engine.get_global_grad_norm() if self.engine is not None else self.norm
        return float(norm) if norm is not None else None

    # -------------------------------------------------------------------------- checkpoints

    def save(self, run_dir: Path, step: int, position: int) -> None:
        """The tag's files first, then `latest`: a kill mid-save leaves the previous checkpoint
        as the one a restart loads. Frozen base weights are not saved (LoRA)."""
        folder, tag = run_dir / CHECKPOINTS, f"step{step:07d}"
        client = {
            "step": step,
            "position": position,
            "python_rng": random.getstate(),
            "numpy_rng": np.random.get_state(),
            "torch_rng": torch.get_rng_state(),
        }
        if self.engine is not None:
            self.engine.save_checkpoint(
                str(folder), tag=tag, client_state=client, exclude_frozen_parameters=self.frozen
            )
            return
        (folder / tag).mkdir(parents=True, exist_ok=True)
        trainable = {
            n: p.detach().cpu() for n, p in self.module.named_parameters() if p.requires_grad
        }
        state = {
            "trainable": trainable,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "client": client,
        }
        staging = folder / tag / "state.pt.partial"
        torch.save(state, staging)
        os.replace(staging, folder / tag / "state.pt")
        _write_atomic(folder / LATEST, tag)

    def resume(self, run_dir: Path) -> tuple[int, int]:
        """(step, position) of the newest complete checkpoint, or (0, 0)."""
        folder = run_dir / CHECKPOINTS
        if not (folder / LATEST).is_file():
            return 0, 0
        if self.engine is not None:
            _, client = self.engine.load_checkpoint(str(folder), load_module_strict=not self.frozen)
        else:
            tag = (folder / LATEST).read_text().strip()
            state = torch.load(folder / tag / "state.pt", weights_only=False)
            missing = set(state["trainable"]) - {n for n, _ in self.module.named_parameters()}
            if missing:
                raise RuntimeError(f"checkpoint {tag} has parameters the model lacks: {missing}")
            self.module.load_state_dict(state["trainable"], strict=False)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            client = state["client"]
        random.setstate(client["python_rng"])
        np.random.set_state(client["numpy_rng"])
        torch.set_rng_state(client["torch_rng"])
        return int(client["step"]), int(client["position"])


def check_checkpoint(run_dir: Path) -> str | None:
    """The tag `latest` names, after checking its state files are whole (each a readable zip
    archive, as torch.save writes them; a truncated file has no central directory); None when
    the run has no checkpoint. A damaged checkpoint is a ValueError naming the file, raised
    before any process starts, so a resume never dies half-way through loading it."""
    import zipfile

    folder = run_dir / CHECKPOINTS
    marker = folder / LATEST
    if not marker.is_file():
        return None
    tag = marker.read_text().strip()
    where = folder / tag if tag else None
    earlier = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name != tag)
    remedy = (
        f"; earlier checkpoints: {', '.join(earlier)} (write one of them into {marker} to "
        "resume from it)"
        if earlier
        else "; no earlier checkpoint: start again with another --output"
    )
    if where is None or not where.is_dir():
        raise Refused(f"{marker} names checkpoint {tag!r}, which does not exist{remedy}")
    files = sorted(where.glob("*.pt"))
    if not files:
        raise Refused(f"checkpoint {where} holds no state file (*.pt){remedy}")
    for path in files:
        try:
            with zipfile.ZipFile(path):
                pass
        except (zipfile.BadZipFile, OSError) as exc:
            raise Refused(f"checkpoint file {path} is damaged ({exc}){remedy}") from None
    return tag


def _write_atomic(path: Path, text: str) -> None:
    staging = path.with_name(path.name + ".partial")
    staging.write_text(text)
    os.replace(staging, path)


class Recorder:
    """Rank 0 writes step metrics to the store every checkpoint (idempotent after a resume) and
    shows them: a progress bar on a terminal, one line per step in logs and pipes."""

    def __init__(self, run: RunContract):
        from medarena.results import TrainingStep
        from medarena.store import Store

        self.store, self.run_id, self.pending = Store(run.db_url), run.training_run_id, []
        self.peak = run.peak_flops
        self.TrainingStep = TrainingStep
        self.bar = _terminal_bar(run.plan.steps)

    def step(self, step, loss, lr, grad_norm, tokens_per_s, flops_per_token, tokens_seen) -> None:
        mfu = flops_per_token * tokens_per_s / self.peak if self.peak else None
        norm = float(grad_norm) if grad_norm is not None else None
        self.pending.append(self.TrainingStep(step, loss, lr, norm, tokens_per_s, mfu, tokens_seen))
        line = f"loss {loss:.4f} lr {lr:.2e} {tokens_per_s:,.0f} tok/s"
        if self.bar is None:
            print(f"step {step} {line}", flush=True)
        else:
            self.bar.update(self.bar.task_ids[0], completed=step, status=line)

    def flush(self) -> None:
        if self.pending:
            self.store.add_training_steps(self.run_id, self.pending)
            self.pending = []

    def close(self) -> None:
        self.flush()
        if self.bar is not None:
            self.bar.stop()


def _terminal_bar(total_steps: int) -> Any:
    """A live progress bar on stderr when it is a terminal (None otherwise)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        return None
    bar = Progress(
        TextColumn("step"),
        MofNCompleteColumn(),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
    )
    bar.add_task("train", total=total_steps, status="")
    bar.start()
    return bar


def train_steps(
    engine: StepEngine,
    run: RunContract,
    run_dir: Path,
    items: Iterator[Any],
    to_inputs: Callable[[list[Any]], dict[str, torch.Tensor]],
    *,
    start: tuple[int, int],
    tokens_seen: int,
    flops_per_token: float,
) -> None:
    """The optimizer steps from `start` (step, items consumed) to the plan's last.

    Each step draws the global batch from `items` (the data in its seeded order from the resume
    position); this rank takes its micro-batches from it and `to_inputs` turns each into model
    inputs (an `attention_mask` marks real tokens where there is padding). Rank 0 records the
    mean loss, lr, grad norm and tokens/s of every step and writes them at each checkpoint.
    """
    plan = run.plan
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    recorder = Recorder(run) if rank == 0 else None
    step, position = start
    micro = plan.micro_batch
    while step < plan.steps:
        started = time.perf_counter()
        batch = [next(items) for _ in range(plan.global_batch)]
        losses, tokens = [], 0
        for m in range(plan.grad_accum):
            first = (m * world + rank) * micro
            inputs = to_inputs(batch[first : first + micro])
            mask = inputs.get("attention_mask")
            tokens += int(mask.sum()) if mask is not None else inputs["input_ids"].numel()
            loss = engine.forward(**{k: v.to(engine.device) for k, v in inputs.items()}).loss
            engine.backward(loss)
            engine.step()
            losses.append(loss.detach().float())
        step, position = step + 1, position + plan.global_batch
        totals = torch.stack([torch.stack(losses).mean(), torch.tensor(float(tokens))])
        torch.distributed.all_reduce(totals)
        seconds = time.perf_counter() - started
        tokens_seen += int(totals[1].item())
        if recorder is not None:
            recorder.step(
                step,
                (totals[0] / world).item(),
                engine.last_lr(),
                engine.grad_norm(),
                totals[1].item() / seconds,
                flops_per_token,
                tokens_seen,
            )
        if step % run.checkpoint_every == 0 or step == plan.steps:
            if recorder is not None:
                recorder.flush()
            engine.save(run_dir, step, position)
    if recorder is not None:
        recorder.close()


def read_run(argv: list[str], prog: str) -> tuple[Path, RunContract]:
    """RUN_DIR and its run.json; the deepspeed launcher adds `--local_rank=N` (LOCAL_RANK is set
    too)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--local_rank", type=int, default=None)
    run_dir = parser.parse_args(argv).run_dir
    return run_dir, RunContract.read(run_dir)
