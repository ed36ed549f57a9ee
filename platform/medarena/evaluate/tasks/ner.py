"""The `ner` kind: the entities of a text, each with its type (i2b2 2012's clinical events).
Scored in generate mode by entity-level micro-F1, strict and lenient.

Output format: what Me-LLaMA's prompts ask for and its answers hold, one entity a line as
"entity text, type"; its evaluation reads the type after a line's last comma
(BIDS-Xu-Lab/Me-LLaMA src/tasks/utils.py, process_text). The rule here (medarena's):
- each non-empty line, stripped of a bullet, is split at its last comma into text and type;
  a line without a comma is malformed (counted per item in `malformed_lines`);
- "none" (or nothing) names no entity; an output whose every line is malformed is a parse
  failure (its entities: none; the raw output is stored);
- texts are compared after lower-casing and collapsing white space, types after lower-casing;
  an entity listed twice counts once.
Matching, one gold entity to at most one predicted entity of the same type:
- strict: the same text;
- lenient: texts sharing at least one token (exact matches are paired first).
Per item the counts per type (tp/fp/fn) are stored, so micro-F1, its bootstrap CI and the paired
bootstrap of two runs come from storage alone (medarena.compare.corpus).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from medarena.data.records import FieldProblem, Record
from medarena.evaluate.formats import Item, field, text_field
from medarena.evaluate.kinds import ScoredOutput, TaskKind
from medarena.evaluate.metrics import rule_metrics

Entity = tuple[str, str]  # (type, text), both normalised
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s*")


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def parse_entities(text: str) -> tuple[list[Entity], int, bool]:
    """(entities, malformed lines, parse failed) of one output."""
    entities: list[Entity] = []
    malformed = 0
    lines = [_BULLET.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line and _normal(line).rstrip(".") != "none"]
    for line in lines:
        entity, comma, kind = line.rpartition(",")
        if not comma or not entity.strip() or not kind.strip():
            malformed += 1
            continue
        entities.append((_normal(kind).rstrip("."), _normal(entity)))
    return list(dict.fromkeys(entities)), malformed, bool(lines) and not entities


def match_counts(
    gold: Sequence[Entity], predicted: Sequence[Entity], lenient: bool
) -> dict[str, list[int]]:
    """Per type: [tp, fp, fn] of a one-to-one matching of gold to predicted entities."""
    unmatched = list(predicted)
    counts: dict[str, list[int]] = {}

    def row(kind: str) -> list[int]:
        return counts.setdefault(kind, [0, 0, 0])

    left = []
    for entity in gold:  # exact matches first, in both modes
        if entity in unmatched:
            unmatched.remove(entity)
            row(entity[0])[0] += 1
        else:
            left.append(entity)
    for kind, text in left:
        tokens = set(text.split())
        overlap = next(
            (p for p in unmatched if lenient and p[0] == kind and tokens & set(p[1].split())), None
        )
        if overlap is None:
            row(kind)[2] += 1
        else:
            unmatched.remove(overlap)
            row(kind)[0] += 1
    for kind, _ in unmatched:
        row(kind)[1] += 1
    return counts


def gold_entities(item: Item) -> list[Entity]:
    return [tuple(answer.split("|", 1)) for answer in item.answers]  # type: ignore[misc]


def score_output(item: Item, text: str) -> ScoredOutput:
    predicted, malformed, failed = parse_entities(text)
    gold = gold_entities(item)
    details: dict[str, object] = {
        "f1_counts": {
            "strict": match_counts(gold, predicted, lenient=False),
            "lenient": match_counts(gold, predicted, lenient=True),
        },
        "entities": [f"{kind}|{entity}" for kind, entity in predicted],
    }
    if malformed:
        details["malformed_lines"] = malformed
    return ScoredOutput(
        parsed_answer="\n".join(f"{entity}, {kind}" for kind, entity in predicted) or None,
        parse_failed=failed,
        details=details,
    )


NER = TaskKind(
    modes=("generate",),
    metrics=("strict_f1", "lenient_f1", "parse_failure_rate"),
    choices=False,
    score_output=score_output,
    summarize=rule_metrics,
    rule="ner-1",
)


def me_llama_ner(record: Record) -> Item:
    """Me-LLaMA's instruction-format release of i2b2 2012: id, query (instruction and text),
    answer (one "entity, type" a line, or "none")."""
    data = record.data
    answer = field(data, "answer")
    if not isinstance(answer, str):
        raise FieldProblem("answer", "expected text: one 'entity, type' a line")
    entities, malformed, _ = parse_entities(answer)
    if malformed:
        raise FieldProblem("answer", f"{malformed} line(s) are not 'entity, type'")
    item_id = str(field(data, "id")) if "id" in data else f"{record.index:05d}"
    return Item(
        id=item_id,
        fields={"query": text_field(data, "query")},
        reference=answer.strip() or "none",
        answers=tuple(f"{kind}|{entity}" for kind, entity in entities),
    )
