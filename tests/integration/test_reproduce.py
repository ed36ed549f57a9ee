"""Protocols as data and reproduction reports: `medarena protocols`, `eval --protocol` and
`medarena reproduce` on the tiny model against published results written in the test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medarena.evaluate.protocol import load_protocols, plan_protocol
from medarena.evaluate.runner import EvalOptions, load_task_data
from medarena.evaluate.spec import load_benchmarks
from medarena.registry import load_registry
from tests.conftest import REPO
from tests.helpers import invoke, sql_rows

REPRODUCE = ("reproduce", "-p", "lm-eval", "-m", "tiny-medical-base", "-t", "pubmedqa")


def test_meditron_in_context_uses_5_shots_from_70b_up() -> None:
    registry, benchmarks = load_registry(REPO), load_benchmarks(REPO)
    protocol = load_protocols(REPO)["meditron-incontext"]
    # GPT-4's size is undisclosed: no size override applies, the entry's shots stand
    for variant, shots in (("meditron-7b", 3), ("meditron-70b", 5), ("gpt-4", 3)):
        runs = plan_protocol(protocol, benchmarks, registry.variant(variant), EvalOptions())
        assert {run.options.shots for run in runs} == {shots}
        assert sorted({run.options.seed for run in runs}) == [0, 1, 2]
        assert len(runs) == 3 * len(protocol.tasks)


def test_sc_cot_sets_samples_temperature_and_cot() -> None:
    registry, benchmarks = load_registry(REPO), load_benchmarks(REPO)
    protocol = load_protocols(REPO)["meditron-sc-cot"]
    runs = plan_protocol(protocol, benchmarks, registry.variant("meditron-7b"), EvalOptions())
    assert {
        (r.options.mode, r.options.cot, r.options.samples, r.options.temperature) for r in runs
    } == {("generate", True, 5, 0.8)}


def test_me_llama_overrides_enter_the_task(tmp_path: Path) -> None:
    registry, benchmarks = load_registry(REPO), load_benchmarks(REPO)
    protocol = load_protocols(REPO)["me-llama-zeroshot"]
    runs = plan_protocol(
        protocol,
        benchmarks,
        registry.variant("me-llama-13b-chat"),
        EvalOptions(),
        tasks=["pubmed_summarization"],
    )
    assert [run.task.generation.max_new_tokens for run in runs] == [512]
    assert runs[0].options.bertscore_encoder == "bert-base-multilingual-cased"
    assert runs[0].options.bartscore_model == "facebook/bart-large-cnn"
    assert runs[0].task.metrics == ["rouge_1", "rouge_2", "rouge_l", "bertscore_f1", "bartscore"]


def test_protocols_ls_and_show(eval_workspace: Path, db_url: str) -> None:
    listed = invoke(eval_workspace, db_url, "protocols", "ls")
    assert listed.exit_code == 0, listed.output
    for name in (
        "lm-eval",
        "meditron-incontext",
        "meditron-sc-cot",
        "me-llama-zeroshot",
        "openmedlb",
    ):
        assert name in listed.stdout
    shown = invoke(eval_workspace, db_url, "protocols", "show", "meditron-sc-cot")
    assert json.loads(shown.stdout)["tasks"][0]["samples"] == 5
    missing = invoke(eval_workspace, db_url, "protocols", "show", "helm")
    assert missing.exit_code == 2 and "unknown protocol 'helm'; known:" in missing.stderr


def test_eval_with_a_protocol_runs_its_settings(eval_workspace: Path, db_url: str) -> None:
    result = invoke(
        eval_workspace,
        db_url,
        "eval",
        "-m",
        "tiny-medical-base",
        "--protocol",
        "lm-eval",
        "-t",
        "pubmedqa",
        "--limit",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert sql_rows(db_url, "SELECT scoring_mode, shots, n_items FROM eval_runs") == [
        ("loglik", 0, 4)
    ]
    neither = invoke(eval_workspace, db_url, "eval", "-m", "tiny-medical-base")
    assert neither.exit_code == 2 and "--protocol" in neither.stderr


def _published(workspace: Path, name: str, **result: object) -> None:
    row = {
        "variant": "tiny-medical-base",
        "task": "pubmedqa",
        "metric": "acc",
        "shots": 0,
        "protocol": "lm-eval",
        "setting": "a fixture written by the test",
        **result,
    }
    card = {"source": f"fixture {name}", "url": "https://example.org", "results": [row]}
    (workspace / "models" / "reference" / f"{name}.yaml").write_text(yaml.safe_dump(card))


def test_reproduce_reports_reproduced_not_reproduced_and_not_comparable(
    eval_workspace: Path, db_url: str
) -> None:
    first = invoke(eval_workspace, db_url, *REPRODUCE)
    assert first.exit_code == 0, first.output
    assert "no published result of tiny-medical-base under lm-eval" in first.stdout
    ((value, low, high, n),) = sql_rows(
        db_url, "SELECT value, ci_low, ci_high, n FROM metrics WHERE name = 'acc'"
    )
    assert n == 40 and low < value < high
    _published(eval_workspace, "tiny-a", value=round(value, 3), items=40, split="test")
    far = 0.99 if high < 0.9 else 0.01
    _published(eval_workspace, "tiny-b", value=far, items=40, split="test")
    _published(eval_workspace, "tiny-c", value=round(value, 3), shots="unknown")

    plan = invoke(eval_workspace, db_url, *REPRODUCE, "--plan")
    assert plan.exit_code == 0 and "3 published result(s) under this protocol" in plan.stdout
    report = invoke(eval_workspace, db_url, *REPRODUCE)
    assert report.exit_code == 0, report.output
    assert "(stored)" in report.stdout  # the protocol's run was reused, not scored again
    rows = sql_rows(
        db_url,
        "SELECT source, verdict, published, measured, mismatches FROM reproductions "
        "ORDER BY source",
    )
    verdicts = {source: verdict for source, verdict, *_ in rows}
    assert verdicts == {
        "fixture tiny-a": "reproduced",
        "fixture tiny-b": "not reproduced",
        "fixture tiny-c": "not comparable",
    }
    mismatches = json.loads(rows[2][4]) if isinstance(rows[2][4], str) else rows[2][4]
    assert mismatches == [
        "items: the test split has 500, measured on 40",
        "shots: the source does not state them; measured [0]",
    ]
    assert rows[0][3] == pytest.approx(value)
    assert "not reproduced" in report.stdout and "reproduced" in report.stdout
    assert "contamination:" not in report.stdout  # no check was run

    # once a contamination check exists, the report names what it found
    planted = eval_workspace / "planted.jsonl"
    task = load_benchmarks(eval_workspace)["pubmedqa"]
    item = load_task_data(task, eval_workspace).items[0]
    text = f"{item.fields['question']} {item.fields['context']}"
    planted.write_text(json.dumps({"id": "d", "text": text}) + "\n")
    checked = invoke(eval_workspace, db_url, "contamination", "-m", "tiny-medical-base", "-t",
                     "pubmedqa", "--corpus", str(planted))  # fmt: skip
    assert checked.exit_code == 0, checked.output
    again = invoke(eval_workspace, db_url, *REPRODUCE)
    assert "contamination: 1 of" in again.stdout and "pubmedqa items flagged" in again.stdout


def test_published_results_must_name_a_protocol_and_a_spec(workspace: Path, db_url: str) -> None:
    (workspace / "benchmarks").symlink_to(REPO / "benchmarks")
    _published(workspace, "bad", task="medqa", protocol="helm", value=0.5)
    result = invoke(workspace, db_url, "validate")
    assert result.exit_code == 2
    assert (
        "models/reference/bad.yaml: results[0].protocol: unknown protocol 'helm'" in result.stderr
    )
    assert "results[0].task: task 'medqa' is no benchmark spec" in result.stderr


def test_results_put_published_beside_measured_only_under_the_same_protocol(
    eval_workspace: Path, db_url: str
) -> None:
    measured = invoke(eval_workspace, db_url, *REPRODUCE)
    assert measured.exit_code == 0, measured.output
    _published(eval_workspace, "tiny-same", value=0.5)
    _published(eval_workspace, "tiny-other", value=0.7, protocol="me-llama-zeroshot")
    _published(
        eval_workspace,
        "tiny-tuned",
        value=0.8,
        shots="unknown",
        protocol=None,
        other_protocol="fine-tuned on PubMedQA",
    )
    assert invoke(eval_workspace, db_url, "models", "sync").exit_code == 0
    shown = invoke(
        eval_workspace, db_url, "results", "--metric", "acc", "--task", "pubmedqa", "--json"
    )
    assert shown.exit_code == 0, shown.output
    rows = {row["source"]: row for row in json.loads(shown.stdout)}
    assert rows["fixture tiny-same"]["beside_measured"].startswith("same protocol: measured 0.")
    assert rows["fixture tiny-other"]["beside_measured"] == (
        "not comparable: published under me-llama-zeroshot (generate 0-shot); "
        "measured loglik 0-shot"
    )
    assert rows["fixture tiny-tuned"]["beside_measured"] == (
        "not comparable: published fine-tuned on PubMedQA; measured loglik 0-shot"
    )
    # a published result whose source gives no shots is unknown, never 0
    assert rows["fixture tiny-tuned"]["shots"] is None
    table = invoke(eval_workspace, db_url, "results", "--metric", "acc", "--task", "pubmedqa")
    assert table.exit_code == 0 and "beside measured" in table.stdout
