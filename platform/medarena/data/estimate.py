"""The data stage of a pretraining plan: what preparing a recipe's mix costs, from the rates
that `scripts/bench_data.py` measured (docs/PERFORMANCE.md, "Pretraining data preparation").

    core-hours = expected tokens / (tokens per second of one worker) / 3600
    wall hours = core-hours / (nodes x cores per node)

Expected tokens are the recipe's published token counts where it gives them, else the local
corpus bytes at 4 bytes per token (medarena's assumption, as in the evaluation plan). Disk for
intermediate files: the cleaned text (about the local corpus; for hub sources, 4 bytes per
token) plus the tokens three times (per-task files, their join, the shards). Nothing is read
but file sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medarena.data.corpus import Source, source_bytes

# scripts/bench_data.py --repeat 5, 2026-12-01, 2-core machine (docs/PERFORMANCE.md): the whole
# path with near-dedup on, 8x corpus, one single-threaded worker, tiny byte-level BPE, tokens per
# CPU-second (median of 5 rounds); the peak RSS of that worker
TOKENS_PER_CORE_SECOND = 1_388_782.0
PEAK_WORKER_MIB = 640.0
BYTES_PER_TOKEN = 4  # medarena's assumption where the recipe publishes no token count


@dataclass(frozen=True)
class DataPlan:
    corpus_bytes: int | None  # local sources as stored; None when a source is on the hub
    expected_tokens: float | None
    core_hours: float | None
    wall_hours: float | None
    cores: int  # nodes x cores per node
    peak_memory_mib_per_worker: float
    intermediate_disk_gib: float | None
    notes: list[str]


def plan_data(
    sources: list[Source],
    published_tokens: float,
    pretrain_dir: Path,
    *,
    nodes: int,
    cores_per_node: int,
    token_bytes: int = 2,
) -> DataPlan:
    sizes = [source_bytes(source, pretrain_dir) for source in sources]
    local = None if any(size is None for size in sizes) else sum(s or 0 for s in sizes)
    notes = []
    if published_tokens:
        tokens: float | None = float(published_tokens)
        notes.append("tokens: the recipe's published per-source counts")
    elif local is not None:
        tokens = local / BYTES_PER_TOKEN
        notes.append(f"tokens: local corpus bytes / {BYTES_PER_TOKEN} (medarena's assumption)")
    else:
        tokens = None
        notes.append("tokens unknown: a hub source and no published counts")
    cores = nodes * cores_per_node
    core_hours = tokens / TOKENS_PER_CORE_SECOND / 3600 if tokens else None
    disk = None
    if tokens:
        text = local if local is not None else tokens * BYTES_PER_TOKEN
        disk = (text + 3 * token_bytes * tokens) / 2**30
    notes.append(
        f"rates measured by scripts/bench_data.py ({TOKENS_PER_CORE_SECOND:,.0f} tokens per "
        f"CPU-second, tiny tokenizer); {cores_per_node} cores per node (this machine's)"
    )
    return DataPlan(
        corpus_bytes=local,
        expected_tokens=tokens,
        core_hours=core_hours,
        wall_hours=core_hours / cores if core_hours is not None else None,
        cores=cores,
        peak_memory_mib_per_worker=PEAK_WORKER_MIB,
        intermediate_disk_gib=disk,
        notes=notes,
    )
