"""What every inference engine offers the runner, and the tokenization they share.

Tokenization happens once, outside the engines, with the model's own Hugging Face tokenizer,
so the hf and vllm engines score exactly the same token ids.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from medarena.evaluate.engines import capability
from medarena.evaluate.engines.capability import Support


@dataclass(frozen=True)
class Usage:
    """Tokens an API billed for one request (or one item), and what they cost."""

    input_tokens: int
    output_tokens: int
    cost_usd: float | None = None  # None: the variant declares no prices

    def __add__(self, other: Usage) -> Usage:
        cost = None
        if self.cost_usd is not None and other.cost_usd is not None:
            cost = self.cost_usd + other.cost_usd
        return Usage(
            self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens, cost
        )


@dataclass(frozen=True)
class LoglikRequest:
    """Score `continuation` after `context` (token ids) for item `item` (an API engine sends
    an item's choices in one request)."""

    context: tuple[int, ...]
    continuation: tuple[int, ...]
    item: str = ""


@dataclass(frozen=True)
class LoglikResult:
    logprob: float  # summed over the continuation's tokens
    is_greedy: bool  # every continuation token was the argmax
    usage: Usage | None = None  # API engines: what scoring it billed


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; temperature 0 is greedy."""

    max_new_tokens: int
    temperature: float = 0.0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int = 0
    # the chat template's end-of-turn markers: a chat model's reply ends there, whatever the task
    end_of_turn: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    texts: tuple[str, ...]  # n samples, each cut at the first stop string
    new_tokens: int  # generated tokens over all samples, for throughput
    usage: Usage | None = None  # API engines: what the request billed


Progress = Callable[[int], None]


class Engine(ABC):
    """A loaded model that scores continuations and generates text.

    An engine class is constructed as `Engine(location, *, revision, dtype, max_length, ...)`
    by `load_engine`, and declares what else it needs:
    - `backend`: the distribution whose version a run records (alternatives after the first,
      e.g. a CPU build under another name);
    - `options`: the keyword options a caller may pass (e.g. `batch_size`);
    - `variant_fields`: registry fields of the variant passed on as keywords of the same name
      (e.g. `tensor_parallel`);
    - `applies_adapters`: whether it takes `adapter=` (a LoRA adapter folder on the base);
    - `quantized`: the quantization methods it runs, where (`capability.Support`); a quantized
      variant's method, bits, group size and scheme come as `quantization=` (a dict).
    - `serves_api`: it runs variants of source kind `api` (and only those), constructed as
      `Engine(base_url, *, source, max_length, tokenizer, ...)`.

    `takes_text`: prompts go to `generate` as text, not token ids (the server tokenizes and
    applies its chat template); such an engine's `tokenizer` may be None.
    """

    name: ClassVar[str]
    backend: ClassVar[tuple[str, ...]]
    options: ClassVar[tuple[str, ...]] = ()
    variant_fields: ClassVar[tuple[str, ...]] = ()
    applies_adapters: ClassVar[bool] = False
    quantized: ClassVar[dict[str, Support]] = {}
    serves_api: ClassVar[bool] = False

    max_length: int
    tokenizer: Any
    takes_text: bool = False

    @classmethod
    def device_kind(cls, options: dict[str, Any]) -> str:
        """The device kind (`cpu` or `cuda`) this engine would run on with `options`."""
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @classmethod
    def unsupported(cls, variant: Any, device: str) -> str | None:
        """Why this engine cannot run `variant` on device kind `device` (None: it can)."""
        return capability.unsupported(cls, variant, device)

    @abstractmethod
    def loglikelihood(
        self, requests: Sequence[LoglikRequest], progress: Progress | None = None
    ) -> list[LoglikResult]: ...

    @abstractmethod
    def generate(
        self, prompts: Sequence[Any], sampling: Sampling, items: Sequence[str] = ()
    ) -> list[Generation]:
        """One generation per prompt (token ids, or text when `takes_text`); `items` are the
        prompts' item ids where the caller knows them (API engines label requests with them)."""

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the model (GPU memory, engine processes)."""


def stop_token_ids(tokenizer: Any, markers: Sequence[str]) -> list[int]:
    """Ids of the markers that are single tokens (special tokens such as <|im_end|>), which a
    decoder has to stop on by id: skipping special tokens in decoding hides them from a
    string match."""
    ids = []
    for marker in markers:
        encoded = tokenizer.encode(marker, add_special_tokens=False)
        if len(encoded) == 1:
            ids.append(encoded[0])
    return ids


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """The text before the first stop string (engines may overshoot by a few tokens)."""
    cut = len(text)
    for marker in stop:
        position = text.find(marker)
        if position != -1:
            cut = min(cut, position)
    return text[:cut]
