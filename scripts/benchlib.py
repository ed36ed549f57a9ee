"""Shared by the benchmark scripts: the 1.1B Llama shape of the GPU baselines, the H100 peak,
and a timer that synchronises CUDA around each run."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

H100_BF16_FLOPS = 989.4e12  # dense bf16 peak, models/hardware/h100-80gb-sxm.yaml
# TinyLlama's shape: the 1.1B model of the baselines in ../shared/ENVIRONMENT.md
LLAMA_1_1B = dict(
    hidden_size=2048,
    intermediate_size=5632,
    num_hidden_layers=22,
    num_attention_heads=32,
    num_key_value_heads=4,
    vocab_size=32000,
)


def timed(fn: Callable[[], int], repeat: int) -> list[float]:
    """Run `fn` (it returns how many units it processed) once to warm up, then `repeat` times;
    the rates in units per second."""
    fn()
    rates = []
    for _ in range(repeat):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        count = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        rates.append(count / (time.perf_counter() - start))
    return rates
