"""Data: the raw record readers medarena shares, and the continual-pretraining data pipeline,
built on datatrove (streaming readers, staged dedup, local and SLURM executors).

- `records`: rows of jsonl / json / csv / parquet files or hub datasets, each with its place
  (file and line), for the benchmarks and the instruction data.
- `corpus`: a recipe's corpus `Source` and the registered corpus readers (datatrove reader steps).
- `readers`: those readers: JSONL / CSV / parquet / JSON files (.gz, .zst), text folders, the hub,
  with located problems.
- `clean`: the `Cleaning` settings; normalisation and length filters as pipeline steps.
- `dedup`: exact and MinHash near-duplicate removal in stages (signatures, buckets, clusters,
  filter).
- `steps`: the cleaned documents on disk between stages; batch tokenization into per-task files.
- `pipeline`: the stages and their executor; resumable tasks.
- `mix`: seeded sampling of documents to the recipe's token ratios.
- `pack`: packing into memory-mapped shards, streamed; `PackedDataset` reads them back in a
  resumable order.
- `prepare`: the whole pipeline for one recipe.

This package builds on `schemas`, `errors` and `extensions` only: `pretrain`, `instruct` and
`evaluate` import it, never the other way round.
"""
