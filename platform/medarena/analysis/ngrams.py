"""Word n-gram overlap between benchmark items and a stream of corpus documents.

The method of the GPT-3 paper's Appendix C as lm-evaluation-harness applies it
(docs/decontamination.md: a test item is contaminated when any of its 13-grams occurs in a
training document; OpenAI used 8 to 13 by dataset, lm-eval 13 throughout). Words are those of
the text as training normalises it (medarena.data.clean.normalise), lower-cased, made of letters,
digits and underscores (punctuation dropped: medarena's choice, so "(B)" and "B." meet).
`normalise` changes only whitespace after NFKC, which never changes such words, so `words` skips
its whitespace passes (a test checks both give the same words).

Each item is a few segments (question with its context; options and answer), each cut into
n-grams on its own, so no n-gram spans two fields. Only the items' n-grams are held in memory;
documents stream through in batches (`OverlapIndex.scan`): each window of n words is hashed by
a rolling polynomial over the words' hashes (numpy), looked up in the items' hashes, and a hit
is confirmed on the words themselves.
"""

from __future__ import annotations

import multiprocessing
import re
import unicodedata
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, islice
from multiprocessing.pool import AsyncResult

import numpy as np

METHOD = "word-ngram-overlap-1"  # bump when a change can flag an item differently
BATCH = 256  # documents hashed together
_WORD = re.compile(r"\w+")
# ASCII text: letters lower-cased, letters / digits / "_" kept, everything else a space
_ASCII_WORDS = bytes(
    (c + 32 if 65 <= c <= 90 else c) if chr(c).isalnum() or c == 95 else 32 for c in range(128)
) + bytes(128)
_BASE = np.uint64(1099511628211)  # the rolling hash's multiplier (FNV's 64-bit prime)
_MASK = (1 << 64) - 1
_TABLE_BITS = 22  # a bitmap of the items' hashes' low bits: a cheap first filter (4 MiB)

NGram = tuple[str, ...]


def words(text: str) -> list[str]:
    """The words n-grams are made of: NFKC like `normalise`, lower-cased, punctuation dropped."""
    text = unicodedata.normalize("NFKC", text)
    if text.isascii():  # the same words as the regex, several times faster
        return text.encode().translate(_ASCII_WORDS).decode().split()
    return _WORD.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[NGram]:
    return list(zip(*(tokens[i:] for i in range(n)), strict=False))


def _window_hashes(tokens: Sequence[str], n: int) -> np.ndarray:
    """The rolling hash of every window of n tokens (wrapping uint64 arithmetic)."""
    ids = np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)
    size = len(ids) - n + 1
    if size <= 0:
        return np.empty(0, dtype=np.uint64)
    hashes = ids[:size].copy()
    for k in range(1, n):
        hashes *= _BASE
        hashes += ids[k : k + size]
    return hashes


def _gram_hash(gram: NGram) -> int:
    """`_window_hashes`' value for one n-gram, in Python integers."""
    value = 0
    for token in gram:
        value = (value * int(_BASE) + (hash(token) & _MASK)) & _MASK
    return value


@dataclass
class ItemOverlap:
    """What one item shares with the corpora."""

    item_id: str
    segments: list[list[NGram]]  # each segment's n-grams, in order
    matched: set[NGram] = field(default_factory=set)
    where: Counter[tuple[str, str]] = field(default_factory=Counter)  # (corpus, doc) -> n-grams

    @property
    def total(self) -> int:
        return len({gram for segment in self.segments for gram in segment})

    def longest(self, n: int) -> int:
        """The longest run of words of the item found in the corpora (0: none)."""
        best = 0
        for segment in self.segments:
            run = 0
            for gram in segment:
                run = run + 1 if gram in self.matched else 0
                best = max(best, run + n - 1 if run else 0)
        return best

    def share(self) -> float:
        return len(self.matched) / self.total if self.total else 0.0


class OverlapIndex:
    """The items' n-grams -> the items that have them; `scan` marks what documents contain."""

    def __init__(self, items: Iterable[tuple[str, Sequence[str]]], n: int):
        self.n = n
        self.items: dict[str, ItemOverlap] = {}
        self._owners: dict[NGram, list[ItemOverlap]] = defaultdict(list)
        for item_id, segments in items:
            grams = [ngrams(words(segment), n) for segment in segments]
            overlap = ItemOverlap(item_id, grams)
            self.items[item_id] = overlap
            for gram in {gram for segment in grams for gram in segment}:
                self._owners[gram].append(overlap)
        self._hashes = {_gram_hash(gram) for gram in self._owners}
        self._table = np.zeros(1 << _TABLE_BITS, dtype=bool)
        low = np.fromiter(self._hashes, dtype=np.uint64, count=len(self._hashes))
        self._table[low & np.uint64((1 << _TABLE_BITS) - 1)] = True

    def scan(self, corpus: str, documents: Iterable[tuple[str, str]], workers: int = 1) -> int:
        """Mark the items' n-grams found in `corpus`'s (id, text) documents, read once in
        batches; returns how many documents were read. With `workers` > 1, forked processes
        cut and hash the batches (the index is inherited, never pickled) and this process
        reads the documents and marks what they found, in the documents' order."""
        read = 0
        for batch, found in self._found_in(documents, workers):
            self._mark(corpus, batch, found)
            read += len(batch)
        return read

    def _found_in(
        self, documents: Iterable[tuple[str, str]], workers: int
    ) -> Iterator[tuple[list[tuple[str, str]], set[tuple[int, NGram]]]]:
        batches = _batches(documents, BATCH)
        if workers <= 1:
            yield from ((batch, self._find(batch)) for batch in batches)
            return
        global _FORKED_INDEX
        _FORKED_INDEX = self  # what the forked workers search with
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                # at most two batches per worker in flight: memory stays bounded
                pending: deque[tuple[list[tuple[str, str]], AsyncResult]] = deque()
                for batch in batches:
                    pending.append((batch, pool.apply_async(_find_forked, (batch,))))
                    if len(pending) >= 2 * workers:
                        done, result = pending.popleft()
                        yield done, result.get()
                while pending:
                    done, result = pending.popleft()
                    yield done, result.get()
        finally:
            _FORKED_INDEX = None

    def _find(self, batch: list[tuple[str, str]]) -> set[tuple[int, NGram]]:
        """(document index in `batch`, n-gram) for each item n-gram a document contains."""
        tokens = [words(text) for _, text in batch]
        flat = list(chain.from_iterable(tokens))
        hashes = _window_hashes(flat, self.n)
        candidates = np.flatnonzero(self._table[hashes & np.uint64((1 << _TABLE_BITS) - 1)])
        found: set[tuple[int, NGram]] = set()  # (document, n-gram): each counted once
        if not len(candidates):
            return found
        starts = np.cumsum([0] + [len(t) for t in tokens])  # each document's first word
        for position, value in zip(candidates.tolist(), hashes[candidates].tolist(), strict=True):
            if value not in self._hashes:
                continue
            document = int(np.searchsorted(starts, position, side="right")) - 1
            if position + self.n <= starts[document + 1]:  # not running into the next one
                found.add((document, tuple(flat[position : position + self.n])))
        return found

    def _mark(
        self, corpus: str, batch: list[tuple[str, str]], found: set[tuple[int, NGram]]
    ) -> None:
        for document, gram in found:
            for overlap in self._owners.get(gram, ()):  # absent: a hash collision
                overlap.matched.add(gram)
                overlap.where[(corpus, batch[document][0])] += 1


# the index a forked worker searches with (set by `scan` before the pool forks)
_FORKED_INDEX: OverlapIndex | None = None


def _find_forked(batch: list[tuple[str, str]]) -> set[tuple[int, NGram]]:
    assert _FORKED_INDEX is not None, "scan sets the index before forking"
    return _FORKED_INDEX._find(batch)


def _batches(documents: Iterable[tuple[str, str]], size: int) -> Iterator[list]:
    iterator = iter(documents)
    while batch := list(islice(iterator, size)):
        yield batch
