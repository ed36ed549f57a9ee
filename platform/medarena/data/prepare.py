"""The data pipeline of a recipe, end to end: read every source, clean across sources, tokenize
each source, mix to the token ratios and pack into shards. Every step is counted in the index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

from medarena.data.clean import Cleaning, clean
from medarena.data.corpus import Source, read_source
from medarena.data.pack import PackReport, pack, tokenize
from medarena.errors import Problem, ProblemsError


class MixRecipe(Protocol):
    """What preparation reads from a recipe. A `PretrainRecipe` is one; data/ does not import
    it (pretrain/ builds on data/, never the other way round)."""

    @property
    def name(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def sequence_length(self) -> int: ...
    @property
    def sources(self) -> list[Source]: ...
    @property
    def cleaning(self) -> Cleaning: ...
    def mix_ratios(self) -> dict[str, float]: ...
    def content_hash(self) -> str: ...


def prepare(
    recipe: MixRecipe,
    tokenizer: Any,
    pretrain_dir: Path,
    out_dir: Path,
    *,
    sequence_length: int | None = None,
) -> tuple[PackReport, dict[str, Any]]:
    """Packed shards of the recipe's mix in `out_dir`; returns the pack report and the
    cleaning counts. Sources are read in recipe order (the first of two duplicates is kept)."""
    documents = [doc for source in recipe.sources for doc in read_source(source, pretrain_dir)]
    kept, report = clean(documents, recipe.cleaning)
    ratios = recipe.mix_ratios()
    emptied = [
        Problem(f"recipe {recipe.name}", None, f"sources.{name}", "no document left after cleaning")
        for name, ratio in ratios.items()
        if ratio > 0 and not report.documents_out.get(name)
    ]
    if emptied:
        raise ProblemsError(emptied, "empty source after cleaning")
    tokenized = {
        source.name: tokenize([d for d in kept if d.source == source.name], tokenizer)
        for source in recipe.sources
    }
    metadata = {
        "recipe": recipe.name,
        "recipe_sha256": recipe.content_hash(),
        "tokenizer": getattr(tokenizer, "name_or_path", ""),
        "tokenizer_vocab": len(tokenizer),
        "cleaning": report.as_dict(),
    }
    packed = pack(
        tokenized,
        ratios,
        out_dir,
        sequence_length=sequence_length or recipe.sequence_length,
        seed=recipe.seed,
        metadata=metadata,
    )
    return packed, json.loads(json.dumps(report.as_dict()))
