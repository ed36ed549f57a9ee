"""Multiple choice by log-likelihood, lm-evaluation-harness's way: each choice is scored as a
continuation of the prompt, the answer is the argmax of summed log-prob, acc_norm divides by the
continuation's length in characters.

- loglik: the choice labels (" A") after a prompt that lists the options (lm-eval's MedQA / MMLU
  formulation).
- cloze: each option's text after a prompt without the options (the "cloze formulation" of Gao
  et al.'s harness and OLMES, Gu et al. 2024), which measures knowledge without needing the
  letter-matching skill small models lack. Its prompt is the spec's `cloze_prompt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from medarena.evaluate.engines.base import Engine, LoglikRequest
from medarena.evaluate.formats import Item
from medarena.evaluate.metrics import choice_labels, qa_metrics
from medarena.evaluate.modes.base import (
    BuiltPrompt,
    ChunkResult,
    ChunkScorer,
    ScoringMode,
    ScoringOptions,
    prediction,
)
from medarena.evaluate.spec import BenchmarkTask
from medarena.evaluate.tokens import encode_pair, fit_context
from medarena.results import MetricValue, Prediction


class LoglikMode(ScoringMode):
    name = "loglik"
    scores_loglikelihood = True

    def continuations(self, item: Item) -> tuple[str, ...]:
        """What follows the prompt for each choice."""
        return item.choices

    def scorer(self, task: BenchmarkTask, options: ScoringOptions) -> ChunkScorer:
        return partial(self._score, options=options)

    def metrics(self, task: BenchmarkTask, predictions: Sequence[Prediction]) -> list[MetricValue]:
        labels = choice_labels(predictions)
        return qa_metrics(predictions, task.metrics, labels, logliks=True)

    def _score(
        self, engine: Engine, prompts: Sequence[BuiltPrompt], options: ScoringOptions
    ) -> ChunkResult:
        requests: list[LoglikRequest] = []
        dropped: list[int] = []
        for prompt in prompts:
            most = 0
            for choice in self.continuations(prompt.item):
                context, continuation = encode_pair(
                    engine.tokenizer, prompt.context, prompt.target_delimiter + choice
                )
                context, cut = fit_context(
                    context,
                    len(continuation),
                    engine.max_length,
                    options.truncation,
                    prompt.item.id,
                )
                most = max(most, cut)
                requests.append(LoglikRequest(tuple(context), tuple(continuation), prompt.item.id))
            dropped.append(most)
        results = engine.loglikelihood(requests)
        predictions, start = [], 0
        for prompt, cut in zip(prompts, dropped, strict=True):
            item = prompt.item
            continuations = self.continuations(item)
            scored = results[start : start + len(continuations)]
            start += len(continuations)
            lls = [r.logprob for r in scored]
            best = max(range(len(lls)), key=lls.__getitem__)
            predictions.append(
                prediction(
                    prompt,
                    cut,
                    parsed_answer=item.choices[best],
                    correct=best == item.gold,
                    score=lls[item.gold] if item.gold is not None else None,
                    logprobs={
                        "choices": list(item.choices),
                        "loglik": lls,
                        "is_greedy": [r.is_greedy for r in scored],
                        "char_len": [len(text) for text in continuations],
                    },
                    details={"choices": list(item.choices)},
                    usage=[r.usage for r in scored],
                )
            )
        tokens = sum(len(r.context) + len(r.continuation) for r in requests)
        return ChunkResult(predictions, tokens)


class ClozeMode(LoglikMode):
    name = "cloze"
    template_field = "cloze_prompt"

    def continuations(self, item: Item) -> tuple[str, ...]:
        return item.option_texts

    def demo_answer(self, item: Item) -> str:
        """The option's text, not its label."""
        return item.option_texts[item.gold] if item.gold is not None else item.gold_text


LOGLIK = LoglikMode()
CLOZE = ClozeMode()
