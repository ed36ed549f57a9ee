"""The `extractive_qa` kind: the answer is a span of the item's context (EmrQA). Scored in
generate mode by exact match and token F1 against the accepted answers, each after SQuAD's
answer normalisation (lower case, punctuation and the articles a/an/the removed, white space
collapsed; Rajpurkar et al. 2016, the official evaluate-v1.1 script), the best over the accepted
answers. Both are per item (means with bootstrap CIs; runs paired by the sign test, which on
exact match's 0/1 is McNemar's exact test).
"""

from __future__ import annotations

import re
import string
from collections import Counter

from medarena.data.records import FieldProblem, Record
from medarena.evaluate.formats import Item, field, text_field
from medarena.evaluate.kinds import ScoredOutput, TaskKind
from medarena.evaluate.metrics import rule_metrics

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """F1 of the normalised tokens in common (as multisets); when either side is empty, 1.0
    only if both are (SQuAD 2.0's rule for unanswerable questions)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not expected:
        return float(predicted == expected)
    same = sum((Counter(predicted) & Counter(expected)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def score_output(item: Item, text: str) -> ScoredOutput:
    """The first line of the output is the answer (the spec's stop strings end it sooner)."""
    answer = text.strip().split("\n", 1)[0].strip()
    em = max(exact_match(answer, gold) for gold in item.answers)
    f1 = max(token_f1(answer, gold) for gold in item.answers)
    return ScoredOutput(
        parsed_answer=answer,
        parse_failed=not answer,
        details={"exact_match": em, "token_f1": f1},
        score=f1,
    )


EXTRACTIVE_QA = TaskKind(
    modes=("generate",),
    metrics=("exact_match", "token_f1", "parse_failure_rate"),
    choices=False,
    score_output=score_output,
    summarize=rule_metrics,
    rule="extractive-qa-1",
)


def me_llama_extractive_qa(record: Record) -> Item:
    """Me-LLaMA's instruction-format release of EmrQA: id, query (instruction, context and
    question), answer (the span); `answers` (a list) when several spans are accepted."""
    data = record.data
    answers = [text_field(data, "answer")]
    if data.get("answers") is not None:
        extra = data["answers"]
        if not isinstance(extra, list) or not all(isinstance(a, str) and a.strip() for a in extra):
            raise FieldProblem("answers", "expected a list of non-empty answer texts")
        answers += [a for a in extra if a not in answers]
    item_id = str(field(data, "id")) if "id" in data else f"{record.index:05d}"
    return Item(
        id=item_id,
        fields={"query": text_field(data, "query")},
        reference=answers[0],
        answers=tuple(answers),
    )
