"""Continual-pretraining recipes: pretrain/*.yaml, validated like the registry.

A recipe names its sources and their token ratios, the cleaning, the sequence length, the
optimizer, the schedule and the DeepSpeed settings; the model comes from the registry. Per-model
overrides hold what a paper set differently by size (Meditron-70B: lr 1.5e-4, seq 4096).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from medarena.registry import UnknownName, find_workspace
from medarena.schemas import DataSource, Name, Spec
from medarena.yaml_source import Problem, ProblemsError, read_spec

SOURCE_KINDS = ("guidelines", "pubmed_abstracts", "papers", "clinical_notes", "general")


class Source(Spec):
    """One corpus of the mix. `text_fields` are joined (title + abstract) into a document."""

    name: Name
    kind: Literal[SOURCE_KINDS]  # type: ignore[valid-type]
    data: DataSource
    text_fields: list[str] = Field(default_factory=lambda: ["text"], min_length=1)
    ratio: float = Field(ge=0, description="share of the mix in tokens (normalised over sources)")
    published_tokens: float | None = Field(
        None, gt=0, description="tokens of this source in the paper's full mix (documentation)"
    )


class Cleaning(Spec):
    min_words: int = Field(20, ge=0)
    max_words: int | None = Field(None, gt=0)
    exact_dedup: bool = True
    near_dedup_threshold: float | None = Field(
        0.8, gt=0, le=1, description="MinHash Jaccard above which a document is a near duplicate"
    )
    minhash_permutations: int = Field(128, ge=16)
    shingle_words: int = Field(5, ge=1)


class Optimizer(Spec):
    name: Literal["adamw"] = "adamw"
    lr: float = Field(gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)


class Schedule(Spec):
    kind: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int | None = Field(None, ge=0)
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    min_lr: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _one_warmup(self) -> Schedule:
        if self.warmup_steps is not None and self.warmup_ratio is not None:
            raise ValueError("give warmup_steps or warmup_ratio, not both")
        return self


class DeepSpeedSettings(Spec):
    zero_stage: Literal[0, 1, 2, 3] = 2
    bf16: bool = True
    activation_checkpointing: bool = True
    offload_optimizer: bool = False
    offload_params: bool = False


class Overrides(Spec):
    """What a paper set differently for one model size."""

    lr: float | None = Field(None, gt=0)
    sequence_length: int | None = Field(None, gt=0)
    global_batch_sequences: int | None = Field(None, gt=0)


class PretrainRecipe(Spec):
    name: Name
    description: str
    citation: str = Field(description="where the mix and hyperparameters are published")
    sources: list[Source] = Field(min_length=1)
    cleaning: Cleaning = Cleaning()
    seed: int = 0
    tokenizer: str = Field(
        "model", description="`model` (the variant's own) or a tokenizer folder / hub id"
    )
    sequence_length: int = Field(gt=0)
    global_batch_sequences: int = Field(gt=0, description="sequences per optimizer step")
    epochs: float = Field(1.0, gt=0, description="passes over the mixed corpus")
    max_steps: int | None = Field(None, gt=0, description="stop early (demos)")
    optimizer: Optimizer
    schedule: Schedule = Schedule()
    deepspeed: DeepSpeedSettings = DeepSpeedSettings()
    checkpoint_every: int = Field(500, gt=0, description="optimizer steps between checkpoints")
    overrides: dict[str, Overrides] = Field(
        default_factory=dict, description="per registry variant"
    )

    @field_validator("sources")
    @classmethod
    def _mix_is_usable(cls, sources: list[Source]) -> list[Source]:
        names = [source.name for source in sources]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"source names appear twice: {duplicated}")
        if sum(source.ratio for source in sources) <= 0:
            raise ValueError("every ratio is 0: at least one source needs a positive ratio")
        return sources

    def mix_ratios(self) -> dict[str, float]:
        """Token shares of the sources, normalised to sum to 1."""
        total = sum(source.ratio for source in self.sources)
        return {source.name: source.ratio / total for source in self.sources}


def load_recipes(workspace: str | Path | None = None) -> dict[str, PretrainRecipe]:
    """Every recipe under pretrain/; raises ProblemsError listing ALL problems."""
    root = find_workspace(workspace)
    folder = root / "pretrain"
    recipes: dict[str, PretrainRecipe] = {}
    problems: list[Problem] = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        _, recipe, found = read_spec(path, str(path.relative_to(root)), PretrainRecipe)
        problems += found
        if recipe is not None:
            recipes[recipe.name] = recipe  # type: ignore[attr-defined]
    if problems:
        raise ProblemsError(problems, headline=f"pretraining recipes in {folder} are invalid")
    return recipes


def get_recipe(recipes: dict[str, PretrainRecipe], name: str) -> PretrainRecipe:
    if name not in recipes:
        raise UnknownName("pretraining recipe", name, list(recipes))
    return recipes[name]
