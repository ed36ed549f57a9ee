"""Exact and near-duplicate removal in staged form, so that no step holds the corpus in memory.

Each document has a global place: (source index in the recipe, task rank, index in the task's
cleaned output). Of a group of duplicates, the one first in that order is kept, so the first
occurrence in recipe order survives (a replayed web page can repeat an abstract).

- exact: `ExactSignature` (per task: a 64-bit hash of the normalised text, sorted on disk) ->
  `ExactFind` (one task: a k-way merge of the sorted files, the removal list of every task) ->
  `DropListed`.
- near: datatrove's MinHash stages. `NearSignature` (datatrove's signature step on whitespace words,
  lower-cased, as before) -> datatrove's `MinhashDedupBuckets` -> `FirstKeptCluster` (datatrove's
  union-find, keeping the earliest document of each cluster) -> `DropListed`.

The LSH bands and rows come from the recipe's threshold and permutation count (`minhash_config`),
the same optimum datasketch's `MinHashLSH` chooses (false positives and negatives weighted alike).
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupCluster,
    MinhashDedupSignature,
)
from datatrove.utils.binaryio import read_tuples_from_file
from datatrove.utils.word_tokenizers import WordTokenizer

import medarena.data.engine  # noqa: F401  (datatrove's dependency check, made fast)
from medarena.data.clean import Cleaning

EXACT = np.dtype([("hash", "<u8"), ("source", "<u4"), ("doc", "<u4")])
REMOVE = "{rank:06d}.remove"  # sorted uint32 indices of the documents a task drops
SOURCES = "{rank:05d}.sources"  # uint16 source index of each document of a task's cleaned output


def minhash_config(settings: Cleaning, seed: int) -> MinhashConfig:
    """Bands x rows for the threshold within the permutation budget; shingles of
    `shingle_words` words; 64-bit hashes."""
    bands, rows = lsh_bands(settings.near_dedup_threshold or 1.0, settings.minhash_permutations)
    return MinhashConfig(
        n_grams=settings.shingle_words,
        num_buckets=bands,
        hashes_per_bucket=rows,
        seed=seed,
    )


@lru_cache(maxsize=64)
def lsh_bands(threshold: float, permutations: int) -> tuple[int, int]:
    """(bands, rows) with bands x rows <= permutations minimising the false-positive mass below
    the threshold plus the false-negative mass above it, each weighted 0.5."""
    pairs = np.array(
        [(b, r) for b in range(1, permutations + 1) for r in range(1, permutations // b + 1)],
        dtype=float,
    )
    bands, rows = pairs[:, :1], pairs[:, 1:]
    below, above = np.linspace(0, threshold, 201), np.linspace(threshold, 1, 201)
    false_pos = np.trapezoid(1 - (1 - below**rows) ** bands, below, axis=1)
    false_neg = np.trapezoid((1 - above**rows) ** bands, above, axis=1)
    best = int(np.argmin(0.5 * false_pos + 0.5 * false_neg))
    return int(pairs[best, 0]), int(pairs[best, 1])


def read_removals(path: Path) -> np.ndarray:
    return np.fromfile(path, dtype="<u4") if path.exists() else np.zeros(0, "<u4")


class ExactSignature(PipelineStep):
    """Hash each document's text; write the task's (hash, source, doc) records sorted by hash."""

    name = "exact dedup: signatures"
    type = "medarena"

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        records = []
        for doc_index, document in enumerate(data):
            digest = hashlib.blake2b(document.text.encode(), digest_size=8).digest()
            source = document.metadata["source_index"]
            records.append((int.from_bytes(digest, "little"), source, doc_index))
            yield document
        array = np.sort(np.array(records, dtype=EXACT), order=["hash", "source", "doc"])
        self.folder.mkdir(parents=True, exist_ok=True)
        array.tofile(self.folder / f"{rank:05d}.exact")


class ExactFind(PipelineStep):
    """Merge every task's sorted hashes (one task); of equal hashes keep the earliest document
    and list the others in their task's removal file."""

    name = "exact dedup: find"
    type = "medarena"

    def __init__(self, folder: Path, tasks: int):
        super().__init__()
        self.folder, self.tasks = folder, tasks

    def _records(self, rank: int) -> Iterator[tuple[int, int, int, int]]:
        path = self.folder / f"{rank:05d}.exact"
        records = np.fromfile(path, dtype=EXACT) if path.exists() else np.zeros(0, EXACT)
        for start in range(0, len(records), 65536):
            chunk = records[start : start + 65536]
            yield from zip(
                chunk["hash"].tolist(),
                chunk["source"].tolist(),
                [rank] * len(chunk),
                chunk["doc"].tolist(),
                strict=True,
            )

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        removals: dict[int, list[int]] = {task: [] for task in range(self.tasks)}
        previous = None
        merged = heapq.merge(*(self._records(task) for task in range(self.tasks)))
        for digest, _source, task, doc in merged:  # sorted by (hash, source, task, doc)
            if digest == previous:
                removals[task].append(doc)
            previous = digest
        for task, docs in removals.items():
            np.array(sorted(docs), dtype="<u4").tofile(self.folder / REMOVE.format(rank=task))
        return data


class DropListed(PipelineStep):
    """Drop the documents listed in the task's removal file (by their `index` in the task's
    cleaned output; an earlier DropListed may have dropped some), counting `<label>/<source>`."""

    name = "drop listed documents"
    type = "medarena"

    def __init__(self, folder: Path, label: str):
        super().__init__()
        self.folder, self.label = folder, label

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        removals = read_removals(self.folder / REMOVE.format(rank=rank))
        position = 0
        for document in data:
            index = document.metadata["index"]
            while position < len(removals) and removals[position] < index:
                position += 1  # listed, but already dropped by an earlier step
            if position < len(removals) and removals[position] == index:
                self.stat_update(f"{self.label}/{document.metadata['source']}")
                continue
            yield document


class _Words(WordTokenizer):
    """Whitespace words (`get_shingles` below splits by itself; datatrove wants a tokenizer)."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return text.split("\n")

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError


class NearSignature(MinhashDedupSignature):
    """datatrove's MinHash signature step; shingles are `n_grams` lower-cased whitespace words
    (a document shorter than that is one shingle), hashed with 64-bit xxhash, as medarena's
    near-dedup has always shingled (datatrove's own English word tokenizer needs spaCy)."""

    def __init__(self, output_folder: str, config: MinhashConfig):
        super().__init__(output_folder, config, language=_Words())

    def get_shingles(self, text: str) -> np.ndarray:
        from xxhash import xxh64_intdigest

        words = text.lower().split()
        size = self.config.n_grams
        grams = {" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}
        hashes = [xxh64_intdigest(gram.encode()) for gram in grams if gram]
        return np.array(hashes, dtype=np.uint64).reshape((-1, 1))

    def get_signature(self, shingles: np.ndarray) -> list[list[int]]:
        """Min over the shingles of `(a x + b) mod 2^64 >> 32` per permutation, a odd: the
        multiply-add-shift universal hash (Dietzfelbinger), without datatrove's 64-bit modulo
        by a Mersenne prime, which cost more than the rest of the signature."""
        a, b = self.parameters
        hashed = (shingles * (a | np.uint64(1)) + b) >> np.uint64(32)
        bands = (self.config.num_buckets, self.config.hashes_per_bucket)
        return hashed.min(axis=0).reshape(bands).tolist()


class FirstKeptCluster(MinhashDedupCluster):
    """datatrove's clustering of duplicate pairs, keeping the earliest document (source index,
    task, document) of each cluster instead of an arbitrary one."""

    def __init__(self, input_folder: str, output_folder: Path, sources_folder: Path, config):
        super().__init__(input_folder, str(output_folder), config=config)
        self.removal_folder, self.sources_folder = output_folder, sources_folder
        self._sources: dict[int, np.ndarray] = {}

    def _place(self, node: tuple[int, int]) -> tuple[int, int, int]:
        task, doc = node
        if task not in self._sources:
            path = self.sources_folder / SOURCES.format(rank=task)
            self._sources[task] = np.memmap(path, dtype="<u2", mode="r")
        return int(self._sources[task][doc]), task, doc

    def run(self, data: DocumentsPipeline = None, _: int = 0, world_size: int = 1):
        parent: dict[tuple[int, int, int], tuple[int, int, int]] = {}

        def root(node):
            while parent.setdefault(node, node) != node:
                parent[node] = parent[parent[node]]  # path halving
                node = parent[node]
            return node

        for dup_file in self.input_folder.list_files(glob_pattern="*.dups"):
            with self.input_folder.open(dup_file, "rb") as handle:
                for f1, d1, f2, d2 in read_tuples_from_file(handle, "4I", lines_to_buffer=1024):
                    a, b = root(self._place((f1, d1))), root(self._place((f2, d2)))
                    if a != b:
                        parent[max(a, b)] = min(a, b)  # the earliest document stays the root
        removals: dict[int, list[int]] = {}
        for node in parent:
            if root(node) != node:
                removals.setdefault(node[1], []).append(node[2])
        self.removal_folder.mkdir(parents=True, exist_ok=True)
        for task, docs in removals.items():
            path = self.removal_folder / REMOVE.format(rank=task)
            path.write_bytes(struct.pack(f"<{len(docs)}I", *sorted(docs)))
        return data
