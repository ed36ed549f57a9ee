"""Instruction-tuning recipes: instruct/*.yaml, validated like the registry.

A recipe names its instruction data (Alpaca files, chat conversations, benchmark train splits),
the chat template (default: the base variant's own), the LoRA adapter (rank, alpha, dropout,
target modules), optional 4-bit QLoRA, and the optimizer / schedule / DeepSpeed settings it shares
with pretraining recipes. A data source (`InstructSource`, with its registered format) belongs to
`medarena.instruct.data`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from medarena.errors import Problem, ProblemsError
from medarena.instruct.data import InstructSource
from medarena.schemas import Name, Spec
from medarena.training.recipe import (
    TrainingRecipe,
    load_recipe_folder,
    pick_recipe,
    refuse_duplicate_names,
)


class LoraSettings(Spec):
    r: int = Field(gt=0, description="adapter rank")
    alpha: float = Field(gt=0, description="scaling numerator: the update is (alpha / r) B A")
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="linear layer names (q_proj, v_proj, ...) or all-linear"
    )
    adapter_dtype: Literal["float32", "model"] = Field(
        "model",
        description="float32 keeps adapters in fp32 (PEFT's default; 0.64x the speed of full "
        "training on an H100); model computes them in the model's dtype (bf16)",
    )

    @field_validator("target_modules")
    @classmethod
    def _some_targets(cls, targets: list[str] | str) -> list[str] | str:
        if isinstance(targets, list) and not targets:
            raise ValueError("name at least one module, or use all-linear")
        return targets


class QLoRA(Spec):
    """A 4-bit base (bitsandbytes NF4) under the adapters; needs a CUDA GPU."""

    quant_type: Literal["nf4", "fp4"] = "nf4"
    double_quant: bool = True


class InstructRecipe(TrainingRecipe):
    data: list[InstructSource] = Field(min_length=1)
    chat_template: Name | None = Field(
        None, description="a template under models/chat_templates/; default: the variant's own"
    )
    system: str | None = Field(
        None, description="system message for pairs that have none (default: the template's)"
    )
    lora: LoraSettings
    qlora: QLoRA | None = None

    @field_validator("data")
    @classmethod
    def _unique_names(cls, sources: list[InstructSource]) -> list[InstructSource]:
        refuse_duplicate_names([source.name for source in sources], "data source")
        return sources


def load_recipes(workspace: str | Path | None = None) -> dict[str, InstructRecipe]:
    """Every recipe under instruct/; raises ProblemsError listing ALL problems."""
    return load_recipe_folder("instruct", InstructRecipe, workspace)


def check_names(recipes: dict[str, InstructRecipe], templates: set[str], tasks: set[str]) -> None:
    """Chat templates and benchmark tasks the recipes name must exist (ProblemsError)."""
    problems = []
    for recipe in recipes.values():
        where = f"instruct/{recipe.name}.yaml"
        if recipe.chat_template is not None and recipe.chat_template not in templates:
            known = ", ".join(sorted(templates))
            problems.append(
                Problem(
                    where,
                    None,
                    "chat_template",
                    f"unknown {recipe.chat_template!r}; known: {known}",
                )
            )
        for index, source in enumerate(recipe.data):
            if source.task is not None and source.task not in tasks:
                problems.append(
                    Problem(where, None, f"data[{index}].task", f"unknown task {source.task!r}")
                )
    if problems:
        raise ProblemsError(problems, "instruction-tuning recipes name what does not exist")


def get_recipe(recipes: dict[str, InstructRecipe], name: str) -> InstructRecipe:
    return pick_recipe(recipes, name, "instruction-tuning recipe")
