"""Shared by the benchmark scripts: the 1.1B Llama shape of the GPU baselines, the H100 peak,
and a timer that synchronises CUDA around each run."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

H100_BF16_FLOPS = 989.4e12  # dense bf16 peak, models/hardware/h100-80gb-sxm.yaml
# TinyLlama's shape: the 1.1B model of the baselines in docs/PERFORMANCE.md (Baselines)
LLAMA_1_1B = dict(
    hidden_size=2048,
    intermediate_size=5632,
    num_hidden_layers=22,
    num_attention_heads=32,
    num_key_value_heads=4,
    vocab_size=32000,
)


SHAPES = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=32,
        vocab_size=1024,
    ),
    # big enough that matrix multiplies, not per-op overhead, dominate a CPU step (~17M)
    "small": dict(
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=1024,
    ),
    "1.1b": LLAMA_1_1B,
}


def model(shape: str, dtype: torch.dtype):
    """A randomly initialised Llama of `shape` (seeded)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=4096)
    return LlamaForCausalLM(config).to(dtype)


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
