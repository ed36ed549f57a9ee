"""The `medarena` command, as a user runs it: exit codes, messages, files left behind."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medarena.cli import app
from medarena.evaluate.runner import load_task_data
from medarena.evaluate.spec import load_benchmarks
from medarena.store.database import make_engine, upgrade
from tests.conftest import REPO

runner = CliRunner()


def medarena(workspace: Path, *args: str):
    return runner.invoke(app, ["--workspace", str(workspace), *args])


def test_help_and_models_ls_import_neither_torch_nor_the_store(workspace: Path):
    code = (
        "import sys\n"
        "from medarena.cli import app\n"
        f"sys.argv = ['medarena', '--workspace', {str(workspace)!r}, 'models', 'ls']\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "heavy = ('torch', 'transformers', 'deepspeed', 'vllm', 'sqlalchemy')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in result.stdout
    assert "tiny-medical-base" in result.stdout


def test_models_ls_and_show(workspace: Path):
    listing = medarena(workspace, "models", "ls", "--json")
    assert listing.exit_code == 0, listing.output
    families = json.loads(listing.stdout)
    assert len(families) >= 10
    assert "tiny-medical" in {family["name"] for family in families}
    assert sum(len(family["variants"]) for family in families) >= 20
    shown = medarena(workspace, "models", "show", "tiny-medical-base")
    data = json.loads(shown.stdout)
    assert data["family"] == "tiny-medical"
    assert data["lineage"] == ["tiny-medical-base"]
    missing = medarena(workspace, "models", "show", "gpt-9")
    assert missing.exit_code == 2
    assert "unknown model variant 'gpt-9'; known:" in missing.stderr


def test_validate_reports_located_problems(workspace: Path):
    assert medarena(workspace, "validate").exit_code == 0
    (workspace / "models" / "bad.yaml").write_text("name: bad\nvariants:\n  - {name: x\n")
    result = medarena(workspace, "validate")
    assert result.exit_code == 2
    assert "models/bad.yaml:" in result.stderr and "malformed YAML" in result.stderr


def test_missing_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["models", "ls"])
    assert result.exit_code == 2
    assert "no medarena workspace" in result.stderr


ADD = [
    "models",
    "add",
    "--name",
    "new-med",
    "--developer",
    "a lab",
    "--license",
    "mit",
    "--variant",
    "new-med-7b",
    "--params-b",
    "7",
    "--context-length",
    "4096",
    "--hub-id",
    "lab/new-med-7b",
    "--chat-template",
    "chatml",
    "--instruction-tuned",
]


def test_add_from_flags_then_duplicate_is_refused(workspace: Path):
    added = medarena(workspace, *ADD)
    assert added.exit_code == 0, added.output
    card = workspace / "models" / "new-med.yaml"
    assert "repo_id: lab/new-med-7b" in card.read_text()
    before = card.read_bytes()
    again = medarena(workspace, *ADD)
    assert again.exit_code == 2
    assert "family 'new-med' already exists" in again.stderr
    assert card.read_bytes() == before


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--params-b", "-7", "--params-b: Input should be greater than 0"),
        ("--chat-template", "nope", "--chat-template: unknown chat template 'nope'"),
        ("--name", "Bad Name", "--name: String should match pattern"),
    ],
)
def test_add_with_bad_flags_writes_nothing(workspace: Path, flag: str, value: str, message: str):
    args = list(ADD)
    args[args.index(flag) + 1] = value
    listing = sorted(p.name for p in (workspace / "models").iterdir())
    result = medarena(workspace, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert sorted(p.name for p in (workspace / "models").iterdir()) == listing


def test_add_from_a_malformed_file_names_the_line(workspace: Path, tmp_path: Path):
    card = tmp_path / "card.yaml"
    card.write_text(
        "name: x\ndisplay_name: X\ndeveloper: d\nlicense: mit\nvariants:\n"
        "  - name: x-1\n    params_b: [1\n"
    )
    result = medarena(workspace, "models", "add", "--file", str(card))
    assert result.exit_code == 2
    assert f"{card}:" in result.stderr and "malformed YAML" in result.stderr
    assert not (workspace / "models" / "x.yaml").exists()


def test_query_formats_and_refused_write(workspace: Path, tmp_path: Path):
    db = tmp_path / "q.db"
    assert medarena(workspace, "--db", str(db), "models", "sync").exit_code == 0
    sql = "SELECT name, context_length FROM model_variants WHERE name = 'tiny-medical-base'"
    as_json = medarena(workspace, "--db", str(db), "query", sql, "--format", "json")
    assert json.loads(as_json.stdout) == [{"name": "tiny-medical-base", "context_length": 2048}]
    as_csv = medarena(workspace, "--db", str(db), "query", sql, "--format", "csv")
    assert as_csv.stdout.splitlines() == ["name,context_length", "tiny-medical-base,2048"]

    before = hashlib.sha256(db.read_bytes()).hexdigest()
    refused = medarena(workspace, "--db", str(db), "query", "DELETE FROM model_variants")
    assert refused.exit_code == 2
    assert "DELETE statements are refused" in refused.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_db_with_older_schema_says_how_to_upgrade(workspace: Path, tmp_path: Path):
    db = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine, "0001")
    engine.dispose()
    behind = medarena(workspace, "--db", str(db), "models", "sync")
    assert behind.exit_code == 1
    assert "older schema" in behind.stderr and "medarena db upgrade" in behind.stderr
    upgraded = medarena(workspace, "--db", str(db), "db", "upgrade")
    assert upgraded.exit_code == 0 and "0001 -> 0010" in upgraded.stdout
    assert medarena(workspace, "--db", str(db), "models", "sync").exit_code == 0


SPECS = load_benchmarks(REPO)
TASKS = sorted(SPECS)  # every bundled task: Me-LLaMA's twelve, MMLU-Medical, MedQA 5-option
# (task, scoring mode) pairs the demo evaluates every variant on, in the order of the query below
DEMO_RUNS = [(task, mode) for task in TASKS for mode in sorted(SPECS[task].scoring_modes)]
# items in each bundled sample
SAMPLE_ITEMS = {task: len(load_task_data(SPECS[task], REPO).items) for task in TASKS}


def paired(workspace: Path, a: str, b: str, task: str, mode: str) -> dict:
    result = medarena(workspace, "compare", a, b, "-t", task, "--mode", mode, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def metric(workspace: Path, variant: str, task: str, mode: str, name: str) -> float:
    result = medarena(
        workspace,
        "query",
        "SELECT m.value FROM metrics m JOIN eval_runs r ON r.id = m.eval_run_id "
        "JOIN model_variants v ON v.id = r.variant_id JOIN tasks t ON t.id = r.task_id "
        f"WHERE v.name = '{variant}' AND t.name = '{task}' AND r.scoring_mode = '{mode}' "
        f"AND m.name = '{name}'",
        "--format",
        "json",
    )
    return json.loads(result.stdout)[0]["value"]


def assert_the_demo_shows_what_each_stage_does(workspace: Path) -> None:
    """README, "What the demo shows": continual pretraining on the key facts raises cloze
    accuracy over the base, instruction tuning raises generate-mode accuracy and removes parse
    failures, each by an exact McNemar test on the paired items. (Thresholds leave room for a
    machine whose CPU arithmetic moves a few items; this one gives p <= 0.031 everywhere.)"""
    multiple_choice = ["medmcqa", "medqa_4options", "medqa_5options", "mmlu_medical"]
    pretraining = [
        paired(workspace, "tiny-medical-base-tiny-demo", "tiny-medical-base", task, "cloze")
        for task in multiple_choice
    ]
    assert all(p["difference"] > 0 for p in pretraining), pretraining
    assert sum(p["p_value"] < 0.05 for p in pretraining) >= 3, pretraining
    assert sum(p["difference"] for p in pretraining) / 4 >= 0.15
    tuning = [
        paired(workspace, "tiny-medical-chat", "tiny-medical-base", task, "generate")
        for task in [*multiple_choice, "pubmedqa"]
    ]
    assert all(p["difference"] > 0 for p in tuning), tuning
    assert sum(p["p_value"] < 0.05 for p in tuning) >= 4, tuning
    for task in [*multiple_choice, "pubmedqa"]:
        tuned = metric(workspace, "tiny-medical-chat", task, "generate", "parse_failure_rate")
        base = metric(workspace, "tiny-medical-base", task, "generate", "parse_failure_rate")
        assert tuned <= 0.05 and base >= 0.5, (task, tuned, base)


def test_demo_builds_trains_evaluates_and_reuses(workspace: Path):
    for folder in ("benchmarks", "pretrain", "instruct"):
        (workspace / folder).symlink_to(REPO / folder)
    first = medarena(workspace, "demo")  # the real recipes: about 2 minutes on 2 cores
    assert first.exit_code == 0, first.output
    for task in TASKS:
        assert task in first.stdout
    assert first.stdout.count("(stored)") == 0
    assert "open the dashboard: medarena dashboard --db sqlite:" in first.stdout
    assert "registered tiny-medical-base-tiny-demo (parent tiny-medical-base)" in first.stdout
    assert (
        "registered tiny-medical-chat, tiny-medical-chat-adapter (parent "
        "tiny-medical-base-tiny-demo)" in first.stdout
    )
    # the summary: leaderboard, then the two paired comparisons on every multiple-choice task
    assert "leaderboard: 0-shot" in first.stdout
    assert "pretraining: option-text likelihood" in first.stdout
    assert "instruction tuning: tiny-medical-chat (A) vs tiny-medical-base (B)" in first.stdout
    assert first.stdout.count("McNemar") >= 2 * 5 - 1  # cloze x 4 tasks, generate x 5
    assert_the_demo_shows_what_each_stage_does(workspace)
    # summaries also carry BARTScore on the tiny BART: a mean token log-prob, below zero
    for task in ("mimic_cxr_summarization", "pubmed_summarization"):
        assert metric(workspace, "tiny-medical-chat", task, "generate", "bartscore") < 0
    built = workspace / ".medarena" / "models" / "tiny-medical-base" / "model.safetensors"
    stamp = built.stat().st_mtime_ns
    second = medarena(workspace, "demo")
    assert second.exit_code == 0
    assert built.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert "tiny-medical-base" in second.stdout
    count = medarena(
        workspace, "query", "SELECT count(*) AS n FROM model_variants", "--format", "json"
    )
    assert json.loads(count.stdout)[0]["n"] >= 1
    assert second.stdout.count("already trained and registered: reused") == 2
    assert second.stdout.count("(stored)") == 3 * len(DEMO_RUNS)  # evaluated once, shown twice
    runs = medarena(
        workspace,
        "query",
        "SELECT v.name AS variant, t.name AS task, r.scoring_mode AS mode, r.status, r.n_items "
        "FROM eval_runs r JOIN tasks t ON t.id = r.task_id JOIN model_variants v "
        "ON v.id = r.variant_id ORDER BY v.name, t.name, r.scoring_mode",
        "--format",
        "json",
    )
    assert json.loads(runs.stdout) == [
        {
            "variant": variant,
            "task": task,
            "mode": mode,
            "status": "completed",
            "n_items": SAMPLE_ITEMS[task],
        }
        for variant in ("tiny-medical-base", "tiny-medical-base-tiny-demo", "tiny-medical-chat")
        for task, mode in DEMO_RUNS
    ]
    training = medarena(
        workspace, "query", "SELECT kind, status FROM training_runs ORDER BY id", "--format", "json"
    )
    assert json.loads(training.stdout) == [
        {"kind": "pretrain", "status": "completed"},
        {"kind": "instruct", "status": "completed"},
    ]  # trained once, reused on the second run
    templates = medarena(
        workspace,
        "query",
        "SELECT DISTINCT json_extract(r.config, '$.chat_template') AS template FROM eval_runs r "
        "JOIN model_variants v ON v.id = r.variant_id WHERE v.name = 'tiny-medical-chat'",
        "--format",
        "json",
    )
    assert json.loads(templates.stdout) == [{"template": "chatml"}]  # evaluated in its format
    curve = medarena(
        workspace,
        "query",
        "SELECT s.step, s.loss FROM training_steps s JOIN training_runs r "
        "ON r.id = s.training_run_id WHERE r.kind = 'pretrain' ORDER BY s.step",
        "--format",
        "json",
    )
    losses = [row["loss"] for row in json.loads(curve.stdout)]
    assert len(losses) == 800 and sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5  # it learns


def test_schema_command():
    result = runner.invoke(app, ["schema", "model-family"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "variants" in schema["properties"] and schema["additionalProperties"] is False
    unknown = runner.invoke(app, ["schema", "recipe"])
    assert unknown.exit_code == 2 and "known: model-family" in unknown.stderr


def test_add_from_file_reports_registry_problems_at_the_files_own_lines(workspace, tmp_path):
    card = tmp_path / "card.yaml"
    card.write_text(
        "name: x\ndisplay_name: X\ndeveloper: d\nlicense: mit\nvariants:\n"
        "  - name: x-1\n    params_b: 1\n    context_length: 2048\n"
        "    source: {kind: hub, repo_id: org/x-1}\n    chat_template: nope\n"
        "    parent: ghost\n"
    )
    result = medarena(workspace, "models", "add", "--file", str(card))
    assert result.exit_code == 2
    assert f"{card}:10: variants[0].chat_template: unknown chat template 'nope'" in result.stderr
    assert f"{card}:11: variants[0].parent: unknown parent variant 'ghost'" in result.stderr
    assert not (workspace / "models" / "x.yaml").exists()
    added = medarena(workspace, "models", "add", "--file", str(card.with_name("ok.yaml")))
    assert added.exit_code == 2 and "cannot read" in added.stderr
