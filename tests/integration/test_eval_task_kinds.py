"""Me-LLaMA's task kinds on the tiny model: every new spec, on its bundled sample, in every mode
it declares, through `medarena eval` and the per-item store; metrics recompute from storage."""

import json
import shutil
from pathlib import Path

import pytest

from medarena.evaluate.runner import compute_metrics
from medarena.evaluate.spec import load_benchmarks
from medarena.store import Store
from tests.conftest import REPO
from tests.helpers import invoke, sql_rows
from tests.seeded import BASE, PRETRAINED, QA_TASK, seed_database

# task -> the metrics its spec asks for (the runs add parse_failure_rate / truncated_items)
NEW_TASKS = {
    "mednli": ["acc", "macro_f1"],
    "bionli": ["acc", "macro_f1"],
    "ddi2013": ["macro_f1", "acc"],
    "mtsample": ["acc", "macro_f1"],
    "hoc": ["macro_f1", "micro_f1", "acc"],
    "emrqa": ["exact_match", "token_f1"],
    "i2b2_ner": ["strict_f1", "lenient_f1"],
}
RUNS = [
    (task, mode)
    for task in NEW_TASKS
    for mode in load_benchmarks(Path(__file__).resolve().parents[2])[task].scoring_modes
]


def _run(workspace: Path, db_url: str, task: str, mode: str) -> int:
    result = invoke(
        workspace, db_url, "eval", "-m", "tiny-medical-base", "-t", task, "--mode", mode
    )
    assert result.exit_code == 0, result.output
    ((run_id,),) = sql_rows(db_url, "SELECT id FROM eval_runs ORDER BY id DESC LIMIT 1")
    return run_id


@pytest.mark.slow
@pytest.mark.parametrize(("task", "mode"), RUNS)
def test_new_spec_evaluates_the_tiny_model_in_each_declared_mode(
    eval_workspace, db_url, task, mode
):
    run_id = _run(eval_workspace, db_url, task, mode)
    spec = load_benchmarks(eval_workspace)[task]
    with Store(db_url) as store:
        predictions = store.predictions(run_id)
        stored = {m.name: m for m in store.metrics(run_id)}
        recomputed = {m.name: m for m in compute_metrics(store, run_id, spec, mode)}
    assert len(predictions) == 6  # every bundled eval item, stored one by one
    assert set(NEW_TASKS[task]) <= stored.keys()
    for name in NEW_TASKS[task]:
        assert 0.0 <= stored[name].value <= 1.0
        assert stored[name].ci_low is not None and stored[name].ci_low <= stored[name].value
        assert recomputed[name].value == pytest.approx(stored[name].value)
    if mode == "generate":
        assert all(p.raw_output is not None for p in predictions)  # the raw output is kept
        assert "parse_failure_rate" in stored
    if task in ("hoc", "i2b2_ner"):
        assert all("f1_counts" in p.details for p in predictions)


def test_benchmarks_ls_lists_the_new_specs(eval_workspace, db_url):
    result = invoke(eval_workspace, db_url, "benchmarks", "ls")
    assert result.exit_code == 0, result.output
    assert "14 benchmark tasks" in result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    for task in NEW_TASKS:
        assert task in rows, task
    assert "ner" in rows["i2b2_ner"] and "me_llama_ner" in rows["i2b2_ner"]


def test_missing_credentialed_data_exits_2_naming_its_source(eval_workspace, db_url, tmp_path):
    spec = eval_workspace / "benchmarks"
    spec.unlink()  # a private copy of the shipped specs, to point `local` at an empty folder
    shutil.copytree(REPO / "benchmarks", spec)
    text = (spec / "i2b2_ner.yaml").read_text()
    missing = tmp_path / "i2b2" / "test.jsonl"
    (spec / "i2b2_ner.yaml").write_text(
        text.replace("~/medarena-data/i2b2_2012/test.jsonl", str(missing))
    )
    result = invoke(
        eval_workspace, db_url, "eval", "-m", "tiny-medical-base", "-t", "i2b2_ner",
        "--mode", "generate", "--data", "local",
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert f"{missing} is missing" in result.output
    assert "n2c2.dbmi.hms.harvard.edu/data-sets" in result.output
    assert not Path(db_url.removeprefix("sqlite:///")).exists()  # refused before the store


def test_compare_on_macro_f1_is_a_paired_bootstrap(tmp_path):
    url = seed_database(tmp_path)
    result = invoke(
        tmp_path, url, "compare", PRETRAINED, BASE, "-t", QA_TASK, "--metric", "macro_f1", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    # by hand over the seeded answers (a wrong answer is the next letter), classes A-D:
    # pretrained A 6/8, B 4/5, C 4/6, D 2/5; base A 2/6, B 2/6, C 4/7, D 2/5
    assert data["mean_a"] == pytest.approx((6 / 8 + 4 / 5 + 4 / 6 + 2 / 5) / 4)
    assert data["mean_b"] == pytest.approx((2 / 6 + 2 / 6 + 4 / 7 + 2 / 5) / 4)
    assert (data["wins"], data["losses"], data["ties"]) == (5, 2, 5)
    assert data["test"] == "paired bootstrap"
    assert data["ci_low"] <= data["difference"] <= data["ci_high"]
