"""Analysis of stored results: re-scoring stored outputs with another extraction rule, and
contamination of benchmark items against a variant's own training data."""
