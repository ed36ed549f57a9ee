"""Documents from a recipe source: JSONL / JSON / CSV / parquet files (the same record readers as
the benchmarks), folders of .txt files, hub datasets.

Each document keeps where it came from, so a record without its text field is reported at its
file and line. Text fields are joined with a blank line (a title, then an abstract).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medarena.data.records import FieldProblem, Record, convert_all, read_records, read_utf8
from medarena.errors import Problem, ProblemsError
from medarena.pretrain.recipe import Source
from medarena.schemas import FileData


@dataclass(frozen=True)
class Document:
    source: str
    id: str
    text: str


def read_source(source: Source, pretrain_dir: Path) -> list[Document]:
    """Every document of `source`; missing files, malformed lines and missing fields are
    reported all together, each at its place."""
    data = source.data
    if isinstance(data, FileData):
        path = Path(data.path).expanduser()
        path = path if path.is_absolute() else pretrain_dir / path
        if path.is_dir():
            return _from_folder(source, path)
        if not path.is_file():
            raise ProblemsError(
                [Problem(str(path), None, f"sources.{source.name}.data.path", "not found")],
                f"source {source.name!r} is missing",
            )
    return _from_records(source, read_records(data, pretrain_dir))


def _from_records(source: Source, records: list[Record]) -> list[Document]:
    def document(record: Record) -> Document:
        row = record.data
        missing = [name for name in source.text_fields if not isinstance(row.get(name), str)]
        if missing:
            raise FieldProblem(missing[0], "missing text field")
        text = "\n\n".join(row[name].strip() for name in source.text_fields if row[name].strip())
        identifier = row.get("id") or row.get("note_id") or row.get("pmid") or f"{record.index:06d}"
        return Document(source.name, str(identifier), text)

    return convert_all(records, document, f"source {source.name!r} has records without their text")


def _from_folder(source: Source, folder: Path) -> list[Document]:
    files = sorted(folder.glob("*.txt"))
    return [Document(source.name, path.stem, read_utf8(path).strip()) for path in files]
