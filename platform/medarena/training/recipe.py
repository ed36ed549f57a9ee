"""Settings every training recipe has (pretrain/*.yaml, instruct/*.yaml): optimizer, schedule,
DeepSpeed, batch, steps, checkpoints, per-model overrides, and the loader both kinds use."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, model_validator

from medarena.errors import UnknownName
from medarena.registry import find_workspace
from medarena.schemas import Name, Spec
from medarena.value_provenance import Gap, Provenance, provenance_gaps, provenance_problems
from medarena.yaml_source import load_spec_folder


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
    enabled: bool = Field(True, description="false: a plain PyTorch loop (one process)")
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


class TrainingRecipe(Spec):
    name: Name
    description: str
    citation: str = Field(description="where the data and hyperparameters are published")
    seed: int = 0
    sequence_length: int = Field(gt=0)
    global_batch_sequences: int = Field(gt=0, description="sequences per optimizer step")
    epochs: float = Field(1.0, gt=0, description="passes over the data")
    max_steps: int | None = Field(None, gt=0, description="stop early (demos)")
    optimizer: Optimizer
    schedule: Schedule = Schedule()
    deepspeed: DeepSpeedSettings = DeepSpeedSettings()
    checkpoint_every: int = Field(500, gt=0, description="optimizer steps between checkpoints")
    overrides: dict[str, Overrides] = Field(
        default_factory=dict, description="per registry variant"
    )
    provenance: Provenance = Field(
        default_factory=dict,
        description="where each value comes from: field path -> {source: ...} or "
        "{medarena: reason}; when given, every value must be marked",
    )

    def content_hash(self) -> str:
        """sha256 of the recipe's validated content (what the run was trained with). The
        provenance documents the values without changing them, so it is left out."""
        content = self.model_dump_json(exclude={"provenance"})
        return hashlib.sha256(content.encode()).hexdigest()

    def provenance_gaps(self) -> list[Gap]:
        return provenance_gaps(self, self.provenance)

    def published_tokens(self) -> int:
        """Tokens of the paper's full run, where the recipe states them (0: unknown)."""
        return 0


R = TypeVar("R", bound=TrainingRecipe)


def refuse_duplicate_names(names: list[str], what: str) -> None:
    """A ValueError (for a pydantic validator) when a name appears twice."""
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise ValueError(f"{what} names appear twice: {duplicated}")


def load_recipe_folder(
    folder_name: str, schema: type[R], workspace: str | Path | None = None
) -> dict[str, R]:
    """Every recipe under <workspace>/<folder_name>/; raises ProblemsError listing ALL problems."""
    root = find_workspace(workspace)
    headline = f"{folder_name} recipes in {root / folder_name} are invalid"
    return load_spec_folder(root, Path(folder_name), schema, headline, check=provenance_problems)


def pick_recipe(recipes: dict[str, R], name: str, kind: str) -> R:
    if name not in recipes:
        raise UnknownName(kind, name, list(recipes))
    return recipes[name]
