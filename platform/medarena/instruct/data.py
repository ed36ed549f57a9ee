"""Instruction data as conversations: Alpaca records, chat conversations (OpenAI / Hugging Face
`messages` or ShareGPT `conversations`), and benchmark train splits turned into question ->
answer pairs with exactly the prompt the evaluation's generate mode shows the model.

Messages use the canonical roles system / user / assistant; `to_template_roles` maps them onto a
chat template's own names (Meditron's question / answer) and refuses what it cannot express.
Problems are collected with file and line, and raised together.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medarena.data.records import FieldProblem, Record, convert_all, read_records
from medarena.instruct.recipe import InstructSource
from medarena.schemas import ChatTemplate

SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}


@dataclass(frozen=True)
class Conversation:
    messages: tuple[dict[str, str], ...]
    origin: str  # "file:line" (or hub row, or task/item id), for error messages


def read_source(source: InstructSource, root: Path) -> list[Conversation]:
    """The source's conversations; `root` is the workspace (data paths are relative to
    instruct/, benchmark tasks are looked up under benchmarks/)."""
    if source.format == "benchmark":
        return _benchmark(source, root)
    assert source.data is not None  # the schema requires it
    records = read_records(source.data, root / "instruct")[: source.limit]
    reader = _alpaca if source.format == "alpaca" else _chat
    return convert_all(
        records,
        lambda record: Conversation(reader(record), _origin(record)),
        f"instruction source {source.name!r} has bad records",
    )


def _origin(record: Record) -> str:
    return f"{record.source}:{record.line}" if record.line else f"{record.source}#{record.index}"


def _text(data: dict[str, Any], field: str, *, required: bool = True) -> str:
    value = data.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise FieldProblem(field, "expected non-empty text")
    return value


def _alpaca(record: Record) -> tuple[dict[str, str], ...]:
    data = record.data
    instruction, extra = _text(data, "instruction"), _text(data, "input", required=False)
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return (
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": _text(data, "output")},
    )


def _chat(record: Record) -> tuple[dict[str, str], ...]:
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


def answer_text(item: Any, chain_of_thought: bool) -> str:
    """What the model should write: the reference summary, or a statement the evaluation's
    answer extraction reads ("The answer is (B)." / "The answer is yes."), after the dataset's
    explanation when there is one."""
    if item.gold is None:
        return item.reference or ""
    label = item.choices[item.gold].strip()
    statement = f"The answer is ({label})." if len(label) == 1 else f"The answer is {label}."
    if chain_of_thought and item.explanation:
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
            raise ValueError(
                f"{conversation.origin}: a {role!r} message, but chat template {template.name!r} "
                f"has the roles {template.roles}"
            )
        messages.append({"role": names[role], "content": message["content"]})
    return messages
