"""Quantized copies against full precision on the hf engine (CPU): file size, resident memory
and log-likelihood items/s, for docs/PERFORMANCE.md.

The model (`--shape tiny`: the embedded model; `small`: ~17M parameters, random weights, the
tiny tokenizer) is written as safetensors and as GGUF copies (medarena.quantize.gguf_export);
each copy is loaded by the hf engine in a fresh process, which then scores `--questions`
questions of `--prompt-tokens` random tokens with four one-token answers (median of 3 after a
warm-up). Memory is the process's peak resident set after loading and scoring.

    .venv/bin/python scripts/bench_quant.py --shape small
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from importlib.metadata import version
from pathlib import Path

TYPES = ("Q8_0", "Q4_0")


def build(shape: str, folder: Path) -> Path:
    """The model folder: the tiny build, or `small` with the tiny tokenizer."""
    from benchlib import model

    from medarena.tiny import build_tiny

    tiny = folder / "tiny"
    build_tiny(tiny, seed=0)
    if shape == "tiny":
        return tiny
    import torch
    from transformers import AutoTokenizer

    out = folder / shape
    model(shape, torch.float32).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(out)
    return out


def worker(location: str, gguf_file: str | None, questions: int, prompt_tokens: int) -> dict:
    """Load one copy in this process and time its log-likelihood scoring."""
    import torch

    from medarena.evaluate.engines import LoglikRequest
    from medarena.evaluate.engines.hf import HFEngine

    torch.set_num_threads(torch.get_num_threads())
    started = time.perf_counter()
    engine = HFEngine(location, dtype="float32", gguf_file=gguf_file, batch_size=32)
    load_s = time.perf_counter() - started
    vocab = engine.model.config.vocab_size
    rng = random.Random(0)
    requests = []
    for _ in range(questions):
        context = tuple(rng.randrange(4, vocab) for _ in range(prompt_tokens))
        requests += [LoglikRequest(context, (rng.randrange(4, vocab),)) for _ in range(4)]
    rates = []
    for attempt in range(4):  # a warm-up, then 3 timed
        start = time.perf_counter()
        engine.loglikelihood(requests)
        if attempt:
            rates.append(questions / (time.perf_counter() - start))
    weights = sum(p.numel() * p.element_size() for p in engine.model.parameters())
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"load_s": load_s, "rates": rates, "weights_mb": weights / 1e6, "rss_mb": peak_kib / 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("tiny", "small"), default="small")
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=256)
    parser.add_argument("--worker", nargs=2, metavar=("LOCATION", "GGUF_FILE"))
    args = parser.parse_args()
    if args.worker:
        location, gguf_file = args.worker
        result = worker(location, gguf_file or None, args.questions, args.prompt_tokens)
        print(json.dumps(result))
        return

    from medarena.quantize.gguf_export import export_gguf

    with tempfile.TemporaryDirectory() as tmp:
        folder = build(args.shape, Path(tmp))
        copies = {"full precision (safetensors, fp32)": (folder, "")}
        for qtype in TYPES:
            export_gguf(folder, Path(tmp) / f"model.{qtype}.gguf", qtype)
            copies[f"GGUF {qtype}"] = (Path(tmp), f"model.{qtype}.gguf")
        versions = ", ".join(
            f"{name} {version(name)}" for name in ("torch", "transformers", "gguf")
        )
        print(
            f"Measured {date.today()} on {platform.machine()}, {os.cpu_count()} cores, "
            f"python {platform.python_version()}, {versions}; shape {args.shape}, "
            f"{args.questions} questions of {args.prompt_tokens} tokens x 4 one-token answers"
        )
        print(
            "| copy | file MB | weights in memory MB | peak RSS MB | load s | questions/s "
            "(min / median / max) |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for name, (location, gguf_file) in copies.items():
            size = (
                (location / gguf_file).stat().st_size
                if gguf_file
                else sum(f.stat().st_size for f in location.glob("*.safetensors"))
            )
            command = [
                sys.executable, __file__, "--worker", str(location), gguf_file,
                "--questions", str(args.questions), "--prompt-tokens", str(args.prompt_tokens),
            ]  # fmt: skip
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rates = result["rates"]
            print(
                f"| {name} | {size / 1e6:.2f} | {result['weights_mb']:.1f} | "
                f"{result['rss_mb']:.0f} | {result['load_s']:.2f} | {min(rates):.1f} / "
                f"{statistics.median(rates):.1f} / {max(rates):.1f} |"
            )


if __name__ == "__main__":
    main()
