"""Documents from a recipe source: JSONL / parquet files, folders of .txt files, hub datasets.

Each document keeps where it came from, so a record without its text field is reported at its
file and line. Text fields are joined with a blank line (a title, then an abstract).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medarena.pretrain.recipe import Source
from medarena.schemas import HubData
from medarena.yaml_source import Problem, ProblemsError


@dataclass(frozen=True)
class Document:
    source: str
    id: str
    text: str


def read_source(source: Source, pretrain_dir: Path) -> list[Document]:
    """Every document of `source`; missing files, malformed lines and missing fields are
    reported all together, each at its place."""
    data = source.data
    if isinstance(data, HubData):
        return _from_rows(source, _hub_rows(data), f"hub:{data.dataset}:{data.split}")
    path = Path(data.path).expanduser()
    path = path if path.is_absolute() else pretrain_dir / path
    if path.is_dir():
        return _from_folder(source, path)
    if not path.is_file():
        raise ProblemsError(
            [Problem(str(path), None, f"sources.{source.name}.data.path", "not found")],
            f"source {source.name!r} is missing",
        )
    file_format = data.file_format or path.suffix.lstrip(".").lower()
    if file_format not in ("jsonl", "parquet"):
        raise ProblemsError(
            [
                Problem(
                    str(path),
                    None,
                    f"sources.{source.name}.data",
                    "corpora are read from .jsonl, .parquet or a folder of .txt files",
                )
            ],
            f"source {source.name!r} has an unsupported format",
        )
    if file_format == "parquet":
        import pyarrow.parquet as pq

        rows = [(None, row) for row in pq.read_table(path).to_pylist()]
        return _from_rows(source, rows, str(path))
    return _from_rows(source, _jsonl_rows(path), str(path))


def _jsonl_rows(path: Path) -> list[tuple[int | None, dict[str, Any]]]:
    rows, problems = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(Problem(str(path), number, "", f"malformed JSON line: {exc.msg}"))
                continue
            if not isinstance(value, dict):
                problems.append(Problem(str(path), number, "", "expected a JSON object"))
                continue
            rows.append((number, value))
    if problems:
        raise ProblemsError(problems, f"malformed JSON Lines in {path}")
    return rows


def _hub_rows(data: HubData) -> list[tuple[int | None, dict[str, Any]]]:
    import datasets

    dataset = datasets.load_dataset(
        data.dataset, data.config, split=data.split, revision=data.revision
    )
    return [(None, dict(row)) for row in dataset]


def _from_rows(
    source: Source, rows: list[tuple[int | None, dict[str, Any]]], label: str
) -> list[Document]:
    documents, problems = [], []
    for index, (line, row) in enumerate(rows):
        missing = [name for name in source.text_fields if not isinstance(row.get(name), str)]
        if missing:
            where = label if line is not None else f"{label} (row {index})"
            problems.append(Problem(where, line, missing[0], "missing text field"))
            continue
        text = "\n\n".join(row[name].strip() for name in source.text_fields if row[name].strip())
        identifier = row.get("id") or row.get("note_id") or row.get("pmid") or f"{index:06d}"
        documents.append(Document(source.name, str(identifier), text))
    if problems:
        raise ProblemsError(problems, f"source {source.name!r} has records without their text")
    return documents


def _from_folder(source: Source, folder: Path) -> list[Document]:
    files = sorted(folder.glob("*.txt"))
    return [
        Document(source.name, path.stem, path.read_text(encoding="utf-8").strip()) for path in files
    ]
