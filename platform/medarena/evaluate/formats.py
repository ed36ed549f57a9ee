"""Source formats: each turns the records of one real dataset layout into uniform items.

A new dataset layout is one function registered under its name with
`@SOURCE_FORMATS.register("name")` (here, or in a module imported before specs are loaded); a
spec's `source_format` must be a registered name. Prompts, engines and scoring never look at raw
fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from medarena.data.records import FieldProblem, Record
from medarena.errors import Problem, ProblemsError
from medarena.extensions import ExtensionRegistry

LETTERS = "ABCDEFGHIJ"
PUBMEDQA_LABELS = ("yes", "no", "maybe")


@dataclass(frozen=True)
class Item:
    """One scored item. `choices` are the strings a log-likelihood scorer appends (letters, or
    yes/no/maybe); `option_texts` what each choice means, for answer extraction."""

    id: str
    fields: dict[str, Any]
    choices: tuple[str, ...] = ()
    option_texts: tuple[str, ...] = ()
    gold: int | None = None
    reference: str | None = None
    subject: str | None = None
    explanation: str | None = None  # the dataset's worked answer, for chain-of-thought training
    # the gold of kinds scored by their own rule (medarena.evaluate.tasks): a multilabel item's
    # labels, an extractive QA item's accepted answers, a NER item's entities as "type|text"
    answers: tuple[str, ...] = ()

    @property
    def gold_text(self) -> str:
        if self.gold is not None:
            return self.choices[self.gold]
        return self.reference or ""

    def canonical(self) -> dict[str, Any]:
        """Everything that defines the item, for the dataset hash."""
        return {
            "id": self.id,
            "fields": self.fields,
            "choices": self.choices,
            "gold": self.gold,
            "reference": self.reference,
            "subject": self.subject,
            # only when set, so that the dataset hashes of the older kinds stay as they were
            **({"answers": self.answers} if self.answers else {}),
        }


SourceFormat = Callable[[Record], Item]
SOURCE_FORMATS: ExtensionRegistry[SourceFormat] = ExtensionRegistry("source format")
# Formats whose item spans several rows (BLUE's HoC: a sentence a row) also register, under the
# same name, a step that merges the rows into one record per item, raising located problems.
RECORD_GROUPINGS: ExtensionRegistry[Callable[[list[Record]], list[Record]]] = ExtensionRegistry(
    "record grouping"
)


def field(data: dict[str, Any], name: str) -> Any:
    if name not in data or data[name] is None:
        raise FieldProblem(name, "missing field")
    return data[name]


def text_field(data: dict[str, Any], name: str) -> str:
    value = field(data, name)
    if not isinstance(value, str) or not value.strip():
        raise FieldProblem(name, "expected non-empty text")
    return value


def structured_field(data: dict[str, Any], name: str) -> Any:
    """A nested field; CSV cells hold it as JSON text."""
    value = field(data, name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise FieldProblem(name, "expected a list or mapping (JSON text in CSV)") from None
    return value


def _multiple_choice(
    item_id: str,
    question: str,
    options: list[tuple[str, str]],
    gold: tuple[str, str],
    explanation: str | None = None,
    **extra: Any,
) -> Item:
    """`gold` is (field that holds the answer, the answer's label)."""
    gold_field, gold_label = gold
    labels = [label for label, _ in options]
    if gold_label not in labels:
        raise FieldProblem(gold_field, f"gold answer {gold_label!r} is not one of {labels}")
    return Item(
        id=item_id,
        fields={"question": question, "options": options, **extra},
        choices=tuple(labels),
        option_texts=tuple(text for _, text in options),
        gold=labels.index(gold_label),
        subject=extra.get("subject"),
        explanation=explanation,
    )


@SOURCE_FORMATS.register("medqa_4options")
def medqa_4options(record: Record) -> Item:
    """GBaker/MedQA-USMLE-4-options: question, options {A..D: text}, answer_idx."""
    data = record.data
    options = structured_field(data, "options")
    if not isinstance(options, dict) or not options:
        raise FieldProblem("options", "expected a mapping of letter to option text")
    pairs = [(str(label), str(text)) for label, text in sorted(options.items())]
    item_id = str(data.get("id") or f"{record.index:05d}")
    return _multiple_choice(
        item_id, text_field(data, "question"), pairs, ("answer_idx", text_field(data, "answer_idx"))
    )


@SOURCE_FORMATS.register("medqa_bigbio")
def medqa_bigbio(record: Record) -> Item:
    """The bigbio/med_qa source layout: question, options [{key, value}], answer_idx."""
    data = record.data
    options = structured_field(data, "options")
    if not isinstance(options, list) or not all(
        isinstance(o, dict) and {"key", "value"} <= o.keys() for o in options
    ):
        raise FieldProblem("options", "expected a list of {key, value} objects")
    pairs = [(str(o["key"]), str(o["value"])) for o in options]
    item_id = str(data.get("id") or f"{record.index:05d}")
    return _multiple_choice(
        item_id, text_field(data, "question"), pairs, ("answer_idx", text_field(data, "answer_idx"))
    )


@SOURCE_FORMATS.register("medmcqa")
def medmcqa(record: Record) -> Item:
    """openlifescienceai/medmcqa: question, opa..opd, cop 0-3, subject_name, exp."""
    data = record.data
    pairs = [(LETTERS[i], str(field(data, f"op{c}"))) for i, c in enumerate("abcd")]
    try:
        cop = int(field(data, "cop"))
    except (TypeError, ValueError):
        raise FieldProblem("cop", "expected an integer 0-3") from None
    if not 0 <= cop <= 3:
        raise FieldProblem("cop", f"expected an integer 0-3, got {cop}")
    item_id = str(data.get("id") or f"{record.index:05d}")
    return _multiple_choice(
        item_id,
        text_field(data, "question"),
        pairs,
        ("cop", LETTERS[cop]),
        subject=data.get("subject_name"),
        explanation=data.get("exp") or None,
    )


@SOURCE_FORMATS.register("pubmedqa")
def pubmedqa(record: Record) -> Item:
    """The original expert-labelled files (QUESTION, CONTEXTS, final_decision, keyed by PMID)
    or the hub's pqa_labeled layout (pubid, question, context.contexts, final_decision)."""
    data = record.data
    if "QUESTION" in data:
        question, contexts = text_field(data, "QUESTION"), structured_field(data, "CONTEXTS")
        item_id = str(data.get("_key") or f"{record.index:05d}")
        contexts_field = "CONTEXTS"
    else:
        question = text_field(data, "question")
        context = structured_field(data, "context")
        if not isinstance(context, dict) or "contexts" not in context:
            raise FieldProblem("context", "expected a mapping with 'contexts'")
        contexts = context["contexts"]
        item_id = str(data.get("pubid") or f"{record.index:05d}")
        contexts_field = "context.contexts"
    if not isinstance(contexts, list) or not all(isinstance(c, str) for c in contexts):
        raise FieldProblem(contexts_field, "expected a list of text passages")
    decision = text_field(data, "final_decision").strip().lower()
    if decision not in PUBMEDQA_LABELS:
        raise FieldProblem("final_decision", f"expected one of {PUBMEDQA_LABELS}, got {decision!r}")
    return Item(
        id=item_id,
        fields={"question": question, "contexts": contexts, "context": "\n".join(contexts)},
        choices=PUBMEDQA_LABELS,
        option_texts=PUBMEDQA_LABELS,
        gold=PUBMEDQA_LABELS.index(decision),
        explanation=data.get("LONG_ANSWER") or data.get("long_answer") or None,
    )


@SOURCE_FORMATS.register("mmlu")
def mmlu(record: Record) -> Item:
    """cais/mmlu: question, subject, choices (4 texts), answer 0-3."""
    data = record.data
    choices = structured_field(data, "choices")
    if not isinstance(choices, list) or len(choices) < 2:
        raise FieldProblem("choices", "expected a list of option texts")
    try:
        answer = int(field(data, "answer"))
    except (TypeError, ValueError):
        raise FieldProblem("answer", "expected the index of the correct choice") from None
    if not 0 <= answer < len(choices):
        raise FieldProblem("answer", f"index {answer} is outside the {len(choices)} choices")
    subject = str(field(data, "subject"))
    pairs = [(LETTERS[i], str(text)) for i, text in enumerate(choices)]
    item_id = str(data.get("id") or f"{subject}/{record.index:05d}")
    return _multiple_choice(
        item_id, text_field(data, "question"), pairs, ("answer", LETTERS[answer]), subject=subject
    )


@SOURCE_FORMATS.register("me_llama_summarization")
def me_llama_summarization(record: Record) -> Item:
    """Me-LLaMA instruction files: id, query, answer (the reference summary)."""
    data = record.data
    return Item(
        id=str(field(data, "id")),
        fields={"query": text_field(data, "query")},
        reference=text_field(data, "answer"),
    )


# Readers of the task kinds' own layouts live with their kind (medarena.evaluate.tasks).
for _name, _target in {
    "me_llama_labels": "labels:me_llama_labels",
    "mednli": "labels:mednli",
    "ddi2013_xml": "ddi:ddi2013_xml",
    "hoc_blue": "hoc:hoc_blue",
    "me_llama_multilabel": "multilabel:me_llama_multilabel",
    "me_llama_extractive_qa": "extractive_qa:me_llama_extractive_qa",
    "me_llama_ner": "ner:me_llama_ner",
}.items():
    SOURCE_FORMATS.register_lazy(_name, f"medarena.evaluate.tasks.{_target}")
RECORD_GROUPINGS.register_lazy("hoc_blue", "medarena.evaluate.tasks.hoc:by_document")


def to_items(source_format: str, records: list[Record]) -> list[Item]:
    """Convert every record; all field problems are reported together, and ids must be unique."""
    convert = SOURCE_FORMATS.get(source_format)
    if source_format in RECORD_GROUPINGS:
        records = RECORD_GROUPINGS.get(source_format)(records)
    items: list[Item] = []
    problems: list[Problem] = []
    seen: dict[str, Record] = {}
    for record in records:
        try:
            item = convert(record)
        except FieldProblem as exc:
            problems.append(record.problem(exc.field_name, exc.message))
            continue
        if item.id in seen:
            problems.append(record.problem("id", f"duplicate item id {item.id!r}"))
        seen[item.id] = record
        items.append(item)
    if problems:
        raise ProblemsError(problems, f"records do not fit the {source_format!r} format")
    return items
