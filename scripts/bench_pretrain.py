"""Pretrain-step throughput for docs/PERFORMANCE.md: the DeepSpeed engine as `medarena train
pretrain` drives it (torch AdamW handed to ZeRO, bf16 on GPU) against a plain PyTorch training
step on the same model and batch, side by side in one run. MFU = 6 x params x tokens/s / peak.

    .venv/bin/python scripts/bench_pretrain.py --shape tiny --seq 256 --batch 8
    python scripts/bench_pretrain.py --shape 1.1b --seq 2048 --batch 8 --zero 2   # one H100
"""

from __future__ import annotations

import argparse
import os
import statistics
from datetime import date

import torch
from benchlib import H100_BF16_FLOPS, SHAPES, model, timed


def bench_plain(args, ids, dtype, device, tokens) -> tuple[int, list[float]]:
    """A plain training step: forward, backward, clip, AdamW (fused on GPU)."""
    plain = model(args.shape, dtype).to(device)
    optimizer = torch.optim.AdamW(plain.parameters(), lr=1e-4, fused=device.type == "cuda")

    def step() -> int:
        loss = plain(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(plain.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tokens

    return sum(p.numel() for p in plain.parameters()), timed(step, args.steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--zero", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    import deepspeed

    from medarena.training.loop import deepspeed_config

    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    dtype = torch.bfloat16 if gpu else torch.float32
    ids = torch.randint(0, SHAPES[args.shape]["vocab_size"], (args.batch, args.seq), device=device)
    tokens = args.batch * args.seq

    params, plain_rates = bench_plain(args, ids, dtype, device, tokens)
    rows = [("plain PyTorch step (AdamW)", plain_rates)]
    deepspeed.init_distributed(dist_backend="nccl" if gpu else "gloo")
    ds_model = model(args.shape, dtype)
    plan = {
        "zero_stage": args.zero,
        "offload_optimizer": False,
        "offload_params": False,
        "global_batch": args.batch,
        "micro_batch": args.batch,
        "grad_accum": 1,
        "bf16": gpu,
    }
    engine, *_ = deepspeed.initialize(
        model=ds_model,
        optimizer=torch.optim.AdamW(ds_model.parameters(), lr=1e-4, fused=gpu),
        config=deepspeed_config(plan, 1.0),
    )

    def ds_step() -> int:
        loss = engine(input_ids=ids, labels=ids).loss
        engine.backward(loss)
        engine.step()
        return tokens

    rows.append(
        (f"DeepSpeed ZeRO-{args.zero} step (medarena's config)", timed(ds_step, args.steps))
    )
    where = torch.cuda.get_device_name() if gpu else f"{os.cpu_count()} CPUs"
    print(
        f"{date.today()} {args.shape} ({params / 1e6:,.2f}M params), seq {args.seq}, batch "
        f"{args.batch}, {where}, torch {torch.__version__}, deepspeed {deepspeed.__version__}"
    )
    print("| what | min | median | max | tokens/s | MFU |\n| --- | --- | --- | --- | --- | --- |")
    for name, rates in rows:
        median = statistics.median(rates)
        mfu = f"{100 * 6 * params * median / H100_BF16_FLOPS:.1f}%" if gpu else "-"
        print(
            f"| {name} | {min(rates):,.0f} | {median:,.0f} | {max(rates):,.0f} | tokens/s | {mfu} |"
        )


if __name__ == "__main__":
    main()
