"""`medarena rescore`: a stored generate run's outputs parsed again with each registered rule,
without a model; a new run linked to its source, compared like any run; bad input refused with
nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from medarena.evaluate.engines import ENGINES, Engine
from medarena.evaluate.engines.base import Generation
from medarena.evaluate.runner import load_task_data
from medarena.evaluate.spec import load_benchmarks
from tests.helpers import as_json, invoke, sql_rows

TASK = "medqa_4options"
# what the scripted model answers, item by item (in the task's order)
TEXTS = ("The answer is (C).", "B) because of the rhythm", "Answer: D", "I am not sure")
# hand-checked: the label each rule reads in TEXTS (medarena.evaluate.extractors)
PARSES = {
    "medarena": ["C", "B", "D", None],
    "lm-eval": ["C", None, "D", None],
    "me-llama": ["C", "B", "A", None],
    "meditron": [None, "B", "A", None],
}


class ScriptedEngine(Engine):
    """Stands in for a model (outside the code under test): answers TEXTS in order, with the
    tiny model's tokenizer."""

    name = "scripted"
    backend = ("medarena",)

    def __init__(self, location, *, revision=None, dtype="float32", max_length=2048):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(location, revision=revision)
        self.max_length = max_length

    def loglikelihood(self, requests, progress=None):
        raise AssertionError("a generate run only")

    def generate(self, prompts, sampling, items=()):
        return [Generation((TEXTS[i],) * sampling.n, 1) for i in range(len(prompts))]


def item_ids(workspace: Path) -> list[str]:
    task = load_benchmarks(workspace)[TASK]
    return [item.id for item in load_task_data(task, workspace, limit=4).items]


@pytest.fixture
def stored_run(eval_workspace: Path, db_url: str) -> int:
    args = ("eval", "-m", "tiny-medical-base", "-t", TASK, "--mode", "generate", "--limit", "4")
    with ENGINES.temporarily("scripted", ScriptedEngine):
        result = invoke(eval_workspace, db_url, *args, "--engine", "scripted")
    assert result.exit_code == 0, result.output
    ((run_id,),) = sql_rows(db_url, "SELECT id FROM eval_runs")
    return run_id


def parses(db_url: str, run_id: int, ids: list[str]) -> list[str | None]:
    rows = dict(
        sql_rows(
            db_url,
            "SELECT item_id, parsed_answer FROM predictions WHERE eval_run_id = :r",
            r=run_id,
        )
    )
    return [rows[item_id] for item_id in ids]


def test_each_rule_parses_the_stored_outputs_as_checked_by_hand(eval_workspace, db_url, stored_run):
    ids = item_ids(eval_workspace)
    assert parses(db_url, stored_run, ids) == PARSES["medarena"]
    for name in ("lm-eval", "me-llama", "meditron"):
        result = invoke(eval_workspace, db_url, "rescore", str(stored_run), "-x", name, "--json")
        assert result.exit_code == 0, result.output
        data = as_json(result.stdout)
        assert data["source_run"] == stored_run and not data["reused"]
        assert data["scoring_mode"] == f"generate+x={name}"
        assert parses(db_url, data["run"], ids) == PARSES[name], name
        changed = sum(a != b for a, b in zip(PARSES[name], PARSES["medarena"], strict=True))
        assert data["changed"] == changed
        ((link,),) = sql_rows(
            db_url, "SELECT source_run_id FROM rescored_runs WHERE eval_run_id = :r", r=data["run"]
        )
        assert link == stored_run
    # the raw outputs are the source's, untouched; every run has 4 items
    assert sql_rows(db_url, "SELECT COUNT(DISTINCT raw_output), COUNT(*) FROM predictions") == [
        (4, 16)
    ]


def test_metrics_and_compare_see_the_rescored_run(eval_workspace, db_url, stored_run):
    ids = item_ids(eval_workspace)
    task = load_benchmarks(eval_workspace)[TASK]
    golds = [item.gold_text for item in load_task_data(task, eval_workspace, limit=4).items]
    result = invoke(eval_workspace, db_url, "rescore", str(stored_run), "-x", "me-llama", "--json")
    data = as_json(result.stdout)
    metrics = {m["name"]: m for m in data["metrics"]}
    expected = sum(p == g for p, g in zip(PARSES["me-llama"], golds, strict=True)) / 4
    assert metrics["acc"]["value"] == pytest.approx(expected) and metrics["acc"]["n"] == 4
    assert metrics["acc"]["ci_low"] is not None
    assert parses(db_url, data["run"], ids) == PARSES["me-llama"]
    results = invoke(eval_workspace, db_url, "results", "--task", TASK, "--json")
    modes = {row["scoring_mode"] for row in as_json(results.stdout)}
    assert {"generate", "generate+x=me-llama"} <= modes  # a cell of its own
    compared = invoke(
        eval_workspace,
        db_url,
        "compare",
        "tiny-medical-base",
        "tiny-medical-base",
        "-t",
        TASK,
        "--mode",
        "generate+x=me-llama",
        "--json",
    )
    assert compared.exit_code == 0, compared.output
    assert as_json(compared.stdout)["run_a"] == data["run"]


def test_rescoring_again_reuses_the_run(eval_workspace, db_url, stored_run):
    first = as_json(
        invoke(
            eval_workspace, db_url, "rescore", str(stored_run), "-x", "meditron", "--json"
        ).stdout
    )
    again = as_json(
        invoke(
            eval_workspace, db_url, "rescore", str(stored_run), "-x", "meditron", "--json"
        ).stdout
    )
    assert again["reused"] and again["run"] == first["run"]
    same = as_json(
        invoke(
            eval_workspace, db_url, "rescore", str(stored_run), "-x", "medarena", "--json"
        ).stdout
    )
    assert same["reused"] and same["run"] == stored_run  # the source's own key
    assert sql_rows(db_url, "SELECT COUNT(*) FROM eval_runs") == [(2,)]


def test_the_protocol_names_the_rule(eval_workspace, db_url, stored_run):
    result = invoke(
        eval_workspace, db_url, "rescore", str(stored_run), "--protocol", "me-llama-zeroshot"
    )
    # the shipped protocol keeps medarena's rule: its own run, reused
    assert result.exit_code == 0, result.output
    assert "(stored)" in result.stdout


def counts(db_url: str) -> list[tuple]:
    return sql_rows(
        db_url,
        "SELECT (SELECT COUNT(*) FROM eval_runs), (SELECT COUNT(*) FROM predictions),"
        " (SELECT COUNT(*) FROM rescored_runs)",
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("999", "-x", "lm-eval"), "no evaluation run 999"),
        (("{run}", "-x", "nonsense"), "unknown extraction rule 'nonsense'"),
        (("{run}",), "give one of --extractor NAME or --protocol P"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(
    eval_workspace, db_url, stored_run, args, message
):
    before = counts(db_url)
    result = invoke(eval_workspace, db_url, "rescore", *(a.format(run=stored_run) for a in args))
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert counts(db_url) == before


def test_a_log_likelihood_run_is_refused_with_the_reason(eval_workspace, db_url):
    args = ("eval", "-m", "tiny-medical-base", "-t", TASK, "--mode", "loglik", "--limit", "2")
    assert invoke(eval_workspace, db_url, *args).exit_code == 0
    ((run_id,),) = sql_rows(db_url, "SELECT id FROM eval_runs")
    result = invoke(eval_workspace, db_url, "rescore", str(run_id), "-x", "lm-eval")
    assert result.exit_code == 2
    assert f"run {run_id} was scored by loglik (log-likelihood)" in result.stderr
    assert "no generated text" in result.stderr
    assert sql_rows(db_url, "SELECT COUNT(*) FROM eval_runs") == [(1,)]


def test_a_kind_with_its_own_rule_is_refused(eval_workspace, db_url):
    """HoC's label sets are read by the multilabel kind's own rule: the extraction rules,
    which pick one of a question's choices, do not apply to them."""
    args = ("eval", "-m", "tiny-medical-base", "-t", "hoc", "--mode", "generate", "--limit", "2")
    with ENGINES.temporarily("scripted", ScriptedEngine):
        assert invoke(eval_workspace, db_url, *args, "--engine", "scripted").exit_code == 0
    ((run_id,),) = sql_rows(db_url, "SELECT id FROM eval_runs")
    result = invoke(eval_workspace, db_url, "rescore", str(run_id), "-x", "lm-eval")
    assert result.exit_code == 2
    assert f"run {run_id} (hoc, multilabel) is parsed by its kind's own rule" in result.stderr
    assert sql_rows(db_url, "SELECT COUNT(*) FROM eval_runs") == [(1,)]
