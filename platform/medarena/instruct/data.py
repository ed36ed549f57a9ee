"""Instruction data as conversations, one registered format per kind of data.

`InstructSource` is one entry of an instruction recipe's `data:`; its `format` names an
`InstructionFormat` registered in `INSTRUCTION_FORMATS`. Built in: `alpaca` (instruction / input /
output records), `chat` (OpenAI / Hugging Face `messages` or ShareGPT `conversations`) and
`benchmark` (a benchmark's train split turned into question -> answer pairs with exactly the
prompt the evaluation's generate mode shows the model). A new format whose every record is one
conversation is one converter `(record) -> messages` under `@record_format("name")`; any other
is an `InstructionFormat` registered with `INSTRUCTION_FORMATS.register`.

Messages use the canonical roles system / user / assistant; `to_template_roles` maps them onto a
chat template's own names (Meditron's question / answer) and refuses what it cannot express.
Problems are collected with file and line, and raised together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from medarena.data.records import FieldProblem, Record, convert_all, read_records
from medarena.errors import Refused
from medarena.extensions import ExtensionRegistry
from medarena.schemas import ChatTemplate, DataSource, Name, Spec

SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}

Messages = tuple[dict[str, str], ...]
Converter = Callable[[Record], Messages]  # one record -> one conversation's messages


@dataclass(frozen=True)
class Conversation:
    messages: Messages
    origin: str  # "file:line" (or hub row, or task/item id), for error messages


class InstructSource(Spec):
    """One instruction dataset: records (`data`, a path relative to instruct/ or a hub dataset)
    or a benchmark `task` whose train split is used, read by its `format`. `chain_of_thought`:
    benchmark answers give the dataset's explanation first (refused for data without one)."""

    name: Name
    format: Name = Field(
        description="a registered instruction-data format: alpaca, chat, benchmark, ..."
    )
    data: DataSource | None = Field(None, description="the records (alpaca, chat)")
    task: Name | None = Field(None, description="benchmark task whose train split is used")
    chain_of_thought: bool = False
    limit: int | None = Field(None, gt=0, description="first N records only")
    repeat: int = Field(
        1, ge=1, description="each record this many times per epoch (upsamples a small source)"
    )

    @field_validator("format")
    @classmethod
    def _registered(cls, name: str) -> str:
        if name not in INSTRUCTION_FORMATS:
            known = ", ".join(INSTRUCTION_FORMATS.names())
            raise ValueError(f"unknown instruction-data format {name!r}; known: {known}")
        return name

    @model_validator(mode="after")
    def _has_its_data(self) -> InstructSource:
        reads = INSTRUCTION_FORMATS.get(self.format).reads
        if reads == "task" and self.task is None:
            raise ValueError(f"a {self.format} source names its `task`")
        if reads == "data" and self.data is None:
            raise ValueError(f"a {self.format} source needs `data` (a path or hub dataset)")
        if reads == "data" and self.task is not None:
            raise ValueError(
                f"`task` is only for sources that read a benchmark task, not {self.format}"
            )
        if reads == "data" and self.chain_of_thought:
            raise ValueError(
                f"`chain_of_thought` is for benchmark sources (explanations before the answer); "
                f"a {self.format} source's replies are used as written"
            )
        return self


@dataclass(frozen=True)
class InstructionFormat:
    """How one kind of instruction data becomes conversations; `reads` is what a source of the
    format must name (its `data` records, or a benchmark `task`)."""

    read: Callable[[InstructSource, Path], list[Conversation]]
    reads: Literal["data", "task"] = "data"


INSTRUCTION_FORMATS: ExtensionRegistry[InstructionFormat] = ExtensionRegistry(
    "instruction-data format"
)


def read_source(source: InstructSource, root: Path) -> list[Conversation]:
    """The source's conversations; `root` is the workspace (data paths are relative to
    instruct/, benchmark tasks are looked up under benchmarks/)."""
    return INSTRUCTION_FORMATS.get(source.format).read(source, root)


def from_records(convert: Converter) -> InstructionFormat:
    """A format in which every record of the source's `data` is one conversation."""

    def read(source: InstructSource, root: Path) -> list[Conversation]:
        assert source.data is not None  # the schema requires it of a format that reads data
        records = read_records(source.data, root / "instruct")[: source.limit]
        return convert_all(
            records,
            lambda record: Conversation(convert(record), _origin(record)),
            f"instruction source {source.name!r} has bad records",
        )

    return InstructionFormat(read)


def record_format(name: str) -> Callable[[Converter], Converter]:
    """Register the decorated converter (one record -> one conversation) as format `name`."""

    def register(convert: Converter) -> Converter:
        INSTRUCTION_FORMATS.register(name, from_records(convert))
        return convert

    return register


def _origin(record: Record) -> str:
    return f"{record.source}:{record.line}" if record.line else f"{record.source}#{record.index}"


def _text(data: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = data.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise FieldProblem(field, "expected non-empty text")
    return value


@record_format("alpaca")
def _alpaca(record: Record) -> Messages:
    data = record.data
    instruction, extra = _text(data, "instruction"), _text(data, "input", required=False)
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return (
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": _text(data, "output")},
    )


@record_format("chat")
def _chat(record: Record) -> Messages:
    data = record.data
    if "messages" in data:
        field, role_key, text_key, roles = "messages", "role", "content", None
    elif "conversations" in data:
        field, role_key, text_key, roles = "conversations", "from", "value", SHAREGPT_ROLES
    else:
        raise FieldProblem("messages", "expected `messages` (role/content) or `conversations`")
    turns = data[field]
    if not isinstance(turns, list) or not turns:
        raise FieldProblem(field, "expected a non-empty list of turns")
    messages = []
    for index, turn in enumerate(turns):
        where = f"{field}[{index}]"
        if not isinstance(turn, dict):
            raise FieldProblem(where, "expected a mapping")
        role = turn.get(role_key)
        role = roles.get(role, role) if roles else role
        if not isinstance(role, str):
            raise FieldProblem(f"{where}.{role_key}", "missing")
        messages.append({"role": role, "content": _text(turn, text_key)})
    if not any(m["role"] == "assistant" for m in messages):
        raise FieldProblem(field, "no assistant turn: nothing to learn from")
    return tuple(messages)


def _benchmark(source: InstructSource, root: Path) -> list[Conversation]:
    from medarena.evaluate.prompts import PromptSettings, build_prompt
    from medarena.evaluate.runner import train_items
    from medarena.evaluate.spec import load_benchmarks, select_tasks

    (task,) = select_tasks(load_benchmarks(root), [str(source.task)])
    items = train_items(task, root)[: source.limit]
    if source.chain_of_thought:
        _refuse_missing_explanations(source, task.name, items)
    settings = PromptSettings(mode="generate")
    conversations = []
    for item in items:
        prompt = build_prompt(task, item, [], settings).context
        answer = answer_text(item, source.chain_of_thought)
        conversations.append(
            Conversation(
                ({"role": "user", "content": prompt}, {"role": "assistant", "content": answer}),
                f"{task.name} train item {item.id}",
            )
        )
    return conversations


INSTRUCTION_FORMATS.register("benchmark", InstructionFormat(_benchmark, reads="task"))


def _refuse_missing_explanations(source: InstructSource, task: str, items: list[Any]) -> None:
    """Chain of thought needs the dataset's explanation for every item: answering some items
    without one would quietly train a different format than the recipe asks for."""
    missing = [item.id for item in items if not (item.explanation or "").strip()]
    if missing:
        examples = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise Refused(
            f"source {source.name!r}: chain_of_thought is true, but {len(missing)} of "
            f"{len(items)} {task} train items have no explanation to reason from ({examples}); "
            "set chain_of_thought: false, or use data that carries explanations"
        )


def answer_text(item: Any, chain_of_thought: bool) -> str:
    """What the model should write: the reference summary, or a statement the evaluation's
    answer extraction reads ("The answer is (B)." / "The answer is yes."), after the dataset's
    explanation with `chain_of_thought` (the caller checked that there is one)."""
    if item.gold is None:
        return item.reference or ""
    label = item.choices[item.gold].strip()
    statement = f"The answer is ({label})." if len(label) == 1 else f"The answer is {label}."
    if chain_of_thought:
        return f"{item.explanation.strip()}\n{statement}"
    return statement


def to_template_roles(
    conversation: Conversation, template: ChatTemplate, system: str | None
) -> list[dict[str, str]]:
    """Canonical roles -> the template's; a default system message is added where the
    conversation has none and the template takes one."""
    names = {"user": template.user_role, "assistant": template.generation_role}
    if "system" in template.roles:
        names["system"] = "system"
    messages = []
    default = system if system is not None else template.default_system
    if default and "system" in names and conversation.messages[0]["role"] != "system":
        messages.append({"role": "system", "content": default})
    for message in conversation.messages:
        role = message["role"]
        if role not in names:
            raise Refused(
                f"{conversation.origin}: a {role!r} message, but chat template {template.name!r} "
                f"has the roles {template.roles}"
            )
        messages.append({"role": names[role], "content": message["content"]})
    return messages
