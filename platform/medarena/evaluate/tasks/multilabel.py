"""The `multilabel` kind: a set of labels from a closed set per item (HoC: an abstract's
hallmarks of cancer). Scored in generate mode by reading the set the model lists.

Set parsing (medarena's rule; Me-LLaMA's answers list the labels separated by commas): the
output is split on commas, semicolons and line breaks; each piece, stripped of bullets, list
numbers, a final full stop and case, is a label when it names one of the item's labels, the
empty set when it says "none", and an unknown label otherwise. Unknown labels are false
positives (they lower micro-F1) but no class of macro-F1; an output naming no known label and
not "none" is a parse failure, predicting no label. A label listed twice counts once.

Per item: the counts of each label (tp/fp/fn) for micro- and macro-F1 over the task's labels,
and exact-set correctness (`acc`, subset accuracy, paired by McNemar).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from medarena.compare.corpus import label_counts
from medarena.data.records import FieldProblem, Record
from medarena.evaluate.formats import Item, field, text_field
from medarena.evaluate.kinds import ScoredOutput, TaskKind
from medarena.evaluate.metrics import rule_metrics
from medarena.evaluate.tasks.labels import closed_set

NONE = "none"
_SEPARATORS = re.compile(r"[,;\n]")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")


def split_labels(text: str) -> list[str]:
    """The pieces of a listed set, normalised (bullets, numbering, final stop, case)."""
    pieces = (
        _BULLET.sub("", piece).strip().rstrip(".").strip() for piece in _SEPARATORS.split(text)
    )
    return [piece.lower() for piece in pieces if piece]


def parse_set(text: str, labels: Sequence[str]) -> tuple[list[str], list[str], bool]:
    """(known labels named, unknown pieces, parse failed) of one output."""
    by_lower = {label.lower(): label for label in labels}
    pieces = split_labels(text)
    known = list(dict.fromkeys(by_lower[p] for p in pieces if p in by_lower))
    unknown = list(dict.fromkeys(p for p in pieces if p not in by_lower and p != NONE))
    failed = not known and NONE not in pieces
    return known, unknown, failed


def score_output(item: Item, text: str) -> ScoredOutput:
    known, unknown, failed = parse_set(text, item.choices)
    counts = label_counts(item.answers, known)
    for piece in [] if failed else unknown:  # a false positive of no class of the task
        counts[f"unknown:{piece}"] = [0, 1, 0]
    details = {"choices": list(item.choices), "f1_counts": {"labels": counts}}
    if unknown:
        details["unknown_labels"] = unknown
    return ScoredOutput(
        parsed_answer=", ".join(known) if known else (None if failed else NONE),
        parse_failed=failed,
        details=details,
        correct=set(known) == set(item.answers) and not unknown,
    )


MULTILABEL = TaskKind(
    modes=("generate",),
    metrics=("macro_f1", "micro_f1", "acc", "parse_failure_rate"),
    choices=False,
    score_output=score_output,
    summarize=rule_metrics,
    rule="multilabel-1",
)


def me_llama_multilabel(record: Record) -> Item:
    """Me-LLaMA's instruction-format release of HoC: id, query, answer (the labels, separated
    by commas, or "none"), choices (the label set)."""
    data = record.data
    labels = closed_set(data)
    if any(_SEPARATORS.search(label) for label in labels):
        raise FieldProblem("choices", "a label may not hold a comma, semicolon or line break")
    gold, unknown, failed = parse_set(text_field(data, "answer"), labels)
    if unknown or failed:
        raise FieldProblem("answer", f"labels {unknown} are not in choices {labels}")
    item_id = str(field(data, "id")) if "id" in data else f"{record.index:05d}"
    return Item(
        id=item_id,
        fields={"query": text_field(data, "query")},
        choices=tuple(labels),
        option_texts=tuple(labels),
        reference=", ".join(gold) if gold else NONE,
        answers=tuple(gold),
    )
