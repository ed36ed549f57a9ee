"""The runner as a user meets it: resumable after a hard kill, one result per item, bad input
refused with a message that says where, and an explicit truncation policy."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medarena.cli import app
from medarena.evaluate.engines import load_engine
from medarena.evaluate.engines.hf import HFEngine
from medarena.evaluate.runner import EvalOptions, evaluate
from medarena.evaluate.spec import load_benchmarks
from medarena.registry import load_registry
from medarena.store import Store
from tests.helpers import invoke as medarena
from tests.helpers import runner
from tests.helpers import sql_rows as rows

DIE_ON_THIRD_CHUNK = """
import os, signal, sys
from medarena.evaluate.engines.hf import HFEngine

original, calls = HFEngine.loglikelihood, []

def dying(self, requests, progress=None):
    calls.append(len(requests))
    if len(calls) == 3:  # a hard kill in the middle of the third chunk
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, requests, progress)

HFEngine.loglikelihood = dying
from medarena.cli import app
app(sys.argv[1:])
"""

EVAL_TINY = ["eval", "-m", "tiny-medical-base"]


def test_killed_run_resumes_to_exactly_one_result_per_item(eval_workspace, tmp_path):
    killed_db = f"sqlite:///{tmp_path / 'killed.db'}"
    args = [
        "--workspace",
        str(eval_workspace),
        "--db",
        killed_db,
        "eval",
        "-m",
        "tiny-medical-base",
        "-t",
        "medqa_4options",
        "--chunk-size",
        "8",
    ]
    script = tmp_path / "die.py"
    script.write_text(DIE_ON_THIRD_CHUNK)
    killed = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert rows(killed_db, "SELECT status FROM eval_runs") == [("running",)]
    assert rows(killed_db, "SELECT COUNT(*) FROM predictions") == [(16,)]  # two whole chunks

    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert "(resumed)" in resumed.stdout
    assert rows(killed_db, "SELECT status, n_items FROM eval_runs") == [("completed", 40)]
    assert rows(killed_db, "SELECT COUNT(DISTINCT item_id), COUNT(*) FROM predictions") == [
        (40, 40)
    ]

    fresh_db = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert medarena(eval_workspace, fresh_db, *EVAL_TINY, "-t", "medqa_4options").exit_code == 0
    per_item = "SELECT item_id, parsed_answer, correct, prompt_hash FROM predictions ORDER BY 1"
    assert rows(killed_db, per_item) == rows(fresh_db, per_item)
    metrics = "SELECT name, value, ci_low, ci_high, n FROM metrics ORDER BY name"
    assert rows(killed_db, metrics) == rows(fresh_db, metrics)

    again = medarena(eval_workspace, killed_db, *EVAL_TINY, "-t", "medqa_4options")
    assert again.exit_code == 0 and "(stored)" in again.stdout
    assert rows(killed_db, "SELECT COUNT(*) FROM eval_runs") == [(1,)]
    rerun = medarena(eval_workspace, killed_db, *EVAL_TINY, "-t", "medqa_4options", "--rerun")
    assert rerun.exit_code == 0 and "(stored)" not in rerun.stdout
    assert rows(killed_db, "SELECT COUNT(*), SUM(n_items) FROM eval_runs") == [(2, 80)]


@pytest.mark.parametrize(
    ("stop", "status"),
    [(KeyboardInterrupt, "interrupted"), (SystemExit, "interrupted"), (RuntimeError, "failed")],
)
def test_a_stop_or_a_failure_marks_the_run_and_keeps_whole_chunks(
    eval_workspace, db_url, monkeypatch, stop, status
):
    registry, tasks = load_registry(eval_workspace), load_benchmarks(eval_workspace)
    entry = registry.variant("tiny-medical-base")
    calls = []
    original = HFEngine.loglikelihood

    def stopped(self, requests, progress=None):
        calls.append(1)
        if len(calls) == 2:
            raise stop("in the second chunk")
        return original(self, requests, progress)

    monkeypatch.setattr(HFEngine, "loglikelihood", stopped)
    with Store(db_url) as store:
        store.sync_registry(registry)
        with pytest.raises(stop):
            evaluate(
                store,
                registry,
                entry.variant.name,
                tasks["pubmedqa"],
                EvalOptions(chunk_size=10),
                lambda: load_engine("hf", registry, entry),
            )
    assert rows(db_url, "SELECT status FROM eval_runs") == [(status,)]
    assert rows(db_url, "SELECT COUNT(*) FROM predictions") == [(10,)]


REFUSED = [
    (["-t", "medqa"], ["unknown benchmark task 'medqa'", "medqa_4options", "pubmedqa"]),
    (["-m", "meditron-7", "-t", "pubmedqa"], ["unknown model variant", "meditron-7b"]),
    (["-t", "pubmed_summarization", "--mode", "loglik"], ["scoring modes ['generate']"]),
    (["-t", "pubmed_summarization", "--shots", "5"], ["5-shot needs 5 demonstrations"]),
    (["-t", "pubmedqa", "--mode", "generate", "--samples", "3"], ["temperature"]),
    (["-t", "pubmedqa", "--engine", "tgi"], ["unknown engine 'tgi'"]),
]


@pytest.mark.parametrize(("args", "messages"), REFUSED)
def test_unknown_names_and_impossible_settings_are_refused(eval_workspace, db_url, args, messages):
    model = [] if "-m" in args else ["-m", "tiny-medical-base"]
    result = medarena(eval_workspace, db_url, "eval", *model, *args)
    assert result.exit_code == 2
    for message in messages:
        assert message in result.stderr
    # refused before anything is written: no database at all, or one without runs
    database = Path(db_url.removeprefix("sqlite:///"))
    assert not database.exists() or rows(db_url, "SELECT COUNT(*) FROM eval_runs") == [(0,)]


def test_malformed_sample_line_is_named(eval_workspace, db_url):
    benchmarks = eval_workspace / "benchmarks"
    benchmarks.unlink()
    shutil.copytree(Path(__file__).resolve().parents[2] / "benchmarks", benchmarks)
    sample = benchmarks / "samples/medmcqa/validation.jsonl"
    lines = sample.read_text().splitlines()
    lines[6] = lines[6][:-5]  # cut the end of line 7
    sample.write_text("\n".join(lines) + "\n")
    result = medarena(eval_workspace, db_url, *EVAL_TINY, "-t", "medmcqa")
    assert result.exit_code == 2
    assert f"{sample}:7: malformed JSON line" in result.stderr
    assert not Path(db_url.removeprefix("sqlite:///")).exists()  # refused before the store opens


def test_prompt_over_the_context_is_cut_by_policy_and_recorded(eval_workspace, db_url):
    card = eval_workspace / "models/tiny-medical.yaml"
    card.write_text(card.read_text().replace("context_length: 2048", "context_length: 96"))
    refused = medarena(
        eval_workspace, db_url, *EVAL_TINY, "-t", "pubmedqa", "--truncation", "error"
    )
    assert refused.exit_code == 2 and "the model's context is 96" in refused.stderr

    cut = medarena(eval_workspace, db_url, *EVAL_TINY, "-t", "pubmedqa")
    assert cut.exit_code == 0, cut.output
    truncated = rows(
        db_url,
        "SELECT COUNT(*) FROM predictions WHERE json_extract(details, '$.truncated_tokens') > 0",
    )
    assert truncated == [(40,)]  # every PubMedQA abstract is longer than 96 tokens
    assert rows(db_url, "SELECT value FROM metrics WHERE name = 'truncated_items'") == [(40.0,)]
    config = rows(
        db_url,
        "SELECT json_extract(config, '$.truncation') FROM eval_runs WHERE status = 'completed'",
    )
    assert config == [("left",)]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ question.__class__ }}", "refused by the sandbox: access to attribute '__class__'"),
        ("{{ questoin }}", "failed: 'questoin' is undefined"),
    ],
)
def test_a_prompt_the_sandbox_stops_names_the_spec_and_its_template(
    eval_workspace, db_url, template, message
):
    benchmarks = eval_workspace / "benchmarks"
    benchmarks.unlink()
    shutil.copytree(Path(__file__).resolve().parents[2] / "benchmarks", benchmarks)
    spec = benchmarks / "medqa_4options.yaml"
    text = spec.read_text()
    assert text.count("Question: {{ question }}") == 2  # the prompt and the cloze prompt
    spec.write_text(text.replace("Question: {{ question }}", f"Question: {template}", 1))
    result = medarena(eval_workspace, db_url, *EVAL_TINY, "-t", "medqa_4options")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    headline, problem = result.stderr.strip().splitlines()  # nothing else
    assert headline == "error: a benchmark prompt cannot be rendered (1 problem(s)):"
    assert problem.startswith("  benchmarks/medqa_4options.yaml: prompt: rendering item ")
    assert message in problem
    database = Path(db_url.removeprefix("sqlite:///"))
    assert not database.exists() or rows(db_url, "SELECT COUNT(*) FROM eval_runs") == [(0,)]
