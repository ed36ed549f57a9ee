"""Rendering a conversation with its chat template and labelling only what the model writes.

The text is rendered once, whole, and tokenized once (so the tokens are exactly what the model
sees at evaluation time); each reply's character span is found by rendering the conversation up
to the reply's opening (`add_generation_prompt`) and up to its end. Tokens that start inside a
reply span are labelled (the reply and the template's end-of-turn marker, so the model learns to
stop); system and user tokens, the role headers and padding get -100.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medarena.errors import Refused
from medarena.schemas import ChatTemplate

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def answer_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def reply_spans(
    template: ChatTemplate, messages: list[dict[str, str]], *, bos: str, eos: str
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the [start, end) character span of every model reply."""

    def render(part: list[dict[str, str]], opening: bool) -> str:
        return template.render(part, add_generation_prompt=opening, bos_token=bos, eos_token=eos)

    text = render(messages, False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != template.generation_role:
            continue
        before, through = render(messages[:index], True), render(messages[: index + 1], False)
        if not (text.startswith(through) and through.startswith(before)):
            raise Refused(
                f"chat template {template.name!r} does not render a conversation's beginning as "
                "a prefix of the whole; replies cannot be located for the loss mask"
            )
        spans.append((len(before), len(through)))
    return text, spans


def encode(
    tokenizer: Any,
    template: ChatTemplate,
    messages: list[dict[str, str]],
    max_length: int,
) -> Encoded:
    """Token ids and labels (IGNORE outside replies), cut to `max_length` tokens.

    The template gets no BOS text (the tokenizer adds its own, as at evaluation, where prompts
    are rendered the same way); it gets the EOS token, which some templates put after a reply.
    """
    text, spans = reply_spans(template, messages, bos="", eos=tokenizer.eos_token or "")
    encoding = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    ids: list[int] = encoding["input_ids"]
    labels = [
        token if _inside(start, end, spans) else IGNORE
        for token, (start, end) in zip(ids, encoding["offset_mapping"], strict=True)
    ]
    truncated = len(ids) > max_length
    return Encoded(ids[:max_length], labels[:max_length], truncated)


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    if end <= start:  # tokens the tokenizer adds (BOS) cover no text
        return False
    return any(low <= start < high for low, high in spans)
