"""The openai engine's parts that need no server: retry timing, Retry-After, concurrency, the
api source schema, refusals before any request, the cost estimate. (Against a real server:
tests/integration/test_eval_api.py.)"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import ValidationError

from medarena.errors import EngineError, Refused
from medarena.evaluate.engines import Usage, load_engine
from medarena.evaluate.engines.api_calls import (
    RetryPolicy,
    gather_limited,
    retry_after,
    with_retries,
)
from medarena.evaluate.reproduce import api_cost
from medarena.evaluate.runner import EvalOptions, plan_run
from medarena.evaluate.spec import load_benchmarks
from medarena.registry import load_registry
from medarena.schemas import ApiPrices, ApiSource
from tests.conftest import REPO
from tests.helpers import invoke

REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/completions")


def status_error(cls: type, status: int, headers: dict[str, str] | None = None) -> Exception:
    return cls(
        "refused", response=httpx.Response(status, headers=headers, request=REQUEST), body=None
    )


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert retry_after(status_error(openai.RateLimitError, 429, {"Retry-After": "3"})) == 3.0
    assert retry_after(status_error(openai.RateLimitError, 429, {"retry-after-ms": "250"})) == 0.25
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    waited = retry_after(status_error(openai.RateLimitError, 429, {"Retry-After": later}))
    assert waited is not None and 27 <= waited <= 30
    assert retry_after(status_error(openai.InternalServerError, 500)) is None
    assert retry_after(openai.APIConnectionError(request=REQUEST)) is None


def test_backoff_doubles_with_jitter_and_never_undercuts_retry_after():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    for attempt, step in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delays = [policy.delay(attempt, None) for _ in range(200)]
        assert all(step / 2 <= delay <= step for delay in delays)
        assert len(set(delays)) > 1  # jittered
    assert policy.delay(0, 5.0) == 5.0


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return waits


def failing(errors: list[Exception], result: str = "ok"):
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result

    return call, calls


def test_transient_failures_are_retried_honouring_retry_after(slept: list[float]):
    call, calls = failing(
        [
            status_error(openai.RateLimitError, 429, {"Retry-After": "4"}),
            status_error(openai.InternalServerError, 503),
            openai.APITimeoutError(request=REQUEST),
            openai.APIConnectionError(request=REQUEST),
        ]
    )
    policy = RetryPolicy(base_delay=0.1)
    assert asyncio.run(with_retries(call, "item 'q1'", policy, "the server")) == "ok"
    assert len(calls) == 5 and len(slept) == 4
    assert slept[0] == 4.0 and all(delay < 4 for delay in slept[1:])


def test_a_request_that_keeps_failing_names_its_item(slept: list[float]):
    call, calls = failing([status_error(openai.InternalServerError, 500)] * 10)
    with pytest.raises(EngineError, match=r"item 'q7'.*failed 3 times.*HTTP 500"):
        asyncio.run(with_retries(call, "item 'q7'", RetryPolicy(attempts=3), "the server"))
    assert len(calls) == 3


def test_a_bad_request_is_not_retried(slept: list[float]):
    call, calls = failing([status_error(openai.BadRequestError, 400)])
    with pytest.raises(EngineError, match=r"item 'q2'.*refused the request.*HTTP 400"):
        asyncio.run(with_retries(call, "item 'q2'", RetryPolicy(), "the server"))
    assert len(calls) == 1 and not slept


def test_at_most_the_limit_runs_at_once_and_results_keep_their_order():
    running, most = 0, 0

    def make(index: int):
        async def call() -> int:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.01 * (index % 3))
            running -= 1
            return index

        return call

    assert asyncio.run(gather_limited([make(i) for i in range(20)], 3)) == list(range(20))
    assert most == 3


def test_the_first_failure_cancels_the_other_requests():
    finished: list[int] = []

    async def fails() -> int:
        raise EngineError("item 'q0': no")

    def slow(index: int):
        async def call() -> int:
            await asyncio.sleep(5)
            finished.append(index)
            return index

        return call

    with pytest.raises(EngineError, match="q0"):
        asyncio.run(gather_limited([fails, *(slow(i) for i in range(4))], 5))
    assert finished == []


def test_usage_adds_up_and_an_unknown_cost_stays_unknown():
    total = Usage(10, 2, 0.5) + Usage(5, 1, 0.25)
    assert total == Usage(15, 3, 0.75)
    assert (Usage(1, 1, 0.1) + Usage(1, 1, None)).cost_usd is None


SOURCE = {
    "kind": "api",
    "base_url": "https://api.example.org/v1",
    "model": "m",
    "api_key_env": "EXAMPLE_KEY",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompt_logprobs": True}, "prompt_logprobs comes from the completions endpoint"),
        ({"api_key_env": "sk-abc123"}, "String should match pattern"),
        ({"base_url": "api.example.org"}, "String should match pattern"),
        ({"endpoint": "responses"}, "Input should be 'chat' or 'completions'"),
    ],
)
def test_the_api_source_schema_refuses(change: dict, message: str):
    with pytest.raises(ValidationError, match=message):
        ApiSource.model_validate({**SOURCE, **change})


CARD = """\
name: remote
display_name: remote models
developer: tests
license: proprietary
variants:
  - name: remote-chat
    params_b: 1
    context_length: 4096
    instruction_tuned: true
    source: {kind: api, base_url: "http://127.0.0.1:9/v1", model: m, api_key_env: REMOTE_KEY}
  - name: remote-priced
    params_b: 1
    context_length: 4096
    instruction_tuned: true
    source:
      kind: api
      base_url: "http://127.0.0.1:9/v1"
      model: m
      api_key_env: REMOTE_KEY
      prices: {input_per_million: 10, output_per_million: 30, source: a page, date: "2026-11-30"}
  - name: remote-raw
    params_b: 1
    context_length: 4096
    source:
      kind: api
      base_url: "http://127.0.0.1:9/v1"
      model: m
      endpoint: completions
      prompt_logprobs: true
      api_key_env: REMOTE_KEY
"""


@pytest.fixture
def api_registry(workspace: Path):
    (workspace / "benchmarks").symlink_to(REPO / "benchmarks")
    (workspace / "models" / "remote.yaml").write_text(CARD)
    return load_registry(workspace)


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("remote-chat", "does not return prompt log-probabilities"),
        ("remote-raw", "names no variant it serves"),
    ],
)
def test_loglik_on_an_api_without_prompt_logprobs_is_refused_when_planned(
    api_registry, variant: str, reason: str
):
    task = load_benchmarks(api_registry.root)["medqa_4options"]
    with pytest.raises(Refused, match=f"{reason}.*--mode generate"):
        plan_run(api_registry, variant, task, EvalOptions(engine="openai", limit=2))
    planned = plan_run(
        api_registry, variant, task, EvalOptions(engine="openai", mode="generate", limit=2)
    )
    assert len(planned.prompts) == 2


def test_engines_refuse_variants_of_the_other_kind_and_a_missing_key(
    api_registry, monkeypatch: pytest.MonkeyPatch
):
    with pytest.raises(Refused, match=r"remote-chat is served by an API: .*--engine openai"):
        load_engine("hf", api_registry, api_registry.variant("remote-chat"))
    with pytest.raises(Refused, match=r"runs API variants .*meditron-7b is not"):
        load_engine("openai", api_registry, api_registry.variant("meditron-7b"))
    monkeypatch.delenv("REMOTE_KEY", raising=False)
    with pytest.raises(Refused, match="set the environment variable REMOTE_KEY"):
        load_engine("openai", api_registry, api_registry.variant("remote-chat"))


def test_a_run_costs_its_estimated_tokens_at_the_variant_prices():
    task = load_benchmarks(REPO)["mimic_cxr_summarization"]
    prices = ApiPrices(input_per_million=10, output_per_million=30, source="s", date="d")
    options = EvalOptions(mode="generate", shots=1)
    cost = api_cost(task, options, 100, 400.0, prices)
    prompt_tokens = 400.0 / 4 * 2  # 4 characters per token, the item and one demonstration
    expected = 100 * (prompt_tokens * 10 + task.generation.max_new_tokens * 30) / 1e6
    assert cost == pytest.approx(expected)


def test_the_plan_of_a_protocol_on_an_api_variant_says_what_it_costs(api_registry):
    priced = invoke(
        api_registry.root,
        "sqlite://",
        "reproduce",
        "-p",
        "lm-eval",
        "-m",
        "remote-priced",
        "--plan",
        "--engine",
        "openai",
    )
    assert priced.exit_code == 0, priced.output
    found = re.search(r"this protocol on remote-priced costs about \$([\d,.]+)", priced.output)
    assert found and float(found.group(1).replace(",", "")) > 0
    assert "$10 / $30 per million tokens in / out (a page, 2026-11-30)" in priced.output
    assert "GPU-hours" not in priced.output
    unpriced = invoke(
        api_registry.root,
        "sqlite://",
        "reproduce",
        *("-p", "lm-eval", "-m", "remote-chat", "--plan", "--engine", "openai"),
    )
    assert unpriced.exit_code == 0, unpriced.output
    assert "cost unknown: remote-chat declares no prices" in unpriced.output
    # an engine that loads weights is refused before anything is read
    weights = invoke(
        api_registry.root, "sqlite://", "reproduce", "-p", "lm-eval", "-m", "remote-chat", "--plan"
    )
    assert weights.exit_code == 2
    assert "remote-chat is served by an API: evaluate it with --engine openai" in weights.output


def test_the_plan_of_gpt4_costs_its_catalogued_prices(api_registry):
    """The shipped GPT-4 entry (size undisclosed): "this protocol on GPT-4 costs about $X"."""
    planned = invoke(
        api_registry.root,
        "sqlite://",
        "reproduce",
        *("-p", "me-llama-zeroshot", "-m", "gpt-4", "--plan", "--engine", "openai"),
    )
    assert planned.exit_code == 0, planned.output
    found = re.search(r"this protocol on gpt-4 costs about \$([\d,.]+)", planned.output)
    assert found and float(found.group(1).replace(",", "")) > 0
    assert "$30 / $60 per million tokens in / out" in planned.output
    assert "https://developers.openai.com/api/docs/models/gpt-4" in planned.output


def test_without_a_mode_an_api_model_without_logprobs_generates(api_registry):
    from medarena.evaluate.plans import plan_evaluation

    tasks = ["medqa_4options", "mimic_cxr_summarization"]
    modes = {}
    for engine, variants in (("openai", ["remote-chat", "remote-raw"]), ("hf", ["meditron-7b"])):
        planned = plan_evaluation(
            api_registry, variants, tasks, EvalOptions(engine=engine, limit=2)
        )
        modes |= {
            (entry.variant.name, task.name): options.mode
            for entry, plans in planned.work
            for task, options in plans
        }
    assert modes == {
        ("remote-chat", "medqa_4options"): "generate",
        ("remote-chat", "mimic_cxr_summarization"): "generate",
        ("remote-raw", "medqa_4options"): "generate",  # log-probs, but no tokenizer to score with
        ("remote-raw", "mimic_cxr_summarization"): "generate",
        ("meditron-7b", "medqa_4options"): "loglik",
        ("meditron-7b", "mimic_cxr_summarization"): "generate",
    }
    # a variant with weights under the API engine is refused before any work
    with pytest.raises(Refused, match=r"runs API variants .*meditron-7b is not"):
        plan_evaluation(
            api_registry, ["remote-chat", "meditron-7b"], tasks, EvalOptions(engine="openai")
        )


def test_models_show_and_ls_say_an_undisclosed_size(api_registry):
    shown = invoke(api_registry.root, "sqlite://", "models", "show", "gpt-4")
    assert shown.exit_code == 0, shown.output
    card = json.loads(shown.output)
    assert card["params_b"] == "undisclosed" and card["source"]["api_key_env"] == "OPENAI_API_KEY"
    assert card["runs_on"]["openai"] == {"cpu": "yes", "cuda": "yes"}
    assert not {"architecture", "dtype", "tensor_parallel"} & set(card)  # no weights to describe
    listed = invoke(api_registry.root, "sqlite://", "models", "ls", "--family", "openai")
    assert listed.exit_code == 0 and listed.output.count("undisclosed") == 2
