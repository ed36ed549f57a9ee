"""The generate mode: the model writes its answer.

On multiple choice the answer is extracted from the text (medarena.evaluate.extract), with
optional chain-of-thought and self-consistency (several samples, majority vote); an answer that
cannot be parsed is wrong and counted in the parse failure rate. On tasks with a reference text
(summarization) each output is scored per item by ROUGE and, when asked for, BERTScore and
BARTScore (medarena.evaluate.bartscore).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from medarena.errors import Refused
from medarena.evaluate.bartscore import BartScorer
from medarena.evaluate.engines.base import Engine, Sampling
from medarena.evaluate.extract import extract_choice, majority_vote
from medarena.evaluate.kinds import TASK_KINDS
from medarena.evaluate.metrics import (
    BertScorer,
    choice_labels,
    qa_metrics,
    rouge_scores,
    summary_metrics,
)
from medarena.evaluate.modes.base import (
    BuiltPrompt,
    ChunkResult,
    ChunkScorer,
    ScoringMode,
    ScoringOptions,
    prediction,
)
from medarena.evaluate.spec import BenchmarkTask
from medarena.evaluate.tokens import fit_context
from medarena.results import MetricValue, Prediction

Generations = list[tuple[tuple[str, ...], int]]  # per prompt: the samples, tokens cut


class GenerateMode(ScoringMode):
    name = "generate"

    def check(self, options: ScoringOptions) -> None:
        if options.samples > 1 and options.temperature <= 0:
            raise Refused("self-consistency samples need --temperature above 0")

    def key(self, options: ScoringOptions) -> str:
        """Chain-of-thought and self-consistency are different measurements."""
        key = self.name
        if options.cot:
            key += "+cot"
        if options.samples > 1:
            key += f"+sc{options.samples}@{options.temperature:g}"
        return key

    def instruction(self, task: BenchmarkTask) -> str | None:
        return task.instruction

    def scorer(self, task: BenchmarkTask, options: ScoringOptions) -> ChunkScorer:
        if TASK_KINDS.get(task.kind).choices:
            return partial(self._choices, task=task, options=options)
        # the encoders load once per run, on its first chunk
        bert = BertScorer(options.bertscore_encoder) if "bertscore_f1" in task.metrics else None
        bart = BartScorer(options.bartscore_model) if "bartscore" in task.metrics else None
        return partial(self._references, task=task, options=options, bert=bert, bart=bart)

    def metrics(self, task: BenchmarkTask, predictions: Sequence[Prediction]) -> list[MetricValue]:
        if TASK_KINDS.get(task.kind).choices:
            labels = choice_labels(predictions)
            return qa_metrics(predictions, task.metrics, labels, parsed=True)
        return summary_metrics(predictions, task.metrics)

    def _choices(
        self,
        engine: Engine,
        prompts: Sequence[BuiltPrompt],
        *,
        task: BenchmarkTask,
        options: ScoringOptions,
    ) -> ChunkResult:
        generations, tokens = _generate(engine, task, prompts, options)
        predictions = []
        for prompt, (texts, cut) in zip(prompts, generations, strict=True):
            item = prompt.item
            votes = [extract_choice(text, item.choices, item.option_texts) for text in texts]
            answer = majority_vote(votes)
            details: dict[str, object] = {"choices": list(item.choices)}
            if len(texts) > 1:
                details["samples"] = list(texts)
                details["votes"] = [None if v is None else item.choices[v] for v in votes]
            predictions.append(
                prediction(
                    prompt,
                    cut,
                    raw_output=texts[0],
                    parsed_answer=None if answer is None else item.choices[answer],
                    correct=answer is not None and answer == item.gold,
                    parse_failed=answer is None,
                    details=details,
                )
            )
        return ChunkResult(predictions, tokens)

    def _references(
        self,
        engine: Engine,
        prompts: Sequence[BuiltPrompt],
        *,
        task: BenchmarkTask,
        options: ScoringOptions,
        bert: BertScorer | None,
        bart: BartScorer | None,
    ) -> ChunkResult:
        generations, tokens = _generate(engine, task, prompts, options)
        candidates = [texts[0].strip() for texts, _ in generations]
        references = [prompt.item.reference or "" for prompt in prompts]
        rouge = rouge_scores(candidates, references)
        none: list[float | None] = [None] * len(candidates)
        berts = bert.f1(candidates, references) if bert else none
        # BARTScore as Me-LLaMA reports it: the reference given the generated summary
        barts = bart.score(candidates, references) if bart else none
        predictions = []
        for prompt, (_, cut), candidate, scores, bert_f1, bart_score in zip(
            prompts, generations, candidates, rouge, berts, barts, strict=True
        ):
            details: dict[str, float] = dict(scores)
            if bert_f1 is not None:
                details["bertscore_f1"] = bert_f1
            if bart_score is not None:
                details["bartscore"] = bart_score
            predictions.append(
                prediction(
                    prompt, cut, raw_output=candidate, score=scores["rouge_l"], details=details
                )
            )
        return ChunkResult(predictions, tokens)


def _generate(
    engine: Engine, task: BenchmarkTask, prompts: Sequence[BuiltPrompt], options: ScoringOptions
) -> tuple[Generations, int]:
    budget = task.generation.cot_max_new_tokens if options.cot else task.generation.max_new_tokens
    # chain-of-thought reasons over several paragraphs: only the template's end of turn applies
    stop = () if options.cot else tuple(task.generation.stop)
    sampling = Sampling(
        max_new_tokens=budget,
        temperature=options.temperature,
        n=options.samples,
        stop=stop,
        seed=options.seed,
        end_of_turn=options.end_of_turn,
    )
    ids = []
    for prompt in prompts:
        context = engine.tokenizer.encode(prompt.context)
        context, cut = fit_context(
            context, budget, engine.max_length, options.truncation, prompt.item.id
        )
        ids.append((tuple(context), cut))
    outputs = engine.generate([context for context, _ in ids], sampling)
    tokens = sum(len(c) for c, _ in ids) + sum(o.new_tokens for o in outputs)
    return [(o.texts, cut) for o, (_, cut) in zip(outputs, ids, strict=True)], tokens


GENERATE = GenerateMode()
