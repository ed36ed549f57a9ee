"""Pretraining data: corpus readers, cleaning and deduplication, token-ratio mixing, tokenizing
and packing into memory-mapped shards."""
