"""Prompt building: zero- and k-shot (lm-evaluation-harness layout), chain-of-thought, and the
variant's chat template for instruction-tuned models.

Layout of a k-shot context, as lm-eval writes it:

    preamble + demo_1 + target_delimiter + answer_1 + fewshot_delimiter + ... + item prompt

Demonstrations are drawn from the few-shot split by a generator seeded with (seed, item id), so
an item gets the same demos whatever order items are processed in (a resumed run matches an
uninterrupted one), and MMLU-style tasks draw demos of the item's own subject.

The scoring mode says which spec field renders an item, what a demonstration answers and what
instruction comes first. Templates are user-written Jinja rendered in a sandbox: a template the
sandbox stops, or one that names a field the items lack, is a problem of its spec file.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

import jinja2
from jinja2.exceptions import SecurityError

from medarena.errors import Refused
from medarena.evaluate.formats import Item
from medarena.evaluate.modes import SCORING_MODES, BuiltPrompt
from medarena.evaluate.spec import PROMPT_JINJA, BenchmarkTask, task_problem
from medarena.schemas import ChatTemplate, compiled_template

__all__ = ["BuiltPrompt", "PromptSettings", "build_prompt", "draw_demos", "render_item"]


@dataclass(frozen=True)
class PromptSettings:
    mode: str  # a registered scoring mode: loglik | cloze | generate
    shots: int = 0
    seed: int = 0
    cot: bool = False
    chat_template: ChatTemplate | None = None
    system: str | None = None
    truncation: str = "left"  # what happens to a prompt longer than the context

    def fingerprint(self, task: BenchmarkTask) -> str:
        """Hash of everything that shapes the prompt text (the eval run's template hash)."""
        mode = SCORING_MODES.get(self.mode)
        payload = {
            "preamble": task.preamble,
            "prompt": getattr(task, mode.template_field),
            "target_delimiter": task.target_delimiter,
            "fewshot_delimiter": task.fewshot_delimiter,
            "instruction": mode.instruction(task),
            "cot": task.cot_trigger if self.cot else None,
            "chat_template": self.chat_template.template if self.chat_template else None,
            "system": self.system,
            "truncation": self.truncation,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def render_item(task: BenchmarkTask, item: Item, mode: str = "loglik") -> str:
    """One item through the template its scoring mode reads."""
    return _render(task, SCORING_MODES.get(mode).template_field, item)


def _render(task: BenchmarkTask, field: str, item: Item) -> str:
    """The spec's template `field` with `item`'s fields; a template that the sandbox stops or
    that names a missing field is a problem of the spec file, not a traceback."""
    template: str | None = getattr(task, field)
    if template is None:
        raise task_problem(task, field, "is not set", headline="a benchmark prompt is missing")
    try:
        return compiled_template(PROMPT_JINJA, template).render(**item.fields)
    except jinja2.TemplateError as exc:
        kind = "refused by the sandbox" if isinstance(exc, SecurityError) else "failed"
        raise task_problem(
            task,
            field,
            f"rendering item {item.id!r} {kind}: {exc}",
            headline="a benchmark prompt cannot be rendered",
        ) from None


def draw_demos(item: Item, pool: list[Item], shots: int, seed: int) -> list[Item]:
    """`shots` demos for `item`, never the item itself, same subject when items have one."""
    if shots == 0:
        return []
    # the item itself never demonstrates its own answer (when the pool is the eval split)
    candidates = [d for d in pool if d.canonical() != item.canonical()]
    if item.subject is not None:
        candidates = [d for d in candidates if d.subject == item.subject] or candidates
    if len(candidates) < shots:
        raise Refused(
            f"{shots}-shot needs {shots} demonstrations but the few-shot split has "
            f"{len(candidates)} for item {item.id!r}"
        )
    return random.Random(f"{seed}:{item.id}").sample(candidates, shots)


def build_prompt(
    task: BenchmarkTask, item: Item, pool: list[Item], settings: PromptSettings
) -> BuiltPrompt:
    mode = SCORING_MODES.get(settings.mode)
    try:
        demos = draw_demos(item, pool, settings.shots, settings.seed)
    except Refused as refused:  # the task's name makes the message actionable
        raise Refused(f"task {task.name}: {refused}") from None
    parts = [
        _render(task, mode.template_field, demo) + task.target_delimiter + mode.demo_answer(demo)
        for demo in demos
    ]
    question = _render(task, mode.template_field, item)
    instruction = mode.instruction(task)
    if instruction:
        question = f"{instruction}\n\n{question}"
    if settings.cot:
        question = f"{question} {task.cot_trigger}"
    parts.append(question)
    context = _render(task, "preamble", item) + task.fewshot_delimiter.join(parts)
    delimiter = task.target_delimiter
    if settings.chat_template is not None:
        context = apply_chat_template(settings.chat_template, context, settings.system)
        delimiter = ""  # the answer opens the assistant turn
    return BuiltPrompt(item, context, tuple(d.id for d in demos), delimiter)


def apply_chat_template(template: ChatTemplate, text: str, system: str | None) -> str:
    """One user turn holding the whole prompt, then the opening of the model's turn."""
    messages = []
    system = system if system is not None else template.default_system
    if system and "system" in template.roles:
        messages.append({"role": "system", "content": system})
    messages.append({"role": template.user_role, "content": text})
    return template.render(messages, add_generation_prompt=True)
