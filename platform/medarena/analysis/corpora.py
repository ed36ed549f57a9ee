"""The corpora a variant was trained on, from the store: every training run in its lineage
(variant <- instruction tuning <- continual pretraining <- base), each run's recipe as recorded
with the run, read through the same readers as training (pretraining sources:
medarena.data.corpus; instruction data: medarena.instruct.data). Also corpora given by path.

A corpus is read lazily (`documents`), one document at a time as the reader yields them; its
fingerprint hashes the files as they are on disk (or names the hub dataset and revision), so a
check's inputs are known before anything is read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medarena.data.corpus import Source, local_path, read_source
from medarena.errors import Refused
from medarena.instruct.data import InstructSource
from medarena.instruct.data import read_source as read_instruction_source
from medarena.instruct.recipe import InstructRecipe
from medarena.pretrain.recipe import PretrainRecipe
from medarena.schemas import FileData, HubData
from medarena.store.reads import StoreReader

Documents = Callable[[], Iterable[tuple[str, str]]]  # () -> (document id, text) pairs


@dataclass(frozen=True)
class Corpus:
    name: str  # "<recipe>/<source>" or the path given
    origin: str  # "training run 3 (pretrain)" or "--corpus"
    fingerprint: str
    documents: Documents

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "origin": self.origin, "sha256": self.fingerprint}


def lineage(store: StoreReader, variant: str) -> list[tuple[str, int | None]]:
    """(variant, the training run that produced it or None), from `variant` back to its base."""
    variants = {info.name: info for info in store.variants()}
    if variant not in variants:
        raise Refused(f"variant {variant!r} is not in the store: run `medarena models sync`")
    runs = {run.id: run for run in store.training_runs()}
    chain: list[tuple[str, int | None]] = []
    current: str | None = variant
    while current is not None and current not in {name for name, _ in chain}:
        run_id = variants[current].produced_by_run_id if current in variants else None
        chain.append((current, run_id))
        current = runs[run_id].base_variant if run_id in runs else None
    return chain


def training_corpora(store: StoreReader, root: Path, run_id: int) -> list[Corpus]:
    """The data of one training run: its recorded recipe's sources."""
    config = store.training_config(run_id)
    kind, recipe = config["kind"], config["recipe"]
    origin = f"training run {run_id} ({kind})"
    if kind == "pretrain":
        pretrain = PretrainRecipe.model_validate(recipe)
        return [_pretrain_corpus(pretrain.name, s, root, origin) for s in pretrain.sources]
    instruct = InstructRecipe.model_validate(recipe)
    return [_instruct_corpus(instruct.name, s, root, origin) for s in instruct.data]


def path_corpus(path: Path, text_field: str = "text") -> Corpus:
    """A corpus given by path: a records file (jsonl, json, csv, parquet; `text_field` is the
    document) or a folder of .txt files."""
    path = path.resolve()
    if not path.exists():
        raise Refused(f"corpus {path} not found")
    source = Source(
        name="corpus",
        kind="general",
        data=FileData(path=str(path)),
        text_fields=[text_field],
        ratio=1,
    )
    return Corpus(str(path), "--corpus", _files_hash(path), _documents(source, path.parent))


def _pretrain_corpus(recipe: str, source: Source, root: Path, origin: str) -> Corpus:
    pretrain_dir = root / "pretrain"
    return Corpus(
        f"{recipe}/{source.name}",
        origin,
        _data_hash(source.data, local_path(source, pretrain_dir)),
        _documents(source, pretrain_dir),
    )


def _documents(source: Source, pretrain_dir: Path) -> Documents:
    return lambda: ((doc.id, doc.text) for doc in read_source(source, pretrain_dir))


def _instruct_corpus(recipe: str, source: InstructSource, root: Path, origin: str) -> Corpus:
    if source.task is not None:  # a benchmark's train split: its spec names the file
        from medarena.evaluate.spec import load_benchmarks

        task = load_benchmarks(root).get(source.task)
        fewshot = task.data.fewshot if task is not None else None
        path = Path(root / "benchmarks" / fewshot.path) if isinstance(fewshot, FileData) else None
        fingerprint = _data_hash(fewshot, path)
    else:
        data = source.data
        path = root / "instruct" / data.path if isinstance(data, FileData) else None
        fingerprint = _data_hash(data, path)

    def documents() -> Iterator[tuple[str, str]]:
        for conversation in read_instruction_source(source, root):
            text = "\n\n".join(message["content"] for message in conversation.messages)
            yield conversation.origin, text

    return Corpus(f"{recipe}/{source.name}", origin, fingerprint, documents)


def _data_hash(data: Any, path: Path | None) -> str:
    if isinstance(data, HubData):
        name = f"hub:{data.dataset}:{data.config}:{data.split}@{data.revision or 'main'}"
        return hashlib.sha256(name.encode()).hexdigest()
    if path is None or not path.exists():
        raise Refused(f"training data {path} is missing: it cannot be checked")
    return _files_hash(path)


def _files_hash(path: Path) -> str:
    """sha256 over the file, or over a folder's files (names and bytes) in name order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if path.is_dir() else b"")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
