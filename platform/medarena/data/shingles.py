"""MinHash shingles and signatures of a batch of documents at once, in numpy.

A shingle is `n` consecutive lower-cased whitespace words of one document (a document with fewer
words is one shingle; one without words has none). Hashes are deterministic across processes and
machines (no Python `hash`), so tasks on different SLURM nodes agree:

- a word's hash is a polynomial over its UTF-8 bytes modulo 2^64, computed for every word of the
  batch from one prefix sum (`(S[end] - S[start]) * base^-start`), then mixed with the word's
  length by the SplitMix64 finaliser;
- a shingle's hash is a polynomial over its words' hashes, mixed the same way.

The signature of a document is, per permutation k, the minimum over its shingles x of
`(a_k x + b_k) mod 2^64`, shifted right by 32 (the multiply-add-shift universal hash,
Dietzfelbinger 1996; the shift is monotone, so it is applied to the minimum). Shingles are
processed in row blocks small enough to stay in the CPU cache, several documents per block.
"""

from __future__ import annotations

import numpy as np

_BYTE_BASE = 0x100000001B3  # FNV-1a's 64-bit prime: odd, so it has an inverse modulo 2^64
_BYTE_BASE_INVERSE = pow(_BYTE_BASE, -1, 1 << 64)
_WORD_BASE = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd
_SPACE = 32
_MASK = (1 << 64) - 1
ROWS = 1024  # shingles per block of the signature: 117 x 1024 uint64 stay in L2 cache


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser, in place (uint64 arithmetic wraps)."""
    values ^= values >> np.uint64(30)
    values *= np.uint64(0xBF58476D1CE4E5B9)
    values ^= values >> np.uint64(27)
    values *= np.uint64(0x94D049BB133111EB)
    values ^= values >> np.uint64(31)
    return values


class _Powers:
    """base^0, base^1, ... modulo 2^64, computed once and grown on demand."""

    def __init__(self, base: int):
        self.base, self.values = base, np.ones(1, dtype=np.uint64)

    def first(self, count: int) -> np.ndarray:
        if len(self.values) < count:
            size = max(count, 2 * len(self.values))
            factors = np.full(size, self.base, dtype=np.uint64)
            factors[0] = 1
            self.values = np.cumprod(factors, dtype=np.uint64)
        return self.values[:count]


_BYTE_POWERS, _INVERSE_POWERS = _Powers(_BYTE_BASE), _Powers(_BYTE_BASE_INVERSE)


def word_hashes(text: bytes) -> np.ndarray:
    """The hash of every word of `text`: words are separated by single spaces, with no space
    at either end (as `" ".join(words)` writes them)."""
    if not text:
        return np.zeros(0, np.uint64)
    data = np.frombuffer(text, dtype=np.uint8)
    spaces = np.flatnonzero(data == _SPACE)
    starts = np.concatenate(([0], spaces + 1))
    ends = np.concatenate((spaces, [len(data)]))
    weighted = data.astype(np.uint64)
    weighted *= _BYTE_POWERS.first(len(data))
    prefix = np.zeros(len(data) + 1, dtype=np.uint64)
    np.cumsum(weighted, out=prefix[1:])
    hashes = prefix[ends] - prefix[starts]
    hashes *= _INVERSE_POWERS.first(len(data))[starts]
    hashes ^= (ends - starts).astype(np.uint64) << np.uint64(56)
    return _mix(hashes)


def shingle_hashes(texts: list[str], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(hashes of every document's shingles, one after the other; the number of shingles of
    each document). The texts are normalised (`medarena.data.clean.normalise`: words apart by
    one space, one newline or one blank line), so no word is split out in Python."""
    lowered = [text.lower().replace("\n\n", " ").replace("\n", " ") for text in texts]
    counts = np.array([text.count(" ") + 1 if text else 0 for text in lowered], dtype=np.int64)
    flat = word_hashes(" ".join(text for text in lowered if text).encode())
    ends = np.cumsum(counts)
    starts = ends - counts
    size = max(len(flat) - n + 1, 0)
    windows = flat[:size].copy()
    for k in range(1, n):
        windows *= _WORD_BASE
        windows += flat[k : k + size]
    per_document = np.maximum(counts - n + 1, 0)
    # a window belongs to the document it starts in if it ends there too
    keep = np.zeros(size, dtype=bool)
    for start, number in zip(starts.tolist(), per_document.tolist(), strict=True):
        keep[start : start + number] = True
    shingles = windows[keep]
    short = np.flatnonzero((counts > 0) & (counts < n))
    if len(short):  # one shingle of all the document's words, at its place
        per_document[short] = 1
        pieces, taken = [], 0
        for document in range(len(texts)):
            if counts[document] >= n:
                pieces.append(shingles[taken : taken + per_document[document]])
                taken += int(per_document[document])
            elif counts[document]:
                value = 0  # the window's polynomial, in Python integers
                for word in flat[starts[document] : ends[document]].tolist():
                    value = (value * int(_WORD_BASE) + word) & _MASK
                pieces.append(np.array([value], dtype=np.uint64))
        shingles = np.concatenate(pieces) if pieces else np.zeros(0, np.uint64)
    return _mix(shingles), per_document


def signatures(
    shingles: np.ndarray, per_document: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """(documents with shingles, permutations) uint64: each document's minimum of
    `(a x + b) mod 2^64 >> 32` over its shingles x; `a` odd."""
    counts = per_document[per_document > 0]
    bounds = np.concatenate(([0], np.cumsum(counts)))
    result = np.full((len(counts), len(a)), np.iinfo(np.uint64).max, dtype=np.uint64)
    block = np.empty((len(a), ROWS), dtype=np.uint64)  # permutations x shingles
    a_column, b_column = a[:, None], b[:, None]
    for low in range(0, len(shingles), ROWS):
        rows = shingles[low : low + ROWS]
        hashed = block[:, : len(rows)]
        np.multiply(a_column, rows[None, :], out=hashed)
        hashed += b_column
        first = int(np.searchsorted(bounds, low, side="right")) - 1
        last = int(np.searchsorted(bounds, low + len(rows), side="left"))
        local = np.maximum(bounds[first:last], low) - low  # each document's first row here
        minima = np.minimum.reduceat(hashed, local, axis=1).T
        np.minimum(result[first:last], minima, out=result[first:last])
    return result >> np.uint64(32)
