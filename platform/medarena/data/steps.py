"""The pipeline steps between cleaning and packing: the cleaned documents of a task on disk
(written once as plain UTF-8, read back in batches after the dedup stages) and batch tokenization
into per-task files.

After the dedup stages nothing needs a document on its own, so the tokenize stage passes
`CleanedBatch`es (texts with their source and place as arrays) from step to step instead of a
datatrove `Document` per text: the removal lists are applied to a batch at once and the texts go
to the tokenizer as they were read.

A task's files are named by its rank, so a task that is run again overwrites what a killed run
of it left; datatrove marks a task complete only after its last step returned.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from medarena.data.dedup import REMOVE, SOURCES, read_removals

TEXTS = "{rank:05d}.texts"  # the task's cleaned texts, UTF-8, one after the other
ENDS = "{rank:05d}.ends"  # uint64: the byte offset in TEXTS where each text ends
TOKENS = "{rank:05d}.tokens"  # the task's tokens of one source, each document followed by EOS
LENGTHS = "{rank:05d}.lengths"  # uint32 tokens of each document (EOS included)
BUFFER = 1 << 20  # bytes: a write call per document cost more than the encoding


class CleanedWriter(PipelineStep):
    """Write each cleaned document's text and its source index; pass it on, tagged with
    `source_index`, the source's place in the recipe."""

    name = "cleaned documents"
    type = "medarena"

    def __init__(self, folder: Path, source_order: dict[str, int]):
        super().__init__()
        self.folder, self.source_order = folder, source_order

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        self.folder.mkdir(parents=True, exist_ok=True)
        indices, ends, offset = array("H"), array("Q"), 0
        with ExitStack() as files:
            texts, ends_file, sources_file = (
                files.enter_context(open(self.folder / name.format(rank=rank), "wb", BUFFER))
                for name in (TEXTS, ENDS, SOURCES)
            )
            for document in data:
                source = self.source_order[document.metadata["source"]]
                document.metadata["source_index"] = source
                offset += texts.write(document.text.encode())
                indices.append(source)
                ends.append(offset)
                if len(ends) == FLUSH:  # memory bounded whatever the task's size
                    _drain(ends, "<u8", ends_file)
                    _drain(indices, "<u2", sources_file)
                yield document
            _drain(ends, "<u8", ends_file)
            _drain(indices, "<u2", sources_file)


FLUSH = 1 << 16  # documents whose offsets and sources are written at once


def _drain(values: array, dtype: str, handle: BinaryIO) -> None:
    """Append `values` to `handle` as `dtype` and empty them."""
    handle.write(np.asarray(values).astype(dtype).tobytes())
    del values[:]


@dataclass(frozen=True)
class CleanedBatch:
    """Consecutive cleaned documents of a task, less those dropped so far."""

    texts: list[str]
    sources: np.ndarray  # each text's source index in the recipe
    indices: np.ndarray  # each text's place in the task's cleaned output (what removals name)
    names: tuple[str, ...]  # the recipe's source names, by source index

    def without(self, drop: np.ndarray) -> CleanedBatch:
        """The batch less the texts where `drop` is true."""
        kept = np.flatnonzero(~drop)
        return CleanedBatch(
            [self.texts[i] for i in kept.tolist()],
            self.sources[kept],
            self.indices[kept],
            self.names,
        )

    def count_by_source(self, selected: np.ndarray) -> dict[str, int]:
        """How many of the `selected` texts (a mask) each source has."""
        counts = np.bincount(self.sources[selected], minlength=len(self.names))
        return {self.names[i]: int(n) for i, n in enumerate(counts.tolist()) if n}


class CleanedBatches(PipelineStep):
    """The task's cleaned documents in batches of `BATCH`, in the order they were written."""

    name = "read cleaned documents"
    type = "medarena"
    BATCH = 1024  # texts read, filtered and encoded together

    def __init__(self, folder: Path, names: list[str]):
        super().__init__()
        self.folder, self.names = folder, tuple(names)

    def run(self, data: Any = None, rank: int = 0, world_size: int = 1) -> Iterator[CleanedBatch]:
        # memory-mapped, read a batch at a time: memory bounded whatever the task's size
        ends = _mapped(self.folder / ENDS.format(rank=rank), "<u8")
        sources = _mapped(self.folder / SOURCES.format(rank=rank), "<u2")
        with open(self.folder / TEXTS.format(rank=rank), "rb") as handle:
            for first in range(0, len(ends), self.BATCH):
                last = min(first + self.BATCH, len(ends))
                start = int(ends[first - 1]) if first else 0
                chunk = handle.read(int(ends[last - 1]) - start)
                bounds = [0, *(ends[first:last].astype(np.int64) - start).tolist()]
                texts = [chunk[a:b].decode() for a, b in pairwise(bounds)]
                indices = np.arange(first, last, dtype=np.int64)
                yield CleanedBatch(texts, np.array(sources[first:last]), indices, self.names)


def _mapped(path: Path, dtype: str) -> np.ndarray:
    """The file's values, memory-mapped (an empty file cannot be mapped: no values)."""
    if not path.stat().st_size:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r")


class DropListed(PipelineStep):
    """Drop the documents listed in the task's removal file (by their place in the task's cleaned
    output), counting `<label>/<source>`: the filter stage of a dedup."""

    name = "drop listed documents"
    type = "medarena"

    def __init__(self, folder: Path, label: str):
        super().__init__()
        self.folder, self.label = folder, label

    def run(self, data: Iterator[CleanedBatch], rank: int = 0, world_size: int = 1):
        removals = read_removals(self.folder / REMOVE.format(rank=rank)).astype(np.int64)
        for batch in data:
            if len(removals):  # both sorted: a binary search per text (`np.isin` would sort all)
                at = np.minimum(np.searchsorted(removals, batch.indices), len(removals) - 1)
                drop = removals[at] == batch.indices
                if drop.any():
                    for source, count in batch.count_by_source(drop).items():
                        self.stat_update(f"{self.label}/{source}", value=count)
                    batch = batch.without(drop)
            yield batch


class Tokenize(PipelineStep):
    """Token ids of each document plus EOS, a batch at a time through the fast (Rust) tokenizer,
    appended to the task's file of the document's source; counts `documents_out/<source>`."""

    name = "tokenize"
    type = "medarena"

    def __init__(self, folder: Path, tokenizer_json: str, eos: int, dtype: str):
        super().__init__()
        self.folder, self.tokenizer_json, self.eos = folder, tokenizer_json, eos
        self.dtype = np.dtype(dtype)

    def run(self, data: Iterator[CleanedBatch], rank: int = 0, world_size: int = 1):
        from tokenizers import Tokenizer

        from medarena.data.pack import encode_with_eos

        encoder = Tokenizer.from_str(self.tokenizer_json)
        with ExitStack() as files:
            outputs: dict[str, tuple[BinaryIO, BinaryIO]] = {}

            def output(source: str) -> tuple[BinaryIO, BinaryIO]:
                if source not in outputs:
                    folder = self.folder / source
                    folder.mkdir(parents=True, exist_ok=True)
                    outputs[source] = (
                        files.enter_context(open(folder / TOKENS.format(rank=rank), "wb")),
                        files.enter_context(open(folder / LENGTHS.format(rank=rank), "wb")),
                    )
                return outputs[source]

            for batch in data:
                if not batch.texts:
                    continue
                tokens, lengths = encode_with_eos(encoder, batch.texts, self.eos, self.dtype)
                ends = np.cumsum(lengths)
                # the documents of one source in a row are written at once
                cuts = [0, *(np.flatnonzero(np.diff(batch.sources)) + 1).tolist(), len(lengths)]
                for first, last in pairwise(cuts):
                    source = batch.names[int(batch.sources[first])]
                    tokens_file, lengths_file = output(source)
                    start = int(ends[first - 1]) if first else 0
                    tokens_file.write(tokens[start : int(ends[last - 1])].tobytes())
                    lengths_file.write(lengths[first:last].astype("<u4").tobytes())
                    self.stat_update(f"documents_out/{source}", value=last - first)
        return
        yield  # a generator that consumes the pipeline
