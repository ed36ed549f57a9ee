"""Seeded, deterministic sampling of documents to the recipe's token ratios.

Each source gets `ratio x total` tokens. A source with fewer tokens is up-sampled (whole passes,
then a seeded part of one more pass); a source with more is down-sampled. The realised mix, in
tokens, is reported next to the target, with each source's epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SourceShare:
    documents: int  # selected, counting repeats
    tokens: int
    share: float  # realised, of all selected tokens
    target_share: float
    epochs: float  # selected tokens / available tokens


def target_total(available: dict[str, int], ratios: dict[str, float]) -> int:
    """The natural size of the mix: every available token of the corpus, re-weighted."""
    return sum(count for name, count in available.items() if ratios.get(name, 0) > 0)


def select_documents(
    doc_tokens: dict[str, np.ndarray],
    ratios: dict[str, float],
    seed: int,
    total_tokens: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, SourceShare]]:
    """Indices of the documents each source contributes (repeats allowed), and the realised mix.

    `doc_tokens[source]` holds the token count of each document; `ratios` sum to 1.
    """
    available = {name: int(counts.sum()) for name, counts in doc_tokens.items()}
    empty = [name for name, count in available.items() if count == 0 and ratios.get(name, 0) > 0]
    if empty:
        raise ValueError(f"sources with a positive ratio but no tokens after cleaning: {empty}")
    total = total_tokens or target_total(available, ratios)
    rng = np.random.default_rng(seed)
    selected: dict[str, np.ndarray] = {}
    for name in sorted(doc_tokens):
        target = ratios.get(name, 0.0) * total
        counts = doc_tokens[name]
        passes, remainder = divmod(target, available[name]) if available[name] else (0, 0)
        order = rng.permutation(len(counts))
        whole = np.tile(np.arange(len(counts)), int(passes))
        cumulative = np.cumsum(counts[order])
        # the part pass: documents in seeded order until the remaining target is reached
        part = order[: int(np.searchsorted(cumulative, remainder, side="left"))]
        selected[name] = np.concatenate([whole, part]).astype(np.int64)
    realised = {name: int(doc_tokens[name][idx].sum()) for name, idx in selected.items()}
    grand = sum(realised.values()) or 1
    shares = {
        name: SourceShare(
            documents=len(selected[name]),
            tokens=realised[name],
            share=realised[name] / grand,
            target_share=ratios.get(name, 0.0),
            epochs=realised[name] / available[name] if available[name] else 0.0,
        )
        for name in selected
    }
    return selected, shares
