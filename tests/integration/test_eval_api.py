"""The openai engine against a real server: `vllm serve` (CPU build) of the tiny model, reached
through a fault proxy on loopback. One server for the module (~1 min to start); slow."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from medarena.registry import load_registry
from tests.api_server import KEY, FaultProxy, served_model, vllm_env
from tests.conftest import REPO
from tests.helpers import as_json, invoke, sql_rows

pytestmark = pytest.mark.slow

KEY_ENV = "MEDARENA_TEST_API_KEY"
LOGLIK = ["-t", "medqa_4options", "--limit", "12"]
GENERATE = ["-t", "mimic_cxr_summarization", "--limit", "6"]
PRICES = (1.5, 2.5)  # per million tokens in, out (the test card's, made up)


def card(base_url: str) -> str:
    return f"""\
name: served
display_name: the tiny model behind vllm serve
developer: medarena tests
license: apache-2.0
variants:
  - name: tiny-api
    params_b: 0.001
    context_length: 2048
    source:
      kind: api
      base_url: {base_url}
      model: tiny
      endpoint: completions
      api_key_env: {KEY_ENV}
      prompt_logprobs: true
      serves: tiny-medical-base
      prices:
        input_per_million: {PRICES[0]}
        output_per_million: {PRICES[1]}
        source: made up for this test
        date: "2026-11-30"
  - name: tiny-api-chat
    params_b: 0.001
    context_length: 2048
    instruction_tuned: true
    source:
      kind: api
      base_url: {base_url}
      model: tiny
      endpoint: chat
      api_key_env: {KEY_ENV}
"""


@pytest.fixture(scope="module")
def proxy(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:
    pytest.importorskip("vllm")
    scratch = tmp_path_factory.mktemp("vllm-serve")
    chatml = load_registry(REPO).chat_template("chatml").template
    with (
        served_model(tiny_model_dir, "tiny", scratch, chatml) as base,
        FaultProxy(base) as proxy,
    ):
        yield proxy


@pytest.fixture
def api_workspace(eval_workspace: Path, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> Path:
    (eval_workspace / "models" / "served.yaml").write_text(card(proxy.base))
    monkeypatch.setenv(KEY_ENV, KEY)
    proxy.reset()
    return eval_workspace


def api(workspace: Path, db_url: str, *args: str):
    return invoke(workspace, db_url, "eval", "--engine", "openai", *args)


def stored(db_url: str, variant: str, mode: str) -> dict[str, tuple]:
    rows = sql_rows(
        db_url,
        "SELECT p.item_id, p.raw_output, p.logprobs, p.input_tokens, p.output_tokens, p.cost_usd "
        "FROM predictions p JOIN eval_runs r ON r.id = p.eval_run_id "
        "JOIN model_variants v ON v.id = r.variant_id "
        "WHERE v.name = :variant AND r.scoring_mode = :mode",
        variant=variant,
        mode=mode,
    )
    return {row[0]: row[1:] for row in rows}


def test_scores_and_generations_equal_the_local_engines(api_workspace: Path, db_url: str):
    for task in (LOGLIK, GENERATE):
        served = api(api_workspace, db_url, "-m", "tiny-api", *task)
        assert served.exit_code == 0, served.output
    local = invoke(api_workspace, db_url, "eval", "-m", "tiny-medical-base", *LOGLIK)
    assert local.exit_code == 0, local.output
    hf = stored(db_url, "tiny-medical-base", "loglik")
    scored = stored(db_url, "tiny-api", "loglik")
    assert len(hf) == 12 and scored.keys() == hf.keys()
    for item, row in hf.items():
        expected = as_json(row[1])["loglik"]
        assert as_json(scored[item][1])["loglik"] == pytest.approx(expected, abs=1e-4), item

    # greedy generations: the vllm engine in its own process (vLLM spawns its engine core)
    vllm = subprocess.run(
        [
            str(Path(sys.executable).parent / "medarena"),
            *("--workspace", str(api_workspace), "--db", db_url),
            *("eval", "-m", "tiny-medical-base", "--engine", "vllm", *GENERATE),
        ],
        capture_output=True,
        text=True,
        env=vllm_env(api_workspace.parent),
        timeout=600,
    )
    assert vllm.returncode == 0, vllm.stderr[-3000:]
    local_texts = {
        item: row[0] for item, row in stored(db_url, "tiny-medical-base", "generate").items()
    }
    served_rows = stored(db_url, "tiny-api", "generate")
    assert len(local_texts) == 6
    assert {item: row[0] for item, row in served_rows.items()} == local_texts

    # tokens and cost per item, summed per run
    for rows in (scored, served_rows):
        for _, _, tokens_in, tokens_out, cost in rows.values():
            assert tokens_in > 0 and tokens_out > 0
            assert cost == pytest.approx((tokens_in * PRICES[0] + tokens_out * PRICES[1]) / 1e6)
    runs = sql_rows(
        db_url,
        "SELECT r.scoring_mode, r.input_tokens, r.output_tokens, r.cost_usd FROM eval_runs r "
        "JOIN model_variants v ON v.id = r.variant_id WHERE v.name = 'tiny-api'",
    )
    for mode, tokens_in, tokens_out, cost in runs:
        rows = (scored if mode == "loglik" else served_rows).values()
        assert tokens_in == sum(row[2] for row in rows)
        assert tokens_out == sum(row[3] for row in rows)
        assert cost == pytest.approx(sum(row[4] for row in rows))
    # loglik: one request per item (its choices batched), one output token per choice
    assert all(row[3] == 4 for row in scored.values())
    shown = invoke(api_workspace, db_url, "results", "--task", "medqa_4options")
    assert shown.exit_code == 0, shown.output
    loglik_run = next(run for run in runs if run[0] == "loglik")
    assert "API usage" in shown.output and f"{loglik_run[1]:,}" in shown.output
    assert f"{loglik_run[3]:,.4f}" in shown.output


def test_faults_are_retried_and_every_item_is_answered_once(
    api_workspace: Path, db_url: str, proxy: FaultProxy
):
    proxy.faults = {2: "429", 4: "500", 6: "drop", 8: "slow", 9: "429"}
    started = time.monotonic()
    result = api(api_workspace, db_url, "-m", "tiny-api", *LOGLIK, "--concurrency", "4")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert dict(proxy.injected) == {"429": 2, "500": 1, "drop": 1, "slow": 1}
    predictions = stored(db_url, "tiny-api", "loglik")
    assert len(predictions) == 12
    assert set(proxy.answered) == set(predictions) and set(proxy.answered.values()) == {1}
    # each refused request was sent again once, nothing else twice
    assert sum(proxy.requests.values()) == 12 + 4


def test_a_request_that_keeps_failing_fails_the_run_naming_its_item(
    api_workspace: Path, db_url: str, proxy: FaultProxy
):
    proxy.faults = {n: "500" for n in range(1, 1000)}
    failed = api(api_workspace, db_url, "-m", "tiny-api", *LOGLIK, "--concurrency", "1")
    assert failed.exit_code == 1
    assert "item '00000': the request to" in failed.output and "failed 6 times" in failed.output
    assert "HTTP 500" in failed.output
    assert sql_rows(db_url, "SELECT status, n_items FROM eval_runs") == [("failed", None)]
    proxy.reset()
    result = api(api_workspace, db_url, "-m", "tiny-api", *LOGLIK)
    assert result.exit_code == 0, result.output
    assert len(stored(db_url, "tiny-api", "loglik")) == 12


def test_a_killed_run_resumes_requesting_only_the_remaining_items(
    api_workspace: Path, db_url: str, proxy: FaultProxy
):
    proxy.delay = 0.5
    command = [
        str(Path(sys.executable).parent / "medarena"),
        *("--workspace", str(api_workspace), "--db", db_url),
        *("eval", "--engine", "openai", "-m", "tiny-api", *LOGLIK),
        *("--concurrency", "1", "--chunk-size", "2"),
    ]
    process = subprocess.Popen(command, env={**os.environ}, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if _count(db_url) >= 4:
            break
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    kept = set(stored(db_url, "tiny-api", "loglik"))
    assert 4 <= len(kept) < 12
    proxy.reset()
    result = api(api_workspace, db_url, "-m", "tiny-api", *LOGLIK)
    assert result.exit_code == 0, result.output
    every = set(stored(db_url, "tiny-api", "loglik"))
    assert len(every) == 12
    assert set(proxy.requests) == every - kept and set(proxy.requests.values()) == {1}


def test_a_wrong_key_is_one_clear_error_and_stores_nothing(
    api_workspace: Path, db_url: str, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(KEY_ENV, "not-the-key-91c2")
    result = api(api_workspace, db_url, "-m", "tiny-api", *LOGLIK)
    assert result.exit_code == 2
    assert f"refused the API key in ${KEY_ENV}" in result.output
    assert "not-the-key-91c2" not in result.output
    assert result.output.count("Error") <= 1
    assert sql_rows(db_url, "SELECT count(*) FROM eval_runs") == [(0,)]
    assert not proxy.requests  # no item was sent


def test_loglik_without_prompt_logprobs_is_refused_before_any_request(
    api_workspace: Path, db_url: str, proxy: FaultProxy
):
    result = api(api_workspace, db_url, "-m", "tiny-api-chat", *LOGLIK, "--mode", "loglik")
    assert result.exit_code == 2
    assert "does not return prompt log-probabilities" in result.output
    assert "--mode generate" in result.output
    assert proxy.total == 0


def test_a_chat_model_generates_through_the_servers_template(
    api_workspace: Path, db_url: str, proxy: FaultProxy, tiny_model_dir: Path
):
    from transformers import AutoTokenizer

    chat = ["-m", "tiny-api-chat", "-t", "pubmedqa", "--mode", "generate", "--limit", "4"]
    result = api(api_workspace, db_url, *chat)
    assert result.exit_code == 0, result.output
    rows = stored(db_url, "tiny-api-chat", "generate")
    assert len(rows) == 4 and sum(proxy.requests.values()) == 4
    prompts = dict(
        sql_rows(db_url, "SELECT item_id, prompt FROM predictions WHERE prompt IS NOT NULL")
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for item, (_, _, tokens_in, _, cost) in rows.items():
        # the server wrapped the prompt in its (ChatML) template: more tokens than the text
        assert tokens_in > len(tokenizer.encode(prompts[item])) + 4
        assert cost is None  # no prices declared
    [(cost,)] = sql_rows(db_url, "SELECT cost_usd FROM eval_runs")
    assert cost is None


def test_a_timed_out_request_is_sent_again(api_workspace: Path, proxy: FaultProxy):
    from medarena.evaluate.engines import Sampling, load_engine
    from medarena.registry import load_registry

    registry = load_registry(api_workspace)
    engine = load_engine("openai", registry, registry.variant("tiny-api"), timeout=1.0)
    try:
        proxy.faults = {1: "slow"}  # 1.5 s: past the client's 1 s
        prompt = tuple(engine.tokenizer.encode("Findings: clear lungs.\nImpression:"))
        [generation] = engine.generate([prompt], Sampling(max_new_tokens=4), ["item-1"])
    finally:
        engine.close()
    assert proxy.requests["item-1"] == 2 and proxy.injected["slow"] == 1
    assert generation.usage is not None and generation.usage.input_tokens == len(prompt)


def _count(db_url: str) -> int:
    try:
        return sql_rows(db_url, "SELECT count(*) FROM predictions")[0][0]
    except Exception:  # the database is still being created
        return 0
