"""LoRA-step throughput for docs/PERFORMANCE.md: full-parameter training against PEFT LoRA on
the same model and batch, side by side in one run. LoRA is measured as PEFT does by default
(adapters kept in float32, `autocast_adapter_dtype=True`) and as medarena's recipes run it
(`adapter_dtype: model`: adapters in the model's dtype); optionally each also under
torch.compile. The issue's goal: LoRA r=16 on all linear layers >= 1.3x full training (H100,
1.1B shape, seq 2048).

    .venv/bin/python scripts/bench_instruct.py --shape tiny --seq 256 --batch 8
    python scripts/bench_instruct.py --shape 1.1b --seq 2048 --batch 8 --compile   # one H100
"""

from __future__ import annotations

import argparse
import os
import statistics
from datetime import date

import torch
from benchlib import SHAPES, model, timed

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def full_step(net, ids, tokens, device):
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=device.type == "cuda")
    return _step(net, optimizer, ids, tokens)


def lora_step(net, ids, tokens, device, rank: int, fp32_adapters: bool):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=TARGETS, task_type="CAUSAL_LM")
    tuned = get_peft_model(net, config, autocast_adapter_dtype=fp32_adapters)
    trainable = [p for p in tuned.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4, fused=device.type == "cuda")
    return _step(tuned, optimizer, ids, tokens)


def _step(net, optimizer, ids, tokens):
    trainable = [p for p in net.parameters() if p.requires_grad]

    def step() -> int:
        loss = net(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tokens

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="also each under torch.compile")
    args = parser.parse_args()
    import peft

    gpu = torch.cuda.is_available()
    device = torch.device("cuda" if gpu else "cpu")
    dtype = torch.bfloat16 if gpu else torch.float32
    ids = torch.randint(0, SHAPES[args.shape]["vocab_size"], (args.batch, args.seq), device=device)
    tokens = args.batch * args.seq
    setups = {
        "full-parameter step (AdamW)": lambda net: full_step(net, ids, tokens, device),
        f"LoRA r={args.rank}, fp32 adapters (PEFT default)": lambda net: lora_step(
            net, ids, tokens, device, args.rank, True
        ),
        f"LoRA r={args.rank}, adapters in model dtype (medarena)": lambda net: lora_step(
            net, ids, tokens, device, args.rank, False
        ),
    }
    rows = []
    for compiled in (False, True) if args.compile else (False,):
        for name, make in setups.items():
            net = model(args.shape, dtype).to(device)
            if compiled:
                net.model.compile()
            rates = timed(make(net), args.steps)
            rows.append((name + (" + compile" if compiled else ""), compiled, rates))
            del net
    where = torch.cuda.get_device_name() if gpu else f"{os.cpu_count()} CPUs"
    print(
        f"{date.today()} {args.shape}, seq {args.seq}, batch {args.batch}, {where}, torch "
        f"{torch.__version__}, peft {peft.__version__}"
    )
    print("| what | min | median | max | vs full (same compile) |\n| --- | --- | --- | --- | --- |")
    full = {compiled: statistics.median(rates) for _, compiled, rates in rows[:: len(setups)]}
    for name, compiled, rates in rows:
        median, baseline = statistics.median(rates), full[compiled]
        print(
            f"| {name} | {min(rates):,.0f} | {median:,.0f} | {max(rates):,.0f} tokens/s | "
            f"{median / baseline:.2f}x |"
        )


if __name__ == "__main__":
    main()
