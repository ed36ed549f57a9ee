"""The training process: `python -m medarena.pretrain.train RUN_DIR`, one per rank.

Launched by `medarena train pretrain` directly, or by torchrun / the deepspeed launcher / SLURM
with the same argument. Everything it needs is in RUN_DIR/run.json (written by the command):
the resolved plan, the recipe's optimizer and schedule, the base model location, the packed
data and the store. It resumes from RUN_DIR/checkpoints when a checkpoint exists: engine state,
data position (sequences consumed) and RNG states.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medarena.training.contract import RunContract
from medarena.training.loop import StepEngine, init_distributed, read_run, train_steps

EXPORT = "export"


def main(run_dir: Path, run: RunContract) -> None:
    from transformers import AutoModelForCausalLM

    from medarena.data.pack import PackedDataset

    plan = run.plan
    rank = init_distributed(plan)
    torch.manual_seed(run.seed)
    dtype = torch.bfloat16 if plan.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(run.base_location, dtype=dtype)
    if plan.activation_checkpointing:
        model.gradient_checkpointing_enable()
    engine = StepEngine(model, plan, run.optimizer, run.schedule)
    if rank == 0:
        print(f"engine: {engine.describe()}, {plan.steps} steps", flush=True)
    step, position = engine.resume(run_dir)
    stream = PackedDataset(run_dir / "data").sequences(run.seed, start=position)

    def to_inputs(sequences: list[np.ndarray]) -> dict[str, torch.Tensor]:
        ids = torch.from_numpy(np.stack(sequences).astype(np.int64))
        return {"input_ids": ids, "labels": ids}

    train_steps(
        engine,
        run,
        run_dir,
        stream,
        to_inputs,
        start=(step, position),
        tokens_seen=position * plan.sequence_length,
        flops_per_token=6 * run.params,  # ZeRO-3 partitions the module's own tensors
    )
    _export(model, run_dir, rank, run.base_location)
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
