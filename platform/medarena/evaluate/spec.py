"""Benchmark task specs: one YAML per task under benchmarks/, validated like the model registry.

A spec says where the items come from (bundled sample files or the hub, same fields either way),
which source format reads them, how a prompt is written, and how answers are scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import jinja2
import jinja2.sandbox
from pydantic import Field, ValidationInfo, field_validator

from medarena.errors import Problem, ProblemsError, UnknownName
from medarena.registry import find_workspace
from medarena.schemas import DataSource, FileData, HubData, Name, Spec, check_jinja_syntax
from medarena.yaml_source import read_spec

SOURCE_FORMATS = (
    "medqa_4options",  # GBaker/MedQA-USMLE-4-options: question, options{A..D}, answer_idx
    "medqa_bigbio",  # bigbio/med_qa source: options as [{key, value}], answer_idx
    "medmcqa",  # openlifescienceai/medmcqa: question, opa..opd, cop 0-3
    "pubmedqa",  # PubMedQA pqa-labeled: QUESTION, CONTEXTS, final_decision
    "mmlu",  # cais/mmlu: question, subject, choices[4], answer 0-3
    "me_llama_summarization",  # Me-LLaMA instruction files: id, query, answer
)
# loglik: log-likelihood of each choice label after the prompt that lists the options (lm-eval's
# MedQA / MMLU formulation); cloze: log-likelihood of each option's text after a prompt without
# the options (the "cloze formulation" of Gao et al.'s harness and OLMES, Gu et al. 2024), which
# measures knowledge without needing the letter-matching skill small models lack; generate: a
# generated answer, extracted and parsed.
SCORING_MODES = ("loglik", "cloze", "generate")
LOGLIK_MODES = ("loglik", "cloze")
QA_METRICS = ("acc", "acc_norm", "macro_f1", "parse_failure_rate")
SUMMARY_METRICS = ("rouge_1", "rouge_2", "rouge_l", "rouge_lsum", "bertscore_f1")

__all__ = ["BenchmarkTask", "DataSource", "FileData", "HubData", "load_benchmarks", "select_tasks"]

# Prompts are user-written Jinja: rendered in a sandbox, undefined fields are errors.
PROMPT_JINJA = jinja2.sandbox.ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True
)


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
    kind: Literal["multiple_choice", "summarization"]
    description: str | None = None
    citation: str = Field(description="the paper or page that defines the benchmark")
    source_format: Literal[SOURCE_FORMATS]  # type: ignore[valid-type]
    data: DataSplits = Field(description="the bundled offline sample (default)")
    hub: DataSplits | None = Field(None, description="the full dataset on the hub (--data hub)")
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
    scoring_modes: list[Literal[SCORING_MODES]] = Field(min_length=1)  # type: ignore[valid-type]
    metrics: list[str] = Field(min_length=1)
    generation: Generation = Generation()

    @field_validator("prompt", "preamble", "cloze_prompt")
    @classmethod
    def _template_compiles(cls, template: str | None) -> str | None:
        return None if template is None else check_jinja_syntax(PROMPT_JINJA, template)

    @field_validator("scoring_modes")
    @classmethod
    def _modes_fit_the_kind(cls, modes: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("kind") == "summarization" and modes != ["generate"]:
            raise ValueError("summarization is scored in generate mode only: [generate]")
        if "cloze" in modes and not info.data.get("cloze_prompt"):
            raise ValueError("the cloze mode needs a `cloze_prompt` (the question without options)")
        return modes

    @field_validator("metrics")
    @classmethod
    def _metrics_fit_the_kind(cls, metrics: list[str], info: ValidationInfo) -> list[str]:
        kind = info.data.get("kind")
        allowed = QA_METRICS if kind == "multiple_choice" else SUMMARY_METRICS
        unknown = [metric for metric in metrics if metric not in allowed]
        if kind is not None and unknown:
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


def select_tasks(tasks: dict[str, BenchmarkTask], names: list[str]) -> list[BenchmarkTask]:
    """The named tasks, in order; an unknown name lists the known ones."""
    for name in names:
        if name not in tasks:
            raise UnknownName("benchmark task", name, list(tasks))
    return [tasks[name] for name in names]
