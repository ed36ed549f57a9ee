"""Prompt building: zero- and k-shot (lm-evaluation-harness layout), chain-of-thought, and the
variant's chat template for instruction-tuned models.

Layout of a k-shot context, as lm-eval writes it:

    preamble + demo_1 + target_delimiter + answer_1 + fewshot_delimiter + ... + item prompt

Demonstrations are drawn from the few-shot split by a generator seeded with (seed, item id), so
an item gets the same demos whatever order items are processed in (a resumed run matches an
uninterrupted one), and MMLU-style tasks draw demos of the item's own subject.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

from medarena.evaluate.formats import Item
from medarena.evaluate.spec import PROMPT_JINJA, BenchmarkTask
from medarena.schemas import ChatTemplate


@dataclass(frozen=True)
class PromptSettings:
    mode: str  # loglik | cloze | generate
    shots: int = 0
    seed: int = 0
    cot: bool = False
    chat_template: ChatTemplate | None = None
    system: str | None = None
    truncation: str = "left"  # what happens to a prompt longer than the context

    def fingerprint(self, task: BenchmarkTask) -> str:
        """Hash of everything that shapes the prompt text (the eval run's template hash)."""
        payload = {
            "preamble": task.preamble,
            "prompt": item_template(task, self.mode),
            "target_delimiter": task.target_delimiter,
            "fewshot_delimiter": task.fewshot_delimiter,
            "instruction": task.instruction if self.mode == "generate" else None,
            "cot": task.cot_trigger if self.cot else None,
            "chat_template": self.chat_template.template if self.chat_template else None,
            "system": self.system,
            "truncation": self.truncation,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class BuiltPrompt:
    item: Item
    context: str
    demo_ids: tuple[str, ...]
    target_delimiter: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.context.encode()).hexdigest()


def item_template(task: BenchmarkTask, mode: str) -> str:
    """The cloze mode asks the question without listing the options; the others list them."""
    if mode == "cloze":
        assert task.cloze_prompt is not None  # the spec requires it for this mode
        return task.cloze_prompt
    return task.prompt


def render_item(task: BenchmarkTask, item: Item, mode: str = "loglik") -> str:
    return PROMPT_JINJA.from_string(item_template(task, mode)).render(**item.fields)


def demo_answer(item: Item, mode: str) -> str:
    """What a demonstration's answer says: the option's text in cloze mode, else its label."""
    if mode == "cloze" and item.gold is not None:
        return item.option_texts[item.gold]
    return item.gold_text


def draw_demos(item: Item, pool: list[Item], shots: int, seed: int) -> list[Item]:
    """`shots` demos for `item`, never the item itself, same subject when items have one."""
    if shots == 0:
        return []
    # the item itself never demonstrates its own answer (when the pool is the eval split)
    candidates = [d for d in pool if d.canonical() != item.canonical()]
    if item.subject is not None:
        candidates = [d for d in candidates if d.subject == item.subject] or candidates
    if len(candidates) < shots:
        raise ValueError(
            f"{shots}-shot needs {shots} demonstrations but the few-shot split has "
            f"{len(candidates)} for item {item.id!r}"
        )
    return random.Random(f"{seed}:{item.id}").sample(candidates, shots)


def build_prompt(
    task: BenchmarkTask, item: Item, pool: list[Item], settings: PromptSettings
) -> BuiltPrompt:
    demos = draw_demos(item, pool, settings.shots, settings.seed)
    mode = settings.mode
    parts = [
        render_item(task, demo, mode) + task.target_delimiter + demo_answer(demo, mode)
        for demo in demos
    ]
    question = render_item(task, item, mode)
    if settings.mode == "generate" and task.instruction:
        question = f"{task.instruction}\n\n{question}"
    if settings.cot:
        question = f"{question} {task.cot_trigger}"
    parts.append(question)
    preamble = PROMPT_JINJA.from_string(task.preamble).render(**item.fields)
    context = preamble + task.fewshot_delimiter.join(parts)
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
