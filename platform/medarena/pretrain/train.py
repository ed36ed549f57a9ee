"""The training process: `python -m medarena.pretrain.train RUN_DIR`, one per rank.

Launched by `medarena train pretrain` directly, or by torchrun / the deepspeed launcher / SLURM
with the same argument. Everything it needs is in RUN_DIR/run.json (written by the command):
the resolved plan, the recipe's optimizer and schedule, the base model location, the packed
data and the store. It resumes from RUN_DIR/checkpoints when a checkpoint exists: engine state,
data position (sequences consumed) and RNG states.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medarena.training.loop import Recorder, StepEngine, init_distributed, read_run

EXPORT = "export"


def main(run_dir: Path, run: dict[str, Any]) -> None:
    from transformers import AutoModelForCausalLM

    from medarena.data.pack import PackedDataset

    plan = run["plan"]
    rank, world = init_distributed(plan)
    torch.manual_seed(run["seed"])
    dtype = torch.bfloat16 if plan["bf16"] else torch.float32
    model = AutoModelForCausalLM.from_pretrained(run["base_location"], dtype=dtype)
    if plan["activation_checkpointing"]:
        model.gradient_checkpointing_enable()
    engine = StepEngine(model, plan, run["optimizer"], run["schedule"])
    if rank == 0:
        print(f"engine: {engine.describe()}, {plan['steps']} steps", flush=True)
    step, position = engine.resume(run_dir)
    data = PackedDataset(run_dir / "data")
    stream = data.sequences(run["seed"], start=position)
    recorder = Recorder(run) if rank == 0 else None
    flops_per_token = 6 * run["params"]  # ZeRO-3 partitions the module's own tensors
    while step < plan["steps"]:
        started = time.perf_counter()
        batch = np.stack([next(stream) for _ in range(plan["global_batch"])]).astype(np.int64)
        micro, losses = plan["micro_batch"], []
        for m in range(plan["grad_accum"]):
            first = (m * world + rank) * micro
            ids = torch.from_numpy(batch[first : first + micro]).to(engine.device)
            loss = engine.forward(input_ids=ids, labels=ids).loss
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
                engine.last_lr(),
                engine.grad_norm(),
                tokens_per_s,
                flops_per_token,
                position * plan["sequence_length"],
            )
        if step % run["checkpoint_every"] == 0 or step == plan["steps"]:
            if recorder is not None:
                recorder.flush()
            engine.save(run_dir, step, position)
    _export(model, run_dir, rank, run["base_location"])
    if recorder is not None:
        recorder.flush()
    torch.distributed.barrier()


def _export(model: Any, run_dir: Path, rank: int, base_location: str) -> None:
    """The final weights as HF safetensors (ZeRO-3 shards gathered to rank 0)."""
    import deepspeed

    out = run_dir / EXPORT
    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        if rank == 0:
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            model.save_pretrained(out, state_dict=state, safe_serialization=True)
    if rank == 0:
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(base_location).save_pretrained(out)


if __name__ == "__main__":
    main(*read_run(sys.argv[1:], "python -m medarena.pretrain.train"))
