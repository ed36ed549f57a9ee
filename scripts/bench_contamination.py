"""Contamination check throughput for docs/PERFORMANCE.md: a synthetic corpus (JSONL records,
built from the bundled pretraining samples, shuffled so documents differ) scanned against every
item of the bundled benchmark samples, compared with reading + normalising the same corpus
alone (goal: the check at least 0.8x that speed).

Run: .venv/bin/python scripts/bench_contamination.py [--words 5000000 --repeat 3 --n 13]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "platform"))

from medarena.analysis.contamination import item_segments  # noqa: E402
from medarena.analysis.corpora import path_corpus  # noqa: E402
from medarena.analysis.ngrams import OverlapIndex  # noqa: E402
from medarena.data.clean import normalise  # noqa: E402
from medarena.evaluate.runner import load_task_data  # noqa: E402
from medarena.evaluate.spec import load_benchmarks  # noqa: E402

SAMPLES = REPO / "pretrain" / "samples"


def corpus_file(folder: Path, words: int) -> Path:
    """JSONL documents of ~300 words drawn (seeded) from the bundled samples' sentences."""
    sentences = []
    for path in sorted(SAMPLES.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            text = " ".join(v for v in record.values() if isinstance(v, str))
            sentences += [s.strip() + "." for s in text.split(".") if len(s.split()) > 3]
    rng = random.Random(0)
    out, written, index = folder / "corpus.jsonl", 0, 0
    with out.open("w") as handle:
        while written < words:
            chosen, size = [], 0
            while size < 300:
                sentence = rng.choice(sentences)
                chosen.append(sentence)
                size += len(sentence.split())
            handle.write(json.dumps({"id": f"d{index:07d}", "text": " ".join(chosen)}) + "\n")
            written, index = written + size, index + 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--words", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n", type=int, default=13)
    parser.add_argument("--workers", type=int, default=2, help="the parallel check's processes")
    args = parser.parse_args()

    tasks = load_benchmarks(REPO)
    items = [item for task in tasks.values() for item in load_task_data(task, REPO).items]
    with tempfile.TemporaryDirectory() as tmp:
        path = corpus_file(Path(tmp), args.words)
        corpus = path_corpus(path)

        def read_and_normalise() -> int:
            return sum(len(normalise(text)) > 0 for _, text in corpus.documents())

        def check(workers: int = 1) -> int:
            index = OverlapIndex(((item.id, item_segments(item)) for item in items), args.n)
            index.scan(corpus.name, corpus.documents(), workers)
            return sum(bool(overlap.matched) for overlap in index.items.values())

        def check_parallel() -> int:
            return check(args.workers)

        documents = read_and_normalise()
        assert check() == check_parallel()  # the same items found either way
        baseline, checked, parallel = [], [], []
        for _ in range(args.repeat):
            for runs, fn in (
                (baseline, read_and_normalise),
                (checked, check),
                (parallel, check_parallel),
            ):
                started = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - started)
    words = args.words / 1e6
    machine = platform.processor() or platform.machine()
    print(f"{time.strftime('%Y-%m-%d')} on {machine}: {documents:,} documents, "
          f"~{words:.1f}M words, {len(items)} items, n={args.n}")  # fmt: skip
    for name, runs in (
        ("read + normalise", baseline),
        ("contamination check", checked),
        (f"contamination check, {args.workers} workers", parallel),
    ):
        rates = sorted(args.words / run / 1e6 for run in runs)
        print(f"| {name} | {rates[0]:.2f} | {statistics.median(rates):.2f} | {rates[-1]:.2f} |"
              f" M words/s | {len(runs)} |")  # fmt: skip
    print(f"ratio (median check / median baseline speed): "
          f"{statistics.median(baseline) / statistics.median(checked):.2f}x; "
          f"{args.workers} workers / 1: "
          f"{statistics.median(checked) / statistics.median(parallel):.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
