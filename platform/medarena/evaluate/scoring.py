"""Score a chunk of prompts with an engine and turn the outputs into per-item predictions.

Three scoring paths: log-likelihood multiple choice, generation + answer extraction (with
optional chain-of-thought and self-consistency), and summarization (ROUGE + BERTScore).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medarena.evaluate.engines import Engine, LoglikRequest, Sampling
from medarena.evaluate.extract import extract_choice, majority_vote
from medarena.evaluate.formats import Item
from medarena.evaluate.metrics import BertScorer, rouge_scores
from medarena.evaluate.prompts import BuiltPrompt
from medarena.evaluate.spec import LOGLIK_MODES, BenchmarkTask
from medarena.evaluate.tokens import encode_pair, fit_context
from medarena.results import Prediction


@dataclass(frozen=True)
class ScoringOptions:
    mode: str  # loglik | cloze | generate
    cot: bool = False
    samples: int = 1  # self-consistency votes (generate)
    temperature: float = 0.0
    seed: int = 0
    truncation: str = "left"
    end_of_turn: tuple[str, ...] = ()  # the chat template's stop strings, when one is applied


@dataclass(frozen=True)
class ChunkResult:
    predictions: list[Prediction]
    tokens: int  # tokens through the model: prompts plus generated


def score_chunk(
    engine: Engine,
    task: BenchmarkTask,
    prompts: Sequence[BuiltPrompt],
    options: ScoringOptions,
    bert: BertScorer | None = None,
) -> ChunkResult:
    if options.mode in LOGLIK_MODES:
        return _score_loglik(engine, prompts, options)
    generations, tokens = _generate(engine, task, prompts, options)
    if task.kind == "summarization":
        return ChunkResult(_summaries(prompts, generations, bert), tokens)
    return ChunkResult(_extracted(prompts, generations), tokens)


def _continuations(item: Item, mode: str) -> tuple[str, ...]:
    """What follows the prompt for each choice: its label, or in cloze mode its text."""
    return item.option_texts if mode == "cloze" else item.choices


def _score_loglik(
    engine: Engine, prompts: Sequence[BuiltPrompt], options: ScoringOptions
) -> ChunkResult:
    requests: list[LoglikRequest] = []
    dropped: list[int] = []
    for prompt in prompts:
        most = 0
        for choice in _continuations(prompt.item, options.mode):
            context, continuation = encode_pair(
                engine.tokenizer, prompt.context, prompt.target_delimiter + choice
            )
            context, cut = fit_context(
                context, len(continuation), engine.max_length, options.truncation, prompt.item.id
            )
            most = max(most, cut)
            requests.append(LoglikRequest(tuple(context), tuple(continuation)))
        dropped.append(most)
    results = engine.loglikelihood(requests)
    predictions, start = [], 0
    for prompt, cut in zip(prompts, dropped, strict=True):
        item = prompt.item
        continuations = _continuations(item, options.mode)
        scored = results[start : start + len(continuations)]
        start += len(continuations)
        lls = [r.logprob for r in scored]
        best = max(range(len(lls)), key=lls.__getitem__)
        predictions.append(
            _prediction(
                prompt,
                parsed_answer=item.choices[best],
                correct=best == item.gold,
                score=lls[item.gold] if item.gold is not None else None,
                logprobs={
                    "choices": list(item.choices),
                    "loglik": lls,
                    "is_greedy": [r.is_greedy for r in scored],
                    "char_len": [len(text) for text in continuations],
                },
                details={**_details(prompt, cut), "choices": list(item.choices)},
            )
        )
    tokens = sum(len(r.context) + len(r.continuation) for r in requests)
    return ChunkResult(predictions, tokens)


def _generate(
    engine: Engine, task: BenchmarkTask, prompts: Sequence[BuiltPrompt], options: ScoringOptions
) -> tuple[list[tuple[tuple[str, ...], int]], int]:
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


def _extracted(
    prompts: Sequence[BuiltPrompt], generations: list[tuple[tuple[str, ...], int]]
) -> list[Prediction]:
    predictions = []
    for prompt, (texts, cut) in zip(prompts, generations, strict=True):
        item = prompt.item
        votes = [extract_choice(text, item.choices, item.option_texts) for text in texts]
        answer = majority_vote(votes)
        details = {**_details(prompt, cut), "choices": list(item.choices)}
        if len(texts) > 1:
            details["samples"] = list(texts)
            details["votes"] = [None if v is None else item.choices[v] for v in votes]
        predictions.append(
            _prediction(
                prompt,
                raw_output=texts[0],
                parsed_answer=None if answer is None else item.choices[answer],
                correct=answer is not None and answer == item.gold,
                parse_failed=answer is None,
                details=details,
            )
        )
    return predictions


def _summaries(
    prompts: Sequence[BuiltPrompt],
    generations: list[tuple[tuple[str, ...], int]],
    bert: BertScorer | None,
) -> list[Prediction]:
    candidates = [texts[0].strip() for texts, _ in generations]
    references = [prompt.item.reference or "" for prompt in prompts]
    rouge = rouge_scores(candidates, references)
    berts = bert.f1(candidates, references) if bert else [None] * len(candidates)
    predictions = []
    for prompt, (_, cut), candidate, scores, bert_f1 in zip(
        prompts, generations, candidates, rouge, berts, strict=True
    ):
        details = {**_details(prompt, cut), **scores}
        if bert_f1 is not None:
            details["bertscore_f1"] = bert_f1
        predictions.append(
            _prediction(
                prompt,
                raw_output=candidate,
                score=scores["rouge_l"],
                details=details,
            )
        )
    return predictions


def _prediction(prompt: BuiltPrompt, **fields: Any) -> Prediction:
    """A prediction with the item's id, the prompt and its hash, and the gold answer."""
    return Prediction(
        item_id=prompt.item.id,
        prompt_hash=prompt.hash,
        prompt=prompt.context,
        gold=prompt.item.gold_text,
        **fields,
    )


def _details(prompt: BuiltPrompt, truncated_tokens: int) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if prompt.item.subject:
        details["subject"] = prompt.item.subject
    if prompt.demo_ids:
        details["demo_ids"] = list(prompt.demo_ids)
    if truncated_tokens:
        details["truncated_tokens"] = truncated_tokens
    return details
