"""The generate mode: the model writes its answer.

On multiple choice the answer is extracted from the text (medarena.evaluate.extract), with
optional chain-of-thought and self-consistency (several samples, majority vote); an answer that
cannot be parsed is wrong and counted in the parse failure rate. A kind with a rule of its own
(multilabel, extractive QA, NER: medarena.evaluate.tasks) scores each output by that rule. On
tasks with a reference text (summarization) each output is scored per item by ROUGE and, when
asked for, BERTScore and BARTScore (medarena.evaluate.bartscore).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from medarena.errors import Refused
from medarena.evaluate.bartscore import BartScorer
from medarena.evaluate.engines.base import Engine, Sampling, Usage
from medarena.evaluate.extract import majority_vote
from medarena.evaluate.extractors import DEFAULT_EXTRACTOR, EXTRACTORS
from medarena.evaluate.formats import Item
from medarena.evaluate.kinds import TASK_KINDS, ScoredOutput
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

# per prompt: the samples, tokens cut, what an API billed
Generations = list[tuple[tuple[str, ...], int, Usage | None]]


class GenerateMode(ScoringMode):
    name = "generate"

    def check(self, options: ScoringOptions) -> None:
        if options.samples > 1 and options.temperature <= 0:
            raise Refused("self-consistency samples need --temperature above 0")
        EXTRACTORS.get(options.extraction)  # an unknown rule is refused with the known ones

    def key(self, options: ScoringOptions) -> str:
        """Chain-of-thought and self-consistency are different measurements."""
        key = self.name
        if options.cot:
            key += "+cot"
        if options.samples > 1:
            key += f"+sc{options.samples}@{options.temperature:g}"
        if options.extraction != DEFAULT_EXTRACTOR:  # another rule: another measurement
            key += f"+x={options.extraction}"
        return key

    def instruction(self, task: BenchmarkTask) -> str | None:
        return task.instruction

    def scorer(self, task: BenchmarkTask, options: ScoringOptions) -> ChunkScorer:
        kind = TASK_KINDS.get(task.kind)
        if kind.choices:
            return partial(self._choices, task=task, options=options)
        if kind.score_output is not None:
            if options.extraction != DEFAULT_EXTRACTOR:
                raise Refused(
                    f"{task.name} ({task.kind}) parses its outputs with its kind's own rule: "
                    f"extraction rule {options.extraction!r} does not apply"
                )
            return partial(self._own_rule, task=task, options=options, rule=kind.score_output)
        # the encoders load once per run, on its first chunk
        bert = BertScorer(options.bertscore_encoder) if "bertscore_f1" in task.metrics else None
        bart = BartScorer(options.bartscore_model) if "bartscore" in task.metrics else None
        return partial(self._references, task=task, options=options, bert=bert, bart=bart)

    def metrics(self, task: BenchmarkTask, predictions: Sequence[Prediction]) -> list[MetricValue]:
        kind = TASK_KINDS.get(task.kind)
        if kind.choices:
            labels = choice_labels(predictions)
            return qa_metrics(predictions, task.metrics, labels, parsed=True)
        if kind.summarize is not None:
            return kind.summarize(predictions, task.metrics)
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
        predictions = [
            prediction(prompt, cut, usage=[usage], **parsed_fields(prompt.item, texts, options))
            for prompt, (texts, cut, usage) in zip(prompts, generations, strict=True)
        ]
        return ChunkResult(predictions, tokens)

    def _own_rule(
        self,
        engine: Engine,
        prompts: Sequence[BuiltPrompt],
        *,
        task: BenchmarkTask,
        options: ScoringOptions,
        rule: Callable[[Item, str], ScoredOutput],
    ) -> ChunkResult:
        generations, tokens = _generate(engine, task, prompts, options)
        predictions = []
        for prompt, (texts, cut, usage) in zip(prompts, generations, strict=True):
            scored = rule(prompt.item, texts[0])
            predictions.append(
                prediction(
                    prompt,
                    cut,
                    raw_output=texts[0],
                    parsed_answer=scored.parsed_answer,
                    correct=scored.correct,
                    score=scored.score,
                    parse_failed=scored.parse_failed,
                    details=scored.details,
                    usage=[usage],
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
        candidates = [texts[0].strip() for texts, _, _ in generations]
        references = [prompt.item.reference or "" for prompt in prompts]
        rouge = rouge_scores(candidates, references)
        none: list[float | None] = [None] * len(candidates)
        berts = bert.f1(candidates, references) if bert else none
        # BARTScore as Me-LLaMA reports it: the reference given the generated summary
        barts = bart.score(candidates, references) if bart else none
        predictions = []
        for prompt, (_, cut, usage), candidate, scores, bert_f1, bart_score in zip(
            prompts, generations, candidates, rouge, berts, barts, strict=True
        ):
            details: dict[str, float] = dict(scores)
            if bert_f1 is not None:
                details["bertscore_f1"] = bert_f1
            if bart_score is not None:
                details["bartscore"] = bart_score
            predictions.append(
                prediction(
                    prompt,
                    cut,
                    raw_output=candidate,
                    score=scores["rouge_l"],
                    details=details,
                    usage=[usage],
                )
            )
        return ChunkResult(predictions, tokens)


def parsed_fields(item: Item, texts: Sequence[str], options: ScoringOptions) -> dict[str, Any]:
    """A multiple-choice prediction's fields from its generated texts (one per sample), parsed
    with the options' extraction rule; `medarena rescore` calls it on stored texts."""
    parse = EXTRACTORS.get(options.extraction).parse
    votes = [parse(text, item.choices, item.option_texts, options.cot) for text in texts]
    answer = majority_vote(votes)
    details: dict[str, object] = {"choices": list(item.choices)}
    if len(texts) > 1:
        details["samples"] = list(texts)
        details["votes"] = [None if v is None else item.choices[v] for v in votes]
    return {
        "raw_output": texts[0],
        "parsed_answer": None if answer is None else item.choices[answer],
        "correct": answer is not None and answer == item.gold,
        "parse_failed": answer is None,
        "details": details,
    }


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
    items = [prompt.item.id for prompt in prompts]
    if engine.takes_text:  # an API server tokenizes, applies its template and bounds the prompt
        outputs = engine.generate([prompt.context for prompt in prompts], sampling, items)
        tokens = sum(o.usage.input_tokens if o.usage else 0 for o in outputs)
        cuts = [0] * len(prompts)
    else:
        ids, cuts = [], []
        for prompt in prompts:
            context, cut = fit_context(
                engine.tokenizer.encode(prompt.context),
                budget,
                engine.max_length,
                options.truncation,
                prompt.item.id,
            )
            ids.append(tuple(context))
            cuts.append(cut)
        outputs = engine.generate(ids, sampling, items)
        tokens = sum(len(context) for context in ids)
    tokens += sum(o.new_tokens for o in outputs)
    return [(o.texts, cut, o.usage) for o, cut in zip(outputs, cuts, strict=True)], tokens


GENERATE = GenerateMode()
