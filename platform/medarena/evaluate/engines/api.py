"""The `openai` engine: a model behind an OpenAI-compatible API (OpenAI itself, `vllm serve`).

Prompts are built by medarena exactly as for local models (the task's instruction, shots and
answer extraction); the variant's `source` (kind `api`) says how they travel:
- `endpoint: chat`: each prompt is one user message and the server applies its own chat
  template;
- `endpoint: completions`: the prompt as is; as token ids when the source names the variant the
  server `serves` (its tokenizer, so the server scores exactly the ids the local engines score),
  else as text.
Log-likelihood modes need the server's prompt log-probabilities (vLLM's completions endpoint with
its `prompt_logprobs` extension) and the served variant's tokenizer; elsewhere they are refused
before any request (`ApiWeights.loglik_refusal`). Each request carries the item id in the
`X-Medarena-Item` header, so server logs and proxies can tell items apart.

The key is read from the environment variable the source names and handed to the client only.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any

import openai

from medarena.errors import EngineError, Refused
from medarena.evaluate.engines.api_calls import RetryPolicy, gather_limited, with_retries
from medarena.evaluate.engines.base import (
    Engine,
    Generation,
    LoglikRequest,
    LoglikResult,
    Progress,
    Sampling,
    Usage,
    cut_at_stop,
)
from medarena.schemas import ApiSource
from medarena.weights import WEIGHTS_SOURCES

ITEM_HEADER = "X-Medarena-Item"


class OpenAIEngine(Engine):
    name = "openai"
    backend = ("openai",)
    options = ("concurrency", "timeout", "attempts")
    serves_api = True

    def __init__(
        self,
        location: str,
        *,
        source: ApiSource,
        max_length: int,
        tokenizer: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        attempts: int = 6,
    ):
        key = os.environ.get(source.api_key_env)
        if not key:
            raise Refused(f"set the environment variable {source.api_key_env} to the API key")
        self.source, self.max_length, self.concurrency = source, max_length, concurrency
        self.policy = RetryPolicy(attempts=attempts)
        self.tokenizer = None
        if tokenizer is not None:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.takes_text = source.endpoint == "chat" or self.tokenizer is None
        self.where = f"{source.base_url} ({source.model})"
        self.loop = asyncio.new_event_loop()
        self.client = openai.AsyncOpenAI(
            api_key=key, base_url=location, max_retries=0, timeout=timeout
        )
        self._check_access()

    def _check_access(self) -> None:
        """One request before any item: a refused key or an unknown model id ends here, before
        a run is stored."""
        try:
            models = self._run(
                with_retries(self._list_models, "the model list", self.policy, self.where)
            )
        except EngineError as exc:
            cause = exc.__cause__
            if isinstance(cause, openai.AuthenticationError | openai.PermissionDeniedError):
                raise Refused(
                    f"{self.source.base_url} refused the API key in ${self.source.api_key_env} "
                    f"(HTTP {cause.status_code}): check the key"
                ) from None
            raise
        if models is not None and self.source.model not in models:
            raise Refused(
                f"{self.source.base_url} serves no model {self.source.model!r}; "
                f"it serves: {', '.join(sorted(models)) or '(none)'}"
            )

    async def _list_models(self) -> set[str] | None:
        try:
            return {model.id async for model in self.client.models.list()}
        except openai.NotFoundError:  # a server without a model list: the first item tells
            return None

    def _run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    # --------------------------------------------------------------------------- generation

    def generate(
        self, prompts: Sequence[Any], sampling: Sampling, items: Sequence[str] = ()
    ) -> list[Generation]:
        labels = list(items) or [str(index) for index in range(len(prompts))]
        stop = [*sampling.stop, *sampling.end_of_turn] or None
        settings = {
            "model": self.source.model,
            "n": sampling.n,
            "temperature": sampling.temperature,
            "max_tokens": sampling.max_new_tokens,
            "seed": sampling.seed,
            "stop": stop,
        }
        chat = self.source.endpoint == "chat"
        calls = [
            self._call(label, self._chat if chat else self._complete, prompt, settings, stop)
            for prompt, label in zip(prompts, labels, strict=True)
        ]
        return self._run(gather_limited(calls, self.concurrency))

    def _call(
        self, label: str, send: Callable[..., Any], prompt: Any, settings: dict, stop: Any
    ) -> Callable[[], Any]:
        async def call() -> Generation:
            return await with_retries(
                lambda: send(prompt, settings, stop, label),
                f"item {label!r}",
                self.policy,
                self.where,
            )

        return call

    async def _chat(self, prompt: str, settings: dict, stop: Any, label: str) -> Generation:
        response = await self.client.chat.completions.create(
            messages=[{"role": "user", "content": prompt}],
            extra_headers={ITEM_HEADER: label},
            **settings,
        )
        texts = [choice.message.content or "" for choice in response.choices]
        return self._generation(texts, stop, response.usage)

    async def _complete(self, prompt: Any, settings: dict, stop: Any, label: str) -> Generation:
        response = await self.client.completions.create(
            prompt=list(prompt) if not isinstance(prompt, str) else prompt,
            extra_headers={ITEM_HEADER: label},
            **settings,
        )
        ordered = sorted(response.choices, key=lambda choice: choice.index)
        return self._generation([choice.text for choice in ordered], stop, response.usage)

    def _generation(self, texts: list[str], stop: Any, usage: Any) -> Generation:
        billed = self._usage(usage)
        return Generation(
            tuple(cut_at_stop(text, stop or ()) for text in texts), billed.output_tokens, billed
        )

    def _usage(self, usage: Any) -> Usage:
        if usage is None:
            raise EngineError(f"{self.where} reported no token usage")
        prices = self.source.prices
        cost = None
        if prices is not None:
            cost = (
                usage.prompt_tokens * prices.input_per_million
                + usage.completion_tokens * prices.output_per_million
            ) / 1e6
        return Usage(usage.prompt_tokens, usage.completion_tokens, cost)

    # ------------------------------------------------------------------------ log-likelihood

    def loglikelihood(
        self, requests: Sequence[LoglikRequest], progress: Progress | None = None
    ) -> list[LoglikResult]:
        refusal = WEIGHTS_SOURCES.get("api").loglik_refusal(self.source, self.source.model)
        if refusal:  # plan_run refuses first; an engine used directly refuses here
            raise Refused(refusal)
        # one request per item: its choices as a batch of prompts
        groups = [list(group) for _, group in groupby(requests, key=lambda r: r.item)]
        calls = [self._score_call(group) for group in groups]
        scored = self._run(gather_limited(calls, self.concurrency))
        if progress:
            progress(len(requests))
        return [result for group in scored for result in group]

    def _score_call(self, group: list[LoglikRequest]) -> Callable[[], Any]:
        label = group[0].item

        async def call() -> list[LoglikResult]:
            return await with_retries(
                lambda: self._score(group, label), f"item {label!r}", self.policy, self.where
            )

        return call

    async def _score(self, group: list[LoglikRequest], label: str) -> list[LoglikResult]:
        prompts = [list(r.context + r.continuation) for r in group]
        response = await self.client.completions.create(
            model=self.source.model,
            prompt=prompts,
            max_tokens=1,
            temperature=0.0,
            extra_body={"prompt_logprobs": 0},
            extra_headers={ITEM_HEADER: label},
        )
        ordered = sorted(response.choices, key=lambda choice: choice.index)
        results = []
        for request, ids, choice in zip(group, prompts, ordered, strict=True):
            entries = getattr(choice, "prompt_logprobs", None)
            if entries is None or len(entries) != len(ids):
                raise EngineError(f"item {label!r}: {self.where} returned no prompt logprobs")
            total, greedy = 0.0, True
            for position in range(len(request.context), len(ids)):
                entry = entries[position][str(ids[position])]
                total += entry["logprob"]
                greedy = greedy and entry["rank"] == 1
            results.append(LoglikResult(total, greedy))
        # the item's whole bill on its first choice: an item's usage is the sum of its choices'
        billed = self._usage(response.usage)
        results[0] = LoglikResult(results[0].logprob, results[0].is_greedy, billed)
        return results

    def close(self) -> None:
        self._run(self.client.close())
        self.loop.close()
