"""Turning prompt text into the token ids every engine scores, lm-evaluation-harness's way.

`encode_pair` encodes `context + continuation` as one string and splits it where the context's
own encoding ends (trailing spaces of the context move to the continuation), with the
tokenizer's default special tokens: the ids lm-eval's hf model scores.

Too-long prompts follow an explicit policy, recorded on every prediction: `left` drops the
oldest context tokens (lm-eval's behaviour; demos go first), `error` refuses the item.
"""

from __future__ import annotations

from typing import Any

from medarena.errors import Refused

TRUNCATION_POLICIES = ("left", "error")


class PromptTooLong(Refused):
    """A prompt over the model's context under the `error` policy (or one with nothing left
    to cut)."""


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenizer.encode(context + continuation)
    context_ids = tokenizer.encode(context)
    return whole[: len(context_ids)], whole[len(context_ids) :]


def fit_context(
    context: list[int], keep: int, budget: int, policy: str, item_id: str
) -> tuple[list[int], int]:
    """Cut `context` so that it plus `keep` tokens fit in `budget`; returns (ids, dropped)."""
    overflow = len(context) + keep - budget
    if overflow <= 0:
        return context, 0
    if policy == "error" or overflow >= len(context):
        raise PromptTooLong(
            f"item {item_id!r}: prompt needs {len(context) + keep} tokens, the model's context "
            f"is {budget} (truncation policy {policy!r})"
        )
    return context[overflow:], overflow
