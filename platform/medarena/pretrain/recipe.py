"""Continual-pretraining recipes: pretrain/*.yaml, validated like the registry.

A recipe names its sources and their token ratios, the cleaning, the sequence length, the
optimizer, the schedule and the DeepSpeed settings; the model comes from the registry. Per-model
overrides hold what a paper set differently by size (Meditron-70B: lr 1.5e-4, seq 4096). The
schemas of a source (`Source`, with its corpus reader) and of `Cleaning` belong to the data
pipeline, `medarena.data`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from medarena.data.clean import Cleaning
from medarena.data.corpus import Source
from medarena.training.recipe import (
    TrainingRecipe,
    load_recipe_folder,
    pick_recipe,
    refuse_duplicate_names,
)


class PretrainRecipe(TrainingRecipe):
    sources: list[Source] = Field(min_length=1)
    cleaning: Cleaning = Cleaning()
    tokenizer: str = Field(
        "model", description="`model` (the variant's own) or a tokenizer folder / hub id"
    )

    @field_validator("sources")
    @classmethod
    def _mix_is_usable(cls, sources: list[Source]) -> list[Source]:
        refuse_duplicate_names([source.name for source in sources], "source")
        if sum(source.ratio for source in sources) <= 0:
            raise ValueError("every ratio is 0: at least one source needs a positive ratio")
        return sources

    def published_tokens(self) -> int:
        return int(sum(source.published_tokens or 0 for source in self.sources))

    def mix_ratios(self) -> dict[str, float]:
        """Token shares of the sources, normalised to sum to 1."""
        total = sum(source.ratio for source in self.sources)
        return {source.name: source.ratio / total for source in self.sources}


def load_recipes(workspace: str | Path | None = None) -> dict[str, PretrainRecipe]:
    """Every recipe under pretrain/; raises ProblemsError listing ALL problems."""
    return load_recipe_folder("pretrain", PretrainRecipe, workspace)


def get_recipe(recipes: dict[str, PretrainRecipe], name: str) -> PretrainRecipe:
    return pick_recipe(recipes, name, "pretraining recipe")
