"""Task kinds: what a kind of benchmark task asks of a model, and how it may be scored.

A spec's `kind` names one of these; its `scoring_modes` and `metrics` must be ones the kind
allows. A new kind is one registration here (or anywhere imported before specs are loaded).

Kinds whose items have choices (multiple choice, and the label kinds: one label of a closed set)
are scored by the scoring modes' own rules. A kind with a rule of its own for generated text
(multilabel sets, extractive QA spans, NER entities) gives `score_output` and `summarize`, and
lives in its own module under medarena.evaluate.tasks, registered lazily below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from medarena.evaluate.formats import Item
from medarena.extensions import ExtensionRegistry
from medarena.results import MetricValue, Prediction


@dataclass(frozen=True)
class ScoredOutput:
    """What a kind's rule made of one generated text (the raw text is stored beside it)."""

    parsed_answer: str | None
    parse_failed: bool
    details: dict[str, Any] = field(default_factory=dict)
    correct: bool | None = None
    score: float | None = None


@dataclass(frozen=True)
class TaskKind:
    """The scoring modes and metrics a task of this kind may use, and what its items hold."""

    modes: tuple[str, ...]  # names in medarena.evaluate.modes.SCORING_MODES
    metrics: tuple[str, ...]  # what a spec may ask for under `metrics`
    choices: bool  # items have choices and a gold one; otherwise a reference text to match
    # generate mode, kinds with a rule of their own: one output scored against its item ...
    score_output: Callable[[Item, str], ScoredOutput] | None = None
    # ... and the run's `wanted` metrics from its stored predictions alone
    summarize: Callable[[Sequence[Prediction], Sequence[str]], list[MetricValue]] | None = None
    # the version of `score_output`'s rule, in the run key: bump it when a stored output
    # could be scored differently
    rule: str | None = None


TASK_KINDS: ExtensionRegistry[TaskKind] = ExtensionRegistry("task kind")

TASK_KINDS.register(
    "multiple_choice",
    TaskKind(
        modes=("loglik", "cloze", "generate"),
        metrics=("acc", "acc_norm", "macro_f1", "parse_failure_rate"),
        choices=True,
    ),
)
TASK_KINDS.register(
    "summarization",
    TaskKind(
        modes=("generate",),
        metrics=("rouge_1", "rouge_2", "rouge_l", "rouge_lsum", "bertscore_f1", "bartscore"),
        choices=False,
    ),
)
TASK_KINDS.register_lazy("classification", "medarena.evaluate.tasks.labels:CLASSIFICATION")
TASK_KINDS.register_lazy("nli", "medarena.evaluate.tasks.labels:NLI")
TASK_KINDS.register_lazy("relation", "medarena.evaluate.tasks.labels:RELATION")
TASK_KINDS.register_lazy("multilabel", "medarena.evaluate.tasks.multilabel:MULTILABEL")
TASK_KINDS.register_lazy("extractive_qa", "medarena.evaluate.tasks.extractive_qa:EXTRACTIVE_QA")
TASK_KINDS.register_lazy("ner", "medarena.evaluate.tasks.ner:NER")
