"""Data: the raw record readers medarena shares, and the continual-pretraining data pipeline.

- `records`: rows of jsonl / json / csv / parquet files or hub datasets, each with its place
  (file and line), for the benchmarks, the instruction data and the corpora.
- `corpus`: a recipe's corpus `Source` and the registered corpus readers that make documents.
- `clean`: the `Cleaning` settings; normalisation, length filters, exact and near-duplicate removal.
- `mix`: seeded sampling of documents to the recipe's token ratios.
- `pack`: tokenizing and packing into memory-mapped shards; `PackedDataset` reads them back in a
  resumable order.
- `prepare`: the whole pipeline for one recipe.

This package builds on `schemas`, `errors` and `extensions` only: `pretrain`, `instruct` and
`evaluate` import it, never the other way round.
"""
