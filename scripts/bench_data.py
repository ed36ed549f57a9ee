"""Pretraining data preparation side by side, for docs/PERFORMANCE.md: peak memory per worker on
a 1x and an 8x corpus, the whole path against the raw batch encode of the same text (near-dedup
on and off), and 2 workers against 1.

The corpus is synthetic: 250-word documents drawn from the bundled text's words
(`platform/medarena/assets/tiny_corpus.txt`), 5% planted exact copies, in 4 JSONL files per
source (two sources); cleaning is the gap-replay recipe's (min 20 words, exact dedup, MinHash
0.8 over 128 permutations of 5-word shingles). The tokenizer is the embedded tiny family's
byte-level BPE (vocab 1,024). Every measurement runs in a fresh process whose tokenizer is
single-threaded (RAYON_NUM_THREADS=1), so a worker is one core.

    .venv/bin/python scripts/bench_data.py --mib 2 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

WORDS_PER_DOCUMENT = 250
FILES_PER_SOURCE = 4
ME_LLAMA_TOKENS = 129e9  # pretrain/me-llama.yaml (the paper's 129B-token mix)
GAP_REPLAY_TOKENS = 48.1e9  # pretrain/gap-replay.yaml header: the paper text and README say 48.1B


def write_corpus(folder: Path, mib: float, seed: int) -> int:
    """Two sources of synthetic documents, `mib` MiB of text in all; returns the bytes."""
    import numpy as np

    from medarena.tiny import default_corpus

    words = np.array(default_corpus().read_text().split())
    rng = np.random.default_rng(seed)
    written = 0
    for source in ("a", "b"):
        (folder / source).mkdir(parents=True)
        for part in range(FILES_PER_SOURCE):
            target = mib * 2**20 / 2 / FILES_PER_SOURCE
            size, lines = 0, []
            while size < target:
                text = " ".join(rng.choice(words, WORDS_PER_DOCUMENT))
                copies = 2 if rng.random() < 0.05 else 1  # planted exact duplicates
                for _ in range(copies):
                    lines.append(json.dumps({"text": text}) + "\n")
                    size += len(text)
            (folder / source / f"part-{part}.jsonl").write_text("".join(lines))
            written += size
    return written


def recipe(near: bool):
    from medarena.pretrain.recipe import PretrainRecipe

    files = {"file_format": "jsonl"}
    return PretrainRecipe.model_validate(
        {
            "name": "bench",
            "description": "x",
            "citation": "x",
            "sources": [
                {"name": name, "kind": "general", "reader": "records", "ratio": 0.5, "data": data}
                for name, data in (("a", {**files, "path": "a"}), ("b", {**files, "path": "b"}))
            ],
            "cleaning": {"min_words": 20, "near_dedup_threshold": 0.8 if near else None},
            "sequence_length": 2048,
            "global_batch_sequences": 8,
            "optimizer": {"lr": 1e-3},
        }
    )


def child(args: argparse.Namespace) -> None:
    """One measurement, in this fresh process; prints a JSON line."""
    from transformers import AutoTokenizer

    from medarena.data.prepare import prepare

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    corpus = Path(args.corpus)
    if args.what == "encode":  # the text in memory first: only the encode is timed
        texts = [
            json.loads(line)["text"]
            for path in sorted(corpus.glob("*/*.jsonl"))
            for line in path.open()
        ]
        start, cpu_start = time.perf_counter(), cpu_seconds()
        encoder, tokens = tokenizer.backend_tokenizer, 0
        for i in range(0, len(texts), 1024):
            batch = encoder.encode_batch_fast(texts[i : i + 1024], add_special_tokens=False)
            tokens += sum(len(e.ids) + 1 for e in batch)
    else:  # the whole path: read, clean, dedup, tokenize, mix, pack
        start, cpu_start = time.perf_counter(), cpu_seconds()
        packed, _ = prepare(
            recipe(args.what == "near"),
            tokenizer,
            corpus,
            Path(args.out),
            workers=args.workers,
            tasks=args.tasks,
        )
        tokens = packed.tokens + packed.dropped_tail_tokens
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    row = {"seconds": seconds, "cpu": cpu, "tokens": tokens, "peak_mib": max(peak, children)}
    print(json.dumps(row))


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: on a machine shared with other
    work, less disturbed than wall time."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(tmp: Path, what: str, corpus: Path, workers: int = 1, tasks: int = 1) -> dict:
    env = {**os.environ, "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = tmp / f"out-{what}-{corpus.name}-{workers}-{time.monotonic_ns()}"
    command = [sys.executable, __file__, "--child", what, "--corpus", str(corpus), "--out",
               str(out), "--tokenizer", str(tmp / "tiny"), "--workers", str(workers),
               "--tasks", str(tasks)]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def median_run(runs: list[dict]) -> dict:
    """Each field's median over the runs (tokens are the same in every run)."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=2.0, help="the 1x corpus, MiB of text")
    parser.add_argument("--child", choices=["encode", "near", "plain"])
    parser.add_argument("--corpus")
    parser.add_argument("--out")
    parser.add_argument("--tokenizer")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    args = parser.parse_args()
    if args.child:
        args.what = args.child
        child(args)
        return
    from medarena.tiny import build_tiny

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        build_tiny(tmp / "tiny")
        small, large = tmp / "x1", tmp / "x8"
        small_bytes = write_corpus(small, args.mib, seed=0)
        large_bytes = write_corpus(large, 8 * args.mib, seed=1)
        plan = {
            "encode 1x": ("encode", small, 1, 1),
            "whole path, near-dedup on, 1x": ("near", small, 1, 1),
            "whole path, near-dedup off, 1x": ("plain", small, 1, 1),
            "encode 8x": ("encode", large, 1, 1),
            "whole path, near-dedup off, 8x": ("plain", large, 1, 1),
            "whole path, near-dedup on, 8x": ("near", large, 1, 1),
            "2 tasks on 1 worker, near-dedup on, 8x": ("near", large, 1, 2),
            "2 tasks on 2 workers, near-dedup on, 8x": ("near", large, 2, 2),
        }
        runs: dict[str, list[dict]] = {label: [] for label in plan}
        for _ in range(args.repeat):  # rounds alternate the runs: a load change hits them all
            for label, (what, corpus, workers, tasks) in plan.items():
                runs[label].append(measure(tmp, what, corpus, workers, tasks))
        rows = {label: median_run(measured) for label, measured in runs.items()}
    load_after = os.getloadavg()
    print(f"{date.today()}, {os.cpu_count()} CPUs, {os.uname().machine}, load average before "
          f"{load_before[0]:.1f} / after {load_after[0]:.1f}; corpora {small_bytes / 2**20:.1f} "
          f"and {large_bytes / 2**20:.1f} MiB; medians of {args.repeat} rounds")  # fmt: skip
    print("| run | wall s | CPU s | tokens | tokens/s | tokens/CPU-s | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, row in rows.items():
        rate, per_cpu = row["tokens"] / row["seconds"], row["tokens"] / row["cpu"]
        print(f"| {label} | {row['seconds']:.2f} | {row['cpu']:.2f} | {row['tokens']:,} | "
              f"{rate:,.0f} | {per_cpu:,.0f} | {row['peak_mib']:.0f} |")  # fmt: skip

    def ratio(label: str, reference: str, field: str) -> tuple[float, list[float]]:
        """Median over the rounds of each round's (tokens/field of label) / (tokens/field of
        reference): the two runs of a round are minutes apart at most, so a load that comes
        and goes over the whole benchmark moves the ratio less than the medians' ratio."""
        each = [
            (run["tokens"] / run[field]) / (ref["tokens"] / ref[field])
            for run, ref in zip(runs[label], runs[reference], strict=True)
        ]
        return statistics.median(each), each

    near, near_rounds = ratio("whole path, near-dedup on, 8x", "encode 8x", "cpu")
    plain, plain_rounds = ratio("whole path, near-dedup off, 8x", "encode 8x", "cpu")
    speedup, speedup_rounds = ratio(
        "2 tasks on 2 workers, near-dedup on, 8x", "2 tasks on 1 worker, near-dedup on, 8x",
        "seconds",
    )  # fmt: skip
    growth = (
        rows["whole path, near-dedup on, 8x"]["peak_mib"]
        - rows["whole path, near-dedup on, 1x"]["peak_mib"]
    )
    measured = rows["whole path, near-dedup on, 8x"]
    per_core = measured["tokens"] / measured["cpu"]

    def listed(values: list[float]) -> str:
        return " / ".join(f"{value:.2f}" for value in values)

    print("ratios: the median of the rounds' ratios (each round's ratio in brackets)")
    print(f"whole path / raw encode, tokens per CPU-second (8x): {near:.2f}x with near-dedup "
          f"[{listed(near_rounds)}], {plain:.2f}x without [{listed(plain_rounds)}]")  # fmt: skip
    print(f"peak RSS 8x - 1x: {growth:+.0f} MiB; 2 workers / 1 worker (wall): {speedup:.2f}x "
          f"[{listed(speedup_rounds)}]")  # fmt: skip
    for label, tokens in (("Me-LLaMA", ME_LLAMA_TOKENS), ("GAP-Replay", GAP_REPLAY_TOKENS)):
        print(f"{label}: {tokens:.3g} tokens / {per_core:,.0f} tokens per CPU-second / 3600 = "
              f"{tokens / per_core / 3600:,.0f} core-hours")  # fmt: skip


if __name__ == "__main__":
    main()
