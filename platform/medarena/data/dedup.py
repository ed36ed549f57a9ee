"""Exact and near-duplicate removal in staged form, so that no step holds the corpus in memory.

Each document has a global place: (source index in the recipe, task rank, index in the task's
cleaned output). Of a group of duplicates, the one first in that order is kept, so the first
occurrence in recipe order survives (a replayed web page can repeat an abstract).

- exact: `ExactSignature` (per task: a 64-bit hash of the normalised text, sorted on disk) ->
  `ExactFind` (one task: a k-way merge of the sorted files, the removal list of every task) ->
  `medarena.data.steps.DropListed`.
- near: datatrove's MinHash stages. `NearSignature` (datatrove's signature step, the shingles
  and signatures of a batch of documents at once in numpy: `medarena.data.shingles`) ->
  `NearBuckets` (datatrove's bucket step in numpy over memory-mapped signature windows) ->
  `FirstKeptCluster` (datatrove's union-find, keeping the earliest document of each cluster) ->
  `medarena.data.steps.DropListed`.

The LSH bands and rows come from the recipe's threshold and permutation count (`minhash_config`),
the same optimum datasketch's `MinHashLSH` chooses (false positives and negatives weighted alike).
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from array import array
from collections.abc import Iterator
from functools import lru_cache
from itertools import pairwise
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
from datatrove.utils.typeshelper import StatHints
from datatrove.utils.word_tokenizers import WordTokenizer

import medarena.data.engine  # noqa: F401  (datatrove's dependency check, made fast)
from medarena.data.clean import Cleaning
from medarena.data.shingles import shingle_hashes, signatures

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
        digests, sources = bytearray(), array("H")  # 10 bytes a document, no object each
        for document in data:
            digests += hashlib.blake2b(document.text.encode(), digest_size=8).digest()
            sources.append(document.metadata["source_index"])
            yield document
        records = np.empty(len(sources), dtype=EXACT)
        records["hash"] = np.frombuffer(digests, dtype="<u8")
        records["source"] = np.frombuffer(sources, dtype=np.uint16)
        records["doc"] = np.arange(len(sources))
        records.sort(order=["hash", "source", "doc"])
        self.folder.mkdir(parents=True, exist_ok=True)
        records.tofile(self.folder / f"{rank:05d}.exact")


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


class _Words(WordTokenizer):
    """Whitespace words (datatrove's signature step wants a word tokenizer; medarena shingles
    by itself, `medarena.data.shingles`)."""

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return text.split("\n")

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError


class NearSignature(MinhashDedupSignature):
    """datatrove's MinHash signature step, computed for a batch of documents at once
    (`medarena.data.shingles`: shingles of `n_grams` lower-cased whitespace words, a document
    shorter than that one shingle). The bucket files are written in datatrove's record layout;
    datatrove's own step then sorts and verifies them, finding them written."""

    BATCH = 256  # documents hashed together

    def __init__(self, output_folder: str, config: MinhashConfig):
        super().__init__(output_folder, config, language=_Words())

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        a, b = (p.reshape(-1) for p in self.parameters)
        a = a | np.uint64(1)  # multiply-add-shift needs an odd multiplier
        rows = self.config.hashes_per_bucket
        record = np.dtype([("sig", "<u8", (rows,)), ("doc", "<u4")])
        with self.track_time():
            buckets = [
                self.output_folder.open(f"bucket_{bi:03d}/{rank:05d}.minhash.sig", mode="wb")
                for bi in range(self.config.num_buckets)
            ]
            for first, batch in _batches(data, self.BATCH):
                self.stat_update(StatHints.total, value=len(batch))
                hashes, per_document = shingle_hashes(batch, self.config.n_grams)
                sigs = signatures(hashes, per_document, a, b)
                records = np.empty(len(sigs), dtype=record)
                records["doc"] = first + np.flatnonzero(per_document > 0)
                for bi, bucket in enumerate(buckets):
                    records["sig"] = sigs[:, bi * rows : (bi + 1) * rows]
                    bucket.write(records.tobytes())
            for bucket in buckets:
                bucket.close()
        # datatrove's step, finding every bucket file written, only sorts and verifies them
        self.skip_existing_sigs = True
        super().run(iter(()), rank, world_size)


def _batches(data: DocumentsPipeline, size: int) -> Iterator[tuple[int, list[str]]]:
    """(index of the batch's first document, the batch's texts)."""
    first, texts = 0, []
    for document in data:
        texts.append(document.text)
        if len(texts) == size:
            yield first, texts
            first, texts = first + size, []
    if texts:
        yield first, texts


class NearBuckets(PipelineStep):
    """One LSH band (task rank = band): the pairs of documents, across every task, whose
    signatures agree on the whole band, as datatrove's `.dups` records (task, doc, task, doc)
    that `FirstKeptCluster` reads. Does what datatrove's `MinhashDedupBuckets` does without a
    Python object per signature: the sorted signature files are memory-mapped and read in
    windows of the band's first hash value, each window grouped in numpy, so memory is bounded
    by the window, not the corpus."""

    name = "near dedup: buckets"
    type = "medarena"
    WINDOW = 1 << 20  # signatures grouped at once

    def __init__(self, input_folder: Path, output_folder: Path, config: MinhashConfig):
        super().__init__()
        self.input_folder, self.output_folder, self.config = input_folder, output_folder, config

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        rows = self.config.hashes_per_bucket
        record = np.dtype([("sig", "<u8", (rows,)), ("doc", "<u4")])
        tasks = []  # (task rank, its signatures sorted by hash)
        for path in sorted((self.input_folder / f"bucket_{rank:03d}").glob("*.minhash.sig")):
            if path.stat().st_size:
                tasks.append((int(path.name.split(".")[0]), np.memmap(path, record, mode="r")))
        total = sum(len(records) for _, records in tasks)
        top = max((int(records["sig"][-1, 0]) for _, records in tasks), default=0)
        windows = -(-total // self.WINDOW) or 1
        edges = [top * k // windows for k in range(windows)] + [top + 1]
        self.output_folder.mkdir(parents=True, exist_ok=True)
        with open(self.output_folder / f"{rank:05d}_00.dups", "wb") as out:
            for low, high in pairwise(edges):
                pairs = self._pairs(tasks, low, high)
                out.write(pairs.astype("<u4").tobytes())
                self.stat_update("total_matches", value=len(pairs))
        return data

    @staticmethod
    def _pairs(tasks: list[tuple[int, np.ndarray]], low: int, high: int) -> np.ndarray:
        """(task, doc, task, doc) of each signature equal to the one before it, among those
        whose first hash is in [low, high), ordered by (signature, task, doc)."""
        parts, owners = [], []
        for task, records in tasks:
            first = records["sig"][:, 0]
            start, stop = np.searchsorted(first, [low, high], side="left")
            parts.append(np.asarray(records[start:stop]))
            owners.append(np.full(stop - start, task, dtype=np.uint32))
        window = np.concatenate(parts)
        if len(window) < 2:
            return np.zeros((0, 4), dtype=np.uint32)
        task_of = np.concatenate(owners)
        sig = window["sig"]
        key = _mix_rows(sig)
        order = np.lexsort((window["doc"], task_of, key))
        sig, task_of, doc = sig[order], task_of[order], window["doc"][order]
        same = np.flatnonzero((sig[1:] == sig[:-1]).all(axis=1))  # each equal to the one before
        return np.stack([task_of[same], doc[same], task_of[same + 1], doc[same + 1]], axis=1)


def _mix_rows(rows: np.ndarray) -> np.ndarray:
    """One uint64 per row of uint64 values (equal rows, equal keys), to sort rows by."""
    key = np.zeros(len(rows), dtype=np.uint64)
    for column in rows.T:
        key *= np.uint64(0x9E3779B97F4A7C15)
        key ^= column
    return key


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
