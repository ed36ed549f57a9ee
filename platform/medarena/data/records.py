"""Raw records from a data source: local jsonl/json/csv/tsv/parquet/xml files or the hub. Shared
by the benchmark loaders (medarena.evaluate) and the pretraining corpus readers
(medarena.data.corpus).

Every record keeps where it came from (file and line, or hub split and row) so that a problem
with its fields can be reported at that place. Malformed input is collected, not raised at the
first error, and an empty source is an error.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from medarena.data.pair_xml import pair_rows
from medarena.errors import OperationFailed, Problem, ProblemsError
from medarena.schemas import DataSource, FileData, HubData, RowSelection

T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """One raw row plus its location; `line` is None where the format has no lines."""

    data: dict[str, Any]
    source: str
    line: int | None
    index: int

    def problem(self, field: str, message: str) -> Problem:
        where_line = self.line
        label = self.source if where_line is not None else f"{self.source} (row {self.index})"
        return Problem(label, where_line, field, message)


class FieldProblem(Exception):
    """Raised by a record converter about one field; the caller reports it at the record's
    place with `Record.problem` and goes on, so every bad record is listed at once."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field_name, self.message = field_name, message


def convert_all(records: list[Record], convert: Callable[[Record], T], headline: str) -> list[T]:
    """`convert` every record; the FieldProblems of all records are raised together, each at its
    record's place."""
    converted: list[T] = []
    problems: list[Problem] = []
    for record in records:
        try:
            converted.append(convert(record))
        except FieldProblem as problem:
            problems.append(record.problem(problem.field_name, problem.message))
    if problems:
        raise ProblemsError(problems, headline)
    return converted


def read_records(source: DataSource, base_dir: Path) -> list[Record]:
    """Read every record of `source` (a relative path is relative to `base_dir`); raise
    ProblemsError with all malformed rows located."""
    if isinstance(source, HubData):
        records = _read_hub(source, base_dir)
        label = f"hub:{source.dataset}/{source.config or 'default'}:{source.split}"
    else:
        path = Path(source.path).expanduser()
        path = path if path.is_absolute() else base_dir / path
        label = str(path)
        records = _read_file(path, source)
    if not records:
        raise ProblemsError([Problem(label, None, "", "the dataset has no items")], "empty dataset")
    return records


def _read_file(path: Path, source: FileData) -> list[Record]:
    file_format = source.file_format or path.suffix.lstrip(".").lower()
    if not path.is_file():
        raise ProblemsError([Problem(str(path), None, "", "file not found")], "missing data file")
    readers = {
        "jsonl": _read_jsonl,
        "json": _read_json,
        "csv": _read_csv,
        "tsv": _read_tsv,
        "parquet": _read_parquet,
        "xml": _read_pair_xml,
    }
    if file_format not in readers:
        raise ProblemsError(
            [Problem(str(path), None, "file_format", f"cannot read {file_format!r} files")],
            "unsupported data file",
        )
    return readers[file_format](path)


def _read_jsonl(path: Path) -> list[Record]:
    records: list[Record] = []
    problems: list[Problem] = []
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                problems.append(_not_utf8(path, line_number, raw, exc))
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(
                    Problem(str(path), line_number, "", f"malformed JSON line: {exc.msg}")
                )
                continue
            if not isinstance(value, dict):
                problems.append(Problem(str(path), line_number, "", "expected a JSON object"))
                continue
            records.append(Record(value, str(path), line_number, len(records)))
    if problems:
        raise ProblemsError(problems, f"malformed JSON Lines in {path}")
    return records


def _not_utf8(path: Path, line_number: int, line: bytes, exc: UnicodeDecodeError) -> Problem:
    column = len(line[: exc.start].decode("utf-8", errors="replace")) + 1
    return Problem(
        str(path),
        line_number,
        "",
        f"not UTF-8: byte 0x{line[exc.start]:02x} at column {column} ({exc.reason})",
    )


def read_utf8(path: Path) -> str:
    """The file's text; bytes that are not UTF-8 are a ProblemsError at their line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        end = data.find(b"\n", exc.start)
        line = data[start : end if end >= 0 else len(data)]
        shifted = UnicodeDecodeError(
            exc.encoding, line, exc.start - start, exc.end - start, exc.reason
        )
        problem = _not_utf8(path, data.count(b"\n", 0, exc.start) + 1, line, shifted)
        raise ProblemsError([problem], f"{path} is not UTF-8 text") from None


def _read_json(path: Path) -> list[Record]:
    """A JSON list of objects, or an object of objects keyed by id (PubMedQA's files); the key
    is kept as `_key`."""
    try:
        value = json.loads(read_utf8(path))
    except json.JSONDecodeError as exc:
        raise ProblemsError(
            [Problem(str(path), exc.lineno, "", f"malformed JSON: {exc.msg}")], "malformed JSON"
        ) from None
    if isinstance(value, dict):
        rows = [
            {"_key": key, **row} if isinstance(row, dict) else row for key, row in value.items()
        ]
    elif isinstance(value, list):
        rows = value
    else:
        rows = [value]
    bad = [index for index, row in enumerate(rows) if not isinstance(row, dict)]
    if bad:
        raise ProblemsError(
            [Problem(str(path), None, f"[{index}]", "expected a JSON object") for index in bad],
            f"malformed records in {path}",
        )
    return [Record(row, str(path), None, index) for index, row in enumerate(rows)]


def _read_tsv(path: Path) -> list[Record]:
    return _read_csv(path, delimiter="\t")


def _read_csv(path: Path, delimiter: str = ",") -> list[Record]:
    with io.StringIO(read_utf8(path), newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        records = []
        for row in reader:
            records.append(Record(dict(row), str(path), reader.line_num, len(records)))
    return records


def _read_pair_xml(path: Path) -> list[Record]:
    rows = pair_rows(read_utf8(path), str(path))
    return [Record(data, str(path), line, index) for index, (data, line) in enumerate(rows)]


def _read_parquet(path: Path) -> list[Record]:
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    return [Record(row, str(path), None, index) for index, row in enumerate(rows)]


def _read_hub(source: HubData, base_dir: Path) -> list[Record]:
    """The split's rows at the pinned revision; with `rows`, only those selected by id (their
    index stays the row's place in the split, so a problem names the hub's row)."""
    import datasets

    label = f"hub:{source.dataset}:{source.split}"
    rows = source.rows
    listed = _listed_ids(rows, base_dir) if rows is not None else set()  # before any download
    try:
        dataset = datasets.load_dataset(
            source.dataset, source.config, split=source.split, revision=source.revision
        )
    except FileNotFoundError as exc:  # datasets' DatasetNotFoundError: no such dataset, or gated
        problem = Problem(label, None, "dataset", f"not found or not accessible: {exc}")
        raise ProblemsError([problem], "hub dataset not found") from exc
    except OSError as exc:  # no network, a broken download
        raise OperationFailed(f"cannot read {label} from the hub: {exc}") from exc
    records = [Record(dict(row), label, None, index) for index, row in enumerate(dataset)]
    if rows is None:
        return records
    keep = rows.keep == "listed"
    return [record for record in records if (str(record.data.get(rows.field)) in listed) == keep]


def _listed_ids(rows: RowSelection, base_dir: Path) -> set[str]:
    """The ids named by `rows.ids`: a JSON list, or the keys of a JSON object (PubMedQA's
    test_ground_truth.json maps each PMID to its label)."""
    path = Path(rows.ids).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise ProblemsError([Problem(str(path), None, "rows.ids", "file not found")], "missing ids")
    try:
        value = json.loads(read_utf8(path))
    except json.JSONDecodeError as exc:
        problem = Problem(str(path), exc.lineno, "rows.ids", f"malformed JSON: {exc.msg}")
        raise ProblemsError([problem], "malformed ids file") from None
    if not isinstance(value, (list, dict)) or not value:
        problem = Problem(str(path), None, "rows.ids", "expected a non-empty list or object")
        raise ProblemsError([problem], "malformed ids file")
    return {str(identifier) for identifier in value}
