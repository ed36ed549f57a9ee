"""Benchmark task specs: one YAML per task under benchmarks/, validated like the model registry.

A spec says where the items come from (bundled sample files or the hub, same fields either way),
which source format reads them, how a prompt is written, and how answers are scored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox
from pydantic import Field, ValidationInfo, field_validator

from medarena.errors import Problem, ProblemsError, UnknownName
from medarena.evaluate.formats import SOURCE_FORMATS
from medarena.evaluate.kinds import TASK_KINDS
from medarena.extensions import ExtensionRegistry
from medarena.registry import find_workspace
from medarena.schemas import DataSource, FileData, HubData, Name, Spec, check_jinja_syntax
from medarena.yaml_source import read_spec

__all__ = [
    "BenchmarkTask",
    "DataSource",
    "FileData",
    "HubData",
    "load_benchmarks",
    "select_tasks",
    "spec_file",
    "task_problem",
]

# Prompts are user-written Jinja: rendered in a sandbox, undefined fields are errors.
PROMPT_JINJA = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True
)


def _one_of(names: Callable[[], Iterable[str]], *, items: bool = False) -> Callable[..., None]:
    """A JSON Schema `enum` (of a list's items) read when the schema is made, so that it lists
    the extensions registered by then."""

    def extra(schema: dict[str, Any]) -> None:
        (schema["items"] if items else schema)["enum"] = list(names())

    return extra


def _kind_modes() -> Iterable[str]:
    return dict.fromkeys(mode for kind in TASK_KINDS for mode in TASK_KINDS.get(kind).modes)


def _registered(registry: ExtensionRegistry[Any], name: str) -> str:
    if name not in registry:
        raise ValueError(str(UnknownName(registry.kind, name, registry.names())))
    return name


class DataSplits(Spec):
    """Where the scored items and the few-shot demonstrations come from."""

    eval: DataSource
    fewshot: DataSource | None = Field(None, description="split that k-shot demos are drawn from")


class Generation(Spec):
    """Decoding settings for the generate scoring mode."""

    max_new_tokens: int = Field(32, gt=0)
    cot_max_new_tokens: int = Field(256, gt=0, description="budget with chain-of-thought")
    stop: list[str] = Field(default_factory=lambda: ["\n\n"])


class BenchmarkTask(Spec):
    """One benchmark task: data, prompt, scoring."""

    name: Name
    display_name: str
    kind: str = Field(
        description="a registered task kind", json_schema_extra=_one_of(TASK_KINDS.names)
    )
    description: str | None = None
    citation: str = Field(description="the paper or page that defines the benchmark")
    license: str | None = Field(None, description="the dataset's license, as its source states")
    access: str | None = Field(
        None,
        description="how the full data is obtained (credentialed: the agreement and where to "
        "apply); `--data local` refuses with it when the local files are missing",
    )
    source_format: str = Field(
        description="the registered format that reads the records",
        json_schema_extra=_one_of(SOURCE_FORMATS.names),
    )
    data: DataSplits = Field(description="the bundled offline sample (default)")
    hub: DataSplits | None = Field(None, description="the full dataset on the hub (--data hub)")
    local: DataSplits | None = Field(
        None, description="the full dataset as its user holds it, never bundled (--data local)"
    )
    subjects: list[str] | None = Field(None, description="keep only these subjects (MMLU)")
    preamble: str = Field(
        "", description="Jinja text put once before the demos and the question (MMLU header)"
    )
    prompt: str = Field(description="Jinja template of one item; its fields come from the format")
    cloze_prompt: str | None = Field(
        None, description="Jinja template of one item without its options (cloze scoring mode)"
    )
    target_delimiter: str = Field(" ", description="between the prompt and the answer choice")
    fewshot_delimiter: str = Field("\n\n", description="between demonstrations")
    instruction: str | None = Field(
        None, description="asks for an answer format in generate mode; put before the question"
    )
    cot_trigger: str = "Let's think step by step."
    scoring_modes: list[str] = Field(
        min_length=1,
        description="modes of the task's kind that it is scored in",
        json_schema_extra=_one_of(_kind_modes, items=True),
    )
    metrics: list[str] = Field(min_length=1)
    generation: Generation = Generation()

    @field_validator("prompt", "preamble", "cloze_prompt")
    @classmethod
    def _template_compiles(cls, template: str | None) -> str | None:
        return None if template is None else check_jinja_syntax(PROMPT_JINJA, template)

    @field_validator("kind")
    @classmethod
    def _kind_is_registered(cls, kind: str) -> str:
        return _registered(TASK_KINDS, kind)

    @field_validator("source_format")
    @classmethod
    def _format_is_registered(cls, source_format: str) -> str:
        return _registered(SOURCE_FORMATS, source_format)

    @field_validator("scoring_modes")
    @classmethod
    def _modes_fit_the_kind(cls, modes: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("kind")
        allowed = TASK_KINDS.get(kind).modes if kind is not None else modes
        if any(mode not in allowed for mode in modes):
            either = " or ".join(allowed)
            raise ValueError(f"{kind} is scored in {either} mode only: [{', '.join(allowed)}]")
        # the one mode that reads a spec field of its own; the field is declared above
        if "cloze" in modes and not info.data.get("cloze_prompt"):
            raise ValueError("the cloze mode needs a `cloze_prompt` (the question without options)")
        return modes

    @field_validator("metrics")
    @classmethod
    def _metrics_fit_the_kind(cls, metrics: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("kind")
        if kind is None:
            return metrics
        allowed = TASK_KINDS.get(kind).metrics
        unknown = [metric for metric in metrics if metric not in allowed]
        if unknown:
            raise ValueError(f"metrics {unknown} do not apply to {kind}; use {list(allowed)}")
        return metrics


def load_benchmarks(workspace: str | Path | None = None) -> dict[str, BenchmarkTask]:
    """Every spec under benchmarks/, validated; raises ProblemsError listing ALL problems."""
    root = find_workspace(workspace)
    folder = root / "benchmarks"
    tasks: dict[str, BenchmarkTask] = {}
    if not folder.is_dir():
        return tasks  # a workspace of model cards only
    problems: list[Problem] = []
    for path in sorted(folder.glob("*.yaml")):
        _, spec, found = read_spec(path, str(path.relative_to(root)), BenchmarkTask)
        problems += found
        if spec is not None:
            tasks[spec.name] = spec
    if problems:
        raise ProblemsError(problems, headline=f"benchmark specs in {folder} are invalid")
    return tasks


def spec_file(task: BenchmarkTask) -> str:
    """Where a task's spec is, relative to the workspace (its name is its file name)."""
    return f"benchmarks/{task.name}.yaml"


def task_problem(task: BenchmarkTask, field: str, message: str, headline: str) -> ProblemsError:
    """A problem with one field of a task's spec, found only when its data or prompts are used."""
    return ProblemsError([Problem(spec_file(task), None, field, message)], headline)


def select_tasks(tasks: dict[str, BenchmarkTask], names: list[str]) -> list[BenchmarkTask]:
    """The named tasks, in order; an unknown name lists the known ones."""
    for name in names:
        if name not in tasks:
            raise UnknownName("benchmark task", name, list(tasks))
    return [tasks[name] for name in names]
