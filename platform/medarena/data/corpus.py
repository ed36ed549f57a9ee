"""Corpus sources and the readers that turn them into documents.

`Source` is one corpus of a pretraining recipe's mix (`sources:`). Its `reader` names a function
registered in `CORPUS_READERS`; without one, a folder is read by `text-folder` and anything else
by `records`. Built in:

- `records`: JSONL / JSON / CSV / parquet files or a hub dataset (the same record readers as the
  benchmarks), the `text_fields` of each record joined with a blank line (a title, then an
  abstract). Every document keeps where it came from, so a record without its text field is
  reported at its file and line.
- `text-folder`: a folder of .txt files, one document per file.

A new reader is one function `(source, pretrain_dir) -> list[Document]` plus
`@CORPUS_READERS.register("name")`; recipes can name it once the module defining it is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from medarena.data.records import FieldProblem, Record, convert_all, read_records, read_utf8
from medarena.errors import Problem, ProblemsError
from medarena.extensions import ExtensionRegistry
from medarena.schemas import DataSource, FileData, Name, Spec

SOURCE_KINDS = ("guidelines", "pubmed_abstracts", "papers", "clinical_notes", "general")


@dataclass(frozen=True)
class Document:
    source: str
    id: str
    text: str


class Source(Spec):
    """One corpus of the mix. `text_fields` are joined (title + abstract) into a document."""

    name: Name
    kind: Literal[SOURCE_KINDS]  # type: ignore[valid-type]
    data: DataSource
    reader: Name | None = Field(
        None,
        description="a registered corpus reader (records, text-folder, ...); default: "
        "text-folder for a folder, records otherwise",
        # left out of dumps when unset, so a recipe that names no reader keeps its content hash
        exclude_if=lambda reader: reader is None,
    )
    text_fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1)
    ratio: float = Field(ge=0, description="share of the mix in tokens (normalised over sources)")
    published_tokens: float | None = Field(
        None, gt=0, description="tokens of this source in the paper's full mix (documentation)"
    )

    @field_validator("reader")
    @classmethod
    def _registered(cls, reader: str | None) -> str | None:
        if reader is not None and reader not in CORPUS_READERS:
            raise ValueError(
                f"unknown corpus reader {reader!r}; known: {', '.join(CORPUS_READERS.names())}"
            )
        return reader


CorpusReader = Callable[[Source, Path], list[Document]]
CORPUS_READERS: ExtensionRegistry[CorpusReader] = ExtensionRegistry("corpus reader")


def local_path(source: Source, pretrain_dir: Path) -> Path | None:
    """Where a file source's data is (relative paths: to pretrain/); None for a hub dataset."""
    if not isinstance(source.data, FileData):
        return None
    path = Path(source.data.path).expanduser()
    return path if path.is_absolute() else pretrain_dir / path


def read_source(source: Source, pretrain_dir: Path) -> list[Document]:
    """Every document of `source`, read by its reader; a missing path, malformed lines and
    missing fields are reported all together, each at its place."""
    path = local_path(source, pretrain_dir)
    if path is not None and not path.exists():
        raise ProblemsError(
            [Problem(str(path), None, f"sources.{source.name}.data.path", "not found")],
            f"source {source.name!r} is missing",
        )
    default = "text-folder" if path is not None and path.is_dir() else "records"
    return CORPUS_READERS.get(source.reader or default)(source, pretrain_dir)


@CORPUS_READERS.register("records")
def read_record_documents(source: Source, pretrain_dir: Path) -> list[Document]:
    def document(record: Record) -> Document:
        row = record.data
        missing = [name for name in source.text_fields if not isinstance(row.get(name), str)]
        if missing:
            raise FieldProblem(missing[0], "missing text field")
        text = "\n\n".join(row[name].strip() for name in source.text_fields if row[name].strip())
        identifier = row.get("id") or row.get("note_id") or row.get("pmid") or f"{record.index:06d}"
        return Document(source.name, str(identifier), text)

    records = read_records(source.data, pretrain_dir)
    return convert_all(records, document, f"source {source.name!r} has records without their text")


@CORPUS_READERS.register("text-folder")
def read_text_folder(source: Source, pretrain_dir: Path) -> list[Document]:
    folder = local_path(source, pretrain_dir)
    if folder is None or not folder.is_dir():
        where = str(folder) if folder is not None else f"source {source.name}"
        problem = Problem(where, None, f"sources.{source.name}.data", "expected a folder")
        raise ProblemsError([problem], f"source {source.name!r} is not a folder of .txt files")
    files = sorted(folder.glob("*.txt"))
    return [Document(source.name, path.stem, read_utf8(path).strip()) for path in files]
