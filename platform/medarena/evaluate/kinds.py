"""Task kinds: what a kind of benchmark task asks of a model, and how it may be scored.

A spec's `kind` names one of these; its `scoring_modes` and `metrics` must be ones the kind
allows. A new kind is one registration here (or anywhere imported before specs are loaded).
"""

from __future__ import annotations

from dataclasses import dataclass

from medarena.extensions import ExtensionRegistry


@dataclass(frozen=True)
class TaskKind:
    """The scoring modes and metrics a task of this kind may use, and what its items hold."""

    modes: tuple[str, ...]  # names in medarena.evaluate.modes.SCORING_MODES
    metrics: tuple[str, ...]  # what a spec may ask for under `metrics`
    choices: bool  # items have choices and a gold one; otherwise a reference text to match


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
