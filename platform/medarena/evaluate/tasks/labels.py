"""Label kinds: one label of a closed set per item, e.g. a document's specialty
(`classification`, MTSample), a sentence pair's entailment (`nli`, MedNLI, BioNLI), a drug
pair's interaction (`relation`, DDI 2013).

The labels are the item's choices, so the modes score them as they score multiple choice: by
log-likelihood of each label after the prompt (`loglik`), or by reading the label in a generated
answer (`generate`, medarena.evaluate.extract). Accuracy is per item (McNemar pairs runs);
macro-F1 is over the task's labels, from per-item counts (medarena.compare.corpus).
"""

from __future__ import annotations

from typing import Any

from medarena.data.records import FieldProblem, Record
from medarena.evaluate.formats import Item, field, structured_field, text_field
from medarena.evaluate.kinds import TaskKind

LABEL_MODES = ("loglik", "generate")
LABEL_METRICS = ("acc", "acc_norm", "macro_f1", "parse_failure_rate")

CLASSIFICATION = TaskKind(modes=LABEL_MODES, metrics=LABEL_METRICS, choices=True)
NLI = TaskKind(modes=LABEL_MODES, metrics=LABEL_METRICS, choices=True)
RELATION = TaskKind(modes=LABEL_MODES, metrics=LABEL_METRICS, choices=True)

# MedNLI's classes (Romanov and Shivade 2018), as its gold_label field spells them
NLI_LABELS = ("entailment", "neutral", "contradiction")


def label_item(
    item_id: str, fields: dict[str, Any], labels: list[str], gold: str, gold_field: str
) -> Item:
    """An item whose answer is `gold`, one of `labels` (matched ignoring case)."""
    lowered = [label.lower() for label in labels]
    if gold.strip().lower() not in lowered:
        raise FieldProblem(gold_field, f"label {gold!r} is not one of {labels}")
    return Item(
        id=item_id,
        fields=fields,
        choices=tuple(labels),
        option_texts=tuple(labels),
        gold=lowered.index(gold.strip().lower()),
    )


def closed_set(data: dict[str, Any], name: str = "choices") -> list[str]:
    """A record's label set: a list of distinct non-empty labels."""
    labels = structured_field(data, name)
    if not isinstance(labels, list) or len(labels) < 2:
        raise FieldProblem(name, "expected a list of at least two labels")
    if not all(isinstance(label, str) and label.strip() for label in labels):
        raise FieldProblem(name, "expected every label to be non-empty text")
    if len({label.lower() for label in labels}) != len(labels):
        raise FieldProblem(name, "labels must be distinct (ignoring case)")
    return [label.strip() for label in labels]


def me_llama_labels(record: Record) -> Item:
    """Me-LLaMA's instruction-format releases of label tasks (the clinicalnlplab / hippocrates
    hub datasets of BIDS-Xu-Lab/Me-LLaMA's evaluation): id, query (instruction and text),
    answer (the label), choices (the label set) and optionally gold (the answer's index)."""
    data = record.data
    labels = closed_set(data)
    answer = text_field(data, "answer")
    if "gold" in data and data["gold"] is not None:
        gold = data["gold"]
        if not isinstance(gold, int) or not 0 <= gold < len(labels):
            raise FieldProblem(
                "gold", f"expected the answer's index in choices (0-{len(labels) - 1})"
            )
        if labels[gold].lower() != answer.strip().lower():
            raise FieldProblem(
                "gold", f"choices[{gold}] is {labels[gold]!r} but answer is {answer!r}"
            )
    item_id = str(field(data, "id")) if "id" in data else f"{record.index:05d}"
    return label_item(item_id, {"query": text_field(data, "query")}, labels, answer, "answer")


def mednli(record: Record) -> Item:
    """MedNLI's release files (PhysioNet, mli_{train,dev,test}_v1.jsonl): sentence1 (premise),
    sentence2 (hypothesis), gold_label, pairID."""
    data = record.data
    fields = {"premise": text_field(data, "sentence1"), "hypothesis": text_field(data, "sentence2")}
    item_id = str(data.get("pairID") or f"{record.index:05d}")
    return label_item(
        item_id, fields, list(NLI_LABELS), text_field(data, "gold_label"), "gold_label"
    )
