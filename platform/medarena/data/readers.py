"""datatrove readers for corpus files and hub datasets, with medarena's located problems.

datatrove's own readers skip a malformed line with a warning; a corpus must not lose documents
silently, so these subclasses collect every malformed line and every record without its text
field of a file and raise them together, each at its file, line (or row) and field, when the file
has been read. The task then fails, so nothing it wrote is marked complete.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.readers import CSVReader, HuggingFaceDatasetReader, JsonlReader
from datatrove.pipeline.readers.base import BaseDiskReader, BaseReader

import medarena.data.engine  # noqa: F401  (datatrove's dependency check, made fast)
from medarena.data.records import _not_utf8, read_utf8
from medarena.errors import OperationFailed, Problem, ProblemsError
from medarena.schemas import HubData

COMPRESSIONS = (".gz", ".zst")
FORMATS = ("jsonl", "json", "csv", "parquet")


class _Located:
    """Builds documents from records' `text_fields`, collecting located problems."""

    source_name: str
    text_fields: list[str]
    problems: list[Problem]

    def _setup(self, source_name: str, text_fields: list[str]) -> None:
        self.source_name, self.text_fields, self.problems = source_name, text_fields, []

    def located_document(self, row: dict[str, Any], where: str, line: int | None, index: int):
        missing = [name for name in self.text_fields if not isinstance(row.get(name), str)]
        if missing:
            self.problems.append(Problem(where, line, missing[0], "missing text field"))
            return None
        text = "\n\n".join(row[name].strip() for name in self.text_fields if row[name].strip())
        identifier = row.get("id") or row.get("note_id") or row.get("pmid") or f"{index:06d}"
        return Document(text=text, id=str(identifier), metadata={"source": self.source_name})

    def raise_problems(self, label: str) -> None:
        if self.problems:
            problems, self.problems = self.problems, []
            headline = f"source {self.source_name!r}: malformed records in {label}"
            raise ProblemsError(problems, headline)


class _FileReader(_Located):
    data_folder: Any

    def full_path(self, filepath: str) -> str:
        return str(Path(self.data_folder.path) / filepath)


class LocatedJsonl(_FileReader, JsonlReader):
    def read_file(self, filepath: str):
        import orjson

        where = self.full_path(filepath)
        with self.data_folder.open(filepath, "rb", compression=self.compression) as stream:
            # bytes, not text: a line that is not UTF-8 is reported at its line (and column);
            # the buffer gives lines over any decompressor (zstandard's reader has none)
            for line_number, raw in enumerate(io.BufferedReader(stream), start=1):
                if not raw.strip():
                    continue
                try:
                    row = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    self.problems.append(_malformed(where, line_number, raw, exc))
                    continue
                if not isinstance(row, dict):
                    self.problems.append(Problem(where, line_number, "", "expected a JSON object"))
                    continue
                document = self.located_document(row, where, line_number, line_number - 1)
                if document is not None:
                    yield document
        self.raise_problems(where)


def _malformed(where: str, line_number: int, raw: bytes, exc: Exception) -> Problem:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return _not_utf8(Path(where), line_number, raw, bad)
    return Problem(where, line_number, "", f"malformed JSON line: {exc}")


class LocatedCsv(_FileReader, CSVReader):
    def read_file(self, filepath: str):
        where = self.full_path(filepath)
        csv.field_size_limit(sys.maxsize)  # a discharge summary is longer than csv's 128 KiB
        with self.data_folder.open(filepath, "rt", compression=self.compression, newline="") as f:
            reader = csv.DictReader(f)
            for index, row in enumerate(reader):
                document = self.located_document(row, where, reader.line_num, index)
                if document is not None:
                    yield document
        self.raise_problems(where)


class LocatedParquet(_FileReader, BaseDiskReader):
    def read_file(self, filepath: str):
        import pyarrow.parquet as pq

        where = self.full_path(filepath)
        index = 0
        with self.data_folder.open(filepath, "rb") as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    document = self.located_document(row, f"{where} (row {index})", None, index)
                    if document is not None:
                        yield document
                    index += 1
        self.raise_problems(where)


class LocatedJson(_FileReader, BaseDiskReader):
    """A JSON list of records (a whole-file format: read at once, file by file)."""

    def read_file(self, filepath: str):
        from medarena.data.records import _read_json

        where = self.full_path(filepath)
        for record in _read_json(Path(where)):
            label = f"{where} (row {record.index})"
            document = self.located_document(record.data, label, None, record.index)
            if document is not None:
                yield document
        self.raise_problems(where)


class TextFiles(_Located, BaseDiskReader):
    """One document per .txt file, named by the file's stem."""

    def read_file(self, filepath: str):
        text = read_utf8(Path(self.data_folder.path) / filepath).strip()
        yield Document(text=text, id=Path(filepath).stem, metadata={"source": self.source_name})


class LocatedHub(_Located, HuggingFaceDatasetReader):
    def __init__(self, source_name: str, data: HubData, text_fields: list[str]):
        options = {"name": data.config, "split": data.split, "revision": data.revision}
        super().__init__(data.dataset, dataset_options=options)
        self._setup(source_name, text_fields)
        self.label = f"hub:{data.dataset}:{data.split}"
        self.world_size = 1

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file: int | str):
        rank, _, position = str(id_in_file).partition("/")
        row = int(rank) + int(position) * self.world_size  # datatrove shards rows round-robin
        return self.located_document(data, f"{self.label} (row {row})", None, row)

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        self.world_size = world_size
        try:
            yield from super().run(data, rank, world_size)
        except FileNotFoundError as exc:  # datasets' DatasetNotFoundError: missing or gated
            problem = Problem(self.label, None, "dataset", f"not found or not accessible: {exc}")
            raise ProblemsError([problem], "hub dataset not found") from exc
        except OSError as exc:  # no network, a broken download
            raise OperationFailed(f"cannot read {self.label} from the hub: {exc}") from exc
        self.raise_problems(self.label)


def file_format(path: Path, declared: str | None) -> str:
    """The declared format, or the file's suffix once a compression suffix is taken off."""
    if declared:
        return declared
    name = path.name
    for suffix in COMPRESSIONS:
        name = name.removesuffix(suffix)
    return Path(name).suffix.lstrip(".").lower()


def record_reader(
    source_name: str, path: Path, declared: str | None, text_fields: list[str]
) -> BaseReader:
    """A reader of one record file, or of every file of `declared` format in a folder (the
    folder's files are shared out among the tasks)."""
    fmt = file_format(path, declared) if path.is_file() else (declared or "")
    if fmt not in FORMATS:
        problem = Problem(str(path), None, "file_format", f"cannot read {fmt!r} files")
        raise ProblemsError([problem], "unsupported data file")
    folder, pattern = (path.parent, path.name) if path.is_file() else (path, f"*.{fmt}*")
    kinds = {"jsonl": LocatedJsonl, "csv": LocatedCsv, "parquet": LocatedParquet}
    reader = kinds.get(fmt, LocatedJson)(str(folder), glob_pattern=pattern, recursive=False)
    reader._setup(source_name, text_fields)
    return reader


def folder_reader(source_name: str, folder: Path) -> BaseReader:
    reader = TextFiles(str(folder), glob_pattern="*.txt", recursive=False)
    reader._setup(source_name, [])
    return reader


def hub_reader(source_name: str, data: HubData, text_fields: list[str]) -> BaseReader:
    if data.rows is not None:
        problem = Problem(f"hub:{data.dataset}", None, "data.rows", "not supported for corpora")
        raise ProblemsError([problem], "unsupported corpus selection")
    return LocatedHub(source_name, data, text_fields)
