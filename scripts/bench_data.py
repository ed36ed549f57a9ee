"""Tokenize + pack throughput for docs/PERFORMANCE.md (goal: at least 1M tokens/s on 2 cores).

Documents are the bundled text (`platform/medarena/assets/tiny_corpus.txt`) cut into paragraphs
and repeated to `--tokens`; the tokenizer is the embedded tiny family's byte-level BPE (vocab
1,024; a 32k-vocabulary tokenizer makes fewer, longer tokens from the same text).

    .venv/bin/python scripts/bench_data.py --tokens 20000000
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from medarena.data.corpus import Document
from medarena.data.pack import pack, tokenize
from medarena.tiny import build_tiny, default_corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=20_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    paragraphs = [p for p in default_corpus().read_text().split("\n\n") if p.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = AutoTokenizer.from_pretrained(build_tiny(Path(tmp) / "tiny").path)
        sample = tokenize([Document("s", "0", p) for p in paragraphs], tokenizer)
        copies = max(1, args.tokens // len(sample.tokens))
        docs = [Document("s", str(i), p) for i in range(copies) for p in paragraphs]
        rates = []
        for run in range(args.repeat):
            start = time.perf_counter()
            tokens = tokenize(docs, tokenizer, batch_size=args.batch_size)
            report = pack(
                {"s": tokens},
                {"s": 1.0},
                Path(tmp) / f"packed-{run}",
                sequence_length=2048,
                seed=run,
            )
            rates.append(len(tokens.tokens) / (time.perf_counter() - start))
    print(
        f"{date.today()}, {os.cpu_count()} CPUs, {len(docs):,} documents, "
        f"{len(tokens.tokens):,} tokens, {report.sequences:,} sequences of 2048"
    )
    print(
        f"tokenize + pack: min {min(rates):,.0f} / median {statistics.median(rates):,.0f} / "
        f"max {max(rates):,.0f} tokens/s over {args.repeat} runs"
    )


if __name__ == "__main__":
    main()
