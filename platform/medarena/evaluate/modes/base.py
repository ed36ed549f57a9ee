"""What a scoring mode is: one object that owns how a task's items are prompted, scored and
summed up, registered by name in SCORING_MODES.

A mode says
- how its prompt reads: the spec field that renders an item (`template_field`), what a
  demonstration answers (`demo_answer`), an instruction put before the question (`instruction`);
- which settings it refuses (`check`) and what it is called in the run key (`key`);
- how a chunk of built prompts becomes predictions (`scorer`, made once per run);
- which metrics its stored predictions give (`metrics`), from storage alone.

The built-in modes register lazily ("module:attribute"), so this module never imports them. A task
kind lists the modes it allows (medarena.evaluate.kinds).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from medarena.errors import Refused
from medarena.evaluate.bartscore import DEFAULT_MODEL as BARTSCORE_DEFAULT
from medarena.evaluate.engines.base import Engine, Usage
from medarena.evaluate.formats import Item
from medarena.evaluate.spec import BenchmarkTask
from medarena.extensions import ExtensionRegistry
from medarena.results import MetricValue, Prediction


@dataclass(frozen=True)
class BuiltPrompt:
    """One item's prompt, ready to score: the context before the answer and its delimiter."""

    item: Item
    context: str
    demo_ids: tuple[str, ...]
    target_delimiter: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.context.encode()).hexdigest()


@dataclass(frozen=True)
class ScoringOptions:
    """A run's scoring settings: its EvalOptions' and the chat template's end of turn."""

    cot: bool = False
    samples: int = 1  # self-consistency votes (generate)
    temperature: float = 0.0
    seed: int = 0
    truncation: str = "left"
    end_of_turn: tuple[str, ...] = ()  # the chat template's stop strings, when one is applied
    bertscore_encoder: str = "minilm"
    extraction: str = "medarena"  # the answer extraction rule (evaluate/extractors.py)
    bartscore_model: str = BARTSCORE_DEFAULT


@dataclass(frozen=True)
class ChunkResult:
    predictions: list[Prediction]
    tokens: int  # tokens through the model: prompts plus generated


ChunkScorer = Callable[[Engine, Sequence[BuiltPrompt]], ChunkResult]


class ScoringMode(ABC):
    """How items are prompted, scored and summed up; `name` is its registered name."""

    name: ClassVar[str]
    template_field: ClassVar[str] = "prompt"  # the spec's Jinja template of one item
    scores_loglikelihood: ClassVar[bool] = False  # it needs the engine's loglikelihood

    def check(self, options: ScoringOptions) -> None:
        """Refuse settings this mode cannot score, before anything is loaded."""
        if options.cot or options.samples > 1:
            raise Refused("chain-of-thought and self-consistency need --mode generate")
        if options.extraction != "medarena":
            raise Refused(f"extraction rule {options.extraction!r} needs --mode generate")

    def key(self, options: ScoringOptions) -> str:
        """The run's scoring mode as stored, part of the run key: variants that measure
        something else get a suffix."""
        return self.name

    def demo_answer(self, item: Item) -> str:
        """What a demonstration's answer says."""
        return item.gold_text

    def instruction(self, task: BenchmarkTask) -> str | None:
        """Text put before the question (part of the prompt template hash)."""
        return None

    @abstractmethod
    def scorer(self, task: BenchmarkTask, options: ScoringOptions) -> ChunkScorer:
        """Scores chunks of one run's prompts (made once per run: it may hold a loaded model)."""

    @abstractmethod
    def metrics(self, task: BenchmarkTask, predictions: Sequence[Prediction]) -> list[MetricValue]:
        """The run's metrics, from its stored predictions alone."""


SCORING_MODES: ExtensionRegistry[ScoringMode] = ExtensionRegistry("scoring mode")
SCORING_MODES.register_lazy("loglik", "medarena.evaluate.modes.loglik:LOGLIK")
SCORING_MODES.register_lazy("cloze", "medarena.evaluate.modes.loglik:CLOZE")
SCORING_MODES.register_lazy("generate", "medarena.evaluate.modes.generate:GENERATE")


def prediction(
    prompt: BuiltPrompt,
    truncated_tokens: int,
    details: dict[str, Any] | None = None,
    usage: Sequence[Usage | None] = (),
    **fields: Any,
) -> Prediction:
    """A prediction with the item's id, the prompt and its hash, the gold answer, the details
    every mode records (subject, demo ids, tokens cut from the context) before the mode's own
    `details`, and the sum of what the item's API requests billed (`usage`, when any)."""
    billed = [one for one in usage if one is not None]
    if billed:
        total = sum(billed[1:], billed[0])
        fields.update(
            input_tokens=total.input_tokens,
            output_tokens=total.output_tokens,
            cost_usd=total.cost_usd,
        )
    item = prompt.item
    common: dict[str, Any] = {}
    if item.subject:
        common["subject"] = item.subject
    if prompt.demo_ids:
        common["demo_ids"] = list(prompt.demo_ids)
    if truncated_tokens:
        common["truncated_tokens"] = truncated_tokens
    return Prediction(
        item_id=item.id,
        prompt_hash=prompt.hash,
        prompt=prompt.context,
        gold=item.gold_text,
        details={**common, **(details or {})},
        **fields,
    )
