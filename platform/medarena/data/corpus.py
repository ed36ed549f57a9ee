"""Corpus sources and the datatrove readers that stream them as documents.

`Source` is one corpus of a pretraining recipe's mix (`sources:`). Its `reader` names a factory
registered in `CORPUS_READERS`; without one, a folder is read by `text-folder` and anything else
by `records`. Built in:

- `records`: JSONL, CSV (MIMIC-IV-Note's `discharge.csv.gz`), parquet or JSON files, `.gz` and
  `.zst` read as they ship, or a hub dataset; the `text_fields` of each record are joined with a
  blank line (a title, then an abstract). A malformed line or a record without its text field is
  reported at its file, line (or row) and field.
- `text-folder`: a folder of .txt files, one document per file.

A reader factory is `(source, pretrain_dir) -> datatrove reader step`; the step yields datatrove
Documents whose metadata holds `source` (the source's name). Files are shared out among the
preparation's tasks by datatrove (file i goes to task i mod tasks). A new reader is one factory
plus `@CORPUS_READERS.register("name")`; recipes can name it once its module is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from medarena.errors import Problem, ProblemsError
from medarena.extensions import ExtensionRegistry
from medarena.schemas import DataSource, FileData, HubData, Name, Spec

if TYPE_CHECKING:  # datatrove is imported when a reader is built, not when a recipe loads
    from datatrove.pipeline.readers.base import BaseReader

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


CorpusReader = Callable[[Source, Path], "BaseReader"]
CORPUS_READERS: ExtensionRegistry[CorpusReader] = ExtensionRegistry("corpus reader")


def local_path(source: Source, pretrain_dir: Path) -> Path | None:
    """Where a file source's data is (relative paths: to pretrain/); None for a hub dataset."""
    if not isinstance(source.data, FileData):
        return None
    path = Path(source.data.path).expanduser()
    return path if path.is_absolute() else pretrain_dir / path


def source_bytes(source: Source, pretrain_dir: Path) -> int | None:
    """Bytes of a file source's data as stored (compressed files: compressed); None for the
    hub or a path that does not exist."""
    path = local_path(source, pretrain_dir)
    if path is None or not path.exists():
        return None
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(file.stat().st_size for file in files)


def source_reader(source: Source, pretrain_dir: Path) -> BaseReader:
    """The reader step of `source`; a missing path is a located problem before anything runs."""
    path = local_path(source, pretrain_dir)
    if path is not None and not path.exists():
        raise ProblemsError(
            [Problem(str(path), None, f"sources.{source.name}.data.path", "not found")],
            f"source {source.name!r} is missing",
        )
    default = "text-folder" if path is not None and path.is_dir() else "records"
    return CORPUS_READERS.get(source.reader or default)(source, pretrain_dir)


def read_source(source: Source, pretrain_dir: Path) -> Iterator[Document]:
    """The documents of `source`, streamed through its reader in one task (for inspection and
    tests; preparation runs the reader inside its pipeline)."""
    from medarena.data.engine import quiet

    with quiet():
        for document in source_reader(source, pretrain_dir).run(None, 0, 1):
            yield Document(source.name, str(document.id), document.text)


@CORPUS_READERS.register("records")
def read_record_documents(source: Source, pretrain_dir: Path) -> BaseReader:
    from medarena.data.readers import hub_reader, record_reader

    if isinstance(source.data, HubData):
        return hub_reader(source.name, source.data, source.text_fields)
    path = local_path(source, pretrain_dir)
    assert path is not None
    return record_reader(source.name, path, source.data.file_format, source.text_fields)


@CORPUS_READERS.register("text-folder")
def read_text_folder(source: Source, pretrain_dir: Path) -> BaseReader:
    from medarena.data.readers import folder_reader

    folder = local_path(source, pretrain_dir)
    if folder is None or not folder.is_dir():
        where = str(folder) if folder is not None else f"source {source.name}"
        problem = Problem(where, None, f"sources.{source.name}.data", "expected a folder")
        raise ProblemsError([problem], f"source {source.name!r} is not a folder of .txt files")
    return folder_reader(source.name, folder)
