"""The pipeline steps between cleaning and packing: the cleaned documents of a task on disk
(written once, read back after the dedup stages) and batch tokenization into per-task files.

A task's files are named by its rank, so a task that is run again overwrites what a killed run
of it left; datatrove marks a task complete only after its last step returned.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import numpy as np
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

from medarena.data.dedup import SOURCES
from medarena.data.pack import encode_with_eos

CLEANED = "{rank:05d}.jsonl"
TOKENS = "{rank:05d}.tokens"  # the task's tokens of one source, each document followed by EOS
LENGTHS = "{rank:05d}.lengths"  # uint32 tokens of each document (EOS included)
BUFFER = 1 << 20  # bytes: a write call per document cost more than the JSON encoding


class CleanedWriter(PipelineStep):
    """Write each cleaned document (JSON line) and its source index; pass it on, tagged with
    `source_index`, the source's place in the recipe."""

    name = "cleaned documents"
    type = "medarena"

    def __init__(self, folder: Path, source_order: dict[str, int]):
        super().__init__()
        self.folder, self.source_order = folder, source_order

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import orjson

        self.folder.mkdir(parents=True, exist_ok=True)
        indices: list[int] = []
        with open(self.folder / CLEANED.format(rank=rank), "wb", buffering=BUFFER) as handle:
            for document in data:
                source = document.metadata["source"]
                document.metadata["source_index"] = self.source_order[source]
                indices.append(self.source_order[source])
                row = {"id": document.id, "source": source, "text": document.text}
                handle.write(orjson.dumps(row) + b"\n")
                yield document
        np.array(indices, dtype="<u2").tofile(self.folder / SOURCES.format(rank=rank))


class CleanedReader(PipelineStep):
    """The task's cleaned documents, in the order they were written, each with its `index`
    there (what the dedup stages' removal lists name)."""

    name = "read cleaned documents"
    type = "medarena"

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        import orjson

        with open(self.folder / CLEANED.format(rank=rank), "rb", buffering=BUFFER) as handle:
            for index, line in enumerate(handle):
                row = orjson.loads(line)
                metadata = {"source": row["source"], "index": index}  # the place dedup lists
                yield Document(text=row["text"], id=row["id"], metadata=metadata)


class Tokenize(PipelineStep):
    """Token ids of each document plus EOS, in batches through the fast (Rust) tokenizer, appended
    to the task's file of the document's source; counts `documents_out/<source>`."""

    name = "tokenize"
    type = "medarena"

    def __init__(self, folder: Path, tokenizer_json: str, eos: int, dtype: str, batch: int = 1024):
        super().__init__()
        self.folder, self.tokenizer_json, self.eos = folder, tokenizer_json, eos
        self.dtype, self.batch = np.dtype(dtype), batch

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        from tokenizers import Tokenizer

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

            batch: list[Document] = []
            for document in data:
                batch.append(document)
                if len(batch) == self.batch:
                    self._write(encoder, batch, output)
                    batch = []
            self._write(encoder, batch, output)
        return
        yield  # a generator that consumes the pipeline

    def _write(self, encoder, documents: list[Document], output) -> None:
        if not documents:
            return
        texts = [document.text for document in documents]
        tokens, lengths = encode_with_eos(encoder, texts, self.eos, self.dtype)
        ends = np.cumsum(lengths)
        sources = [document.metadata["source"] for document in documents]
        first = 0  # the documents of one source in a row are written at once
        for index, source in enumerate(sources):
            if index + 1 < len(sources) and sources[index + 1] == source:
                continue
            tokens_file, lengths_file = output(source)
            start = int(ends[first - 1]) if first else 0
            tokens_file.write(tokens[start : int(ends[index])].tobytes())
            lengths_file.write(lengths[first : index + 1].astype("<u4").tobytes())
            self.stat_update(f"documents_out/{source}", value=index + 1 - first)
            first = index + 1
