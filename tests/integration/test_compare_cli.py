"""`medarena compare` on a seeded SQLite file: the paired figures, errors and exit codes."""

import json
from pathlib import Path

import pytest

from medarena.compare import bootstrap_ci
from tests.helpers import invoke
from tests.seeded import BASE, CORRECT, PRETRAINED, QA_TASK, ROUGE_L, SUM_TASK, seed_database


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("compare")
    return root, seed_database(root)


def test_compare_qa_json(seeded):
    root, url = seeded
    result = invoke(root, url, "compare", PRETRAINED, BASE, "--task", QA_TASK, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["n"], data["wins"], data["losses"], data["ties"]) == (12, 5, 2, 5)
    assert data["p_value"] == pytest.approx(0.453125)  # 2 * (1 + 7 + 21) / 2^7
    assert data["mean_a"] == pytest.approx(8 / 12) and data["mean_b"] == pytest.approx(5 / 12)
    differences = [a - b for a, b in zip(CORRECT[PRETRAINED], CORRECT[BASE], strict=True)]
    assert (data["ci_low"], data["ci_high"]) == pytest.approx(bootstrap_ci(differences))
    assert data["test"] == "exact McNemar" and data["scoring_mode"] == "loglik"


def test_compare_uses_the_latest_run(seeded):
    # base has an older run with 3/12 correct; the comparison must use the 5/12 one
    root, url = seeded
    data = json.loads(
        invoke(root, url, "compare", BASE, PRETRAINED, "-t", QA_TASK, "--json").stdout
    )
    assert data["mean_a"] == pytest.approx(5 / 12)
    assert (data["wins"], data["losses"]) == (2, 5)


def test_compare_summarization_defaults_to_rouge_l(seeded):
    root, url = seeded
    result = invoke(root, url, "compare", PRETRAINED, BASE, "--task", SUM_TASK, "--json")
    data = json.loads(result.stdout)
    assert data["metric"] == "rouge_l" and data["test"] == "exact sign test"
    assert (data["wins"], data["losses"], data["ties"]) == (3, 1, 0)
    expected = sum(ROUGE_L[PRETRAINED]) / 4 - sum(ROUGE_L[BASE]) / 4
    assert data["difference"] == pytest.approx(expected)


def test_compare_bertscore_table(seeded):
    root, url = seeded
    result = invoke(
        root, url, "compare", PRETRAINED, BASE, "-t", SUM_TASK, "--metric", "bertscore_f1"
    )
    assert result.exit_code == 0, result.output
    assert "bertscore_f1" in result.stdout and "exact sign test" in result.stdout
    assert "0.8375" in result.stdout  # mean of 0.85, 0.86, 0.80, 0.84


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([PRETRAINED, "nope", "-t", QA_TASK], "variant 'nope' is not in the store"),
        ([PRETRAINED, BASE, "-t", "pubmedqa"], "no completed runs of both variants on 'pubmedqa'"),
        ([PRETRAINED, BASE, "-t", QA_TASK, "--mode", "generate"], "setting (mode generate):"),
        ([PRETRAINED, BASE, "-t", QA_TASK, "--shots", "0", "--mode", "x"], "(mode x, 0-shot)"),
        ([PRETRAINED, BASE, "-t", QA_TASK, "--metric", "rouge_l"], "no per-item 'rouge_l'"),
    ],
)
def test_compare_refuses_with_a_reason(seeded, args, message):
    root, url = seeded
    result = invoke(root, url, "compare", *args)
    assert result.exit_code == 2
    assert message in result.stderr


def test_compare_on_a_missing_database_fails_cleanly(tmp_path, workspace):
    result = invoke(workspace, f"sqlite:///{tmp_path / 'none.db'}", "compare", "a", "b", "-t", "x")
    assert result.exit_code == 1
    assert "is empty: run `medarena db upgrade`" in result.stderr


def test_dashboard_outside_a_checkout_is_refused(workspace, db_url):
    # a workspace with models/ but no dashboard/: nothing to serve
    result = invoke(workspace, db_url, "dashboard", "--port", "8599")
    assert result.exit_code == 2
    assert f"{workspace / 'dashboard' / 'app.py'} not found" in result.stderr
