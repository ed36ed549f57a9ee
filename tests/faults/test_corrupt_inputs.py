"""Corrupted inputs: a truncated last line, bytes that are not UTF-8 and a record without a
required field, in a benchmark file, a pretraining corpus and an instruction set; recipes with
wrong types; a --db that is not a database. Each is refused with a message naming the file (and
line and field where there is one), a non-zero exit, and the store exactly as it was (every
table, or the file's bytes)."""

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_models
from tests.faults.faults import dump
from tests.helpers import invoke
from tests.integration.test_instruct_run import recipe as instruct_recipe
from tests.integration.test_pretrain_run import RECIPE as PRETRAIN_RECIPE

BENCH = "benchmarks/samples/medqa_4options/test.jsonl"
CORPUS = "pretrain/samples/guidelines/guidelines.jsonl"
INSTRUCT = "instruct/samples/memorise/tiny_set.jsonl"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A workspace with its own copies of the data and a store holding one evaluation, built
    once; each test works on a copy."""
    root = tmp_path_factory.mktemp("corrupt")
    workspace = root / "ws"
    copy_models(workspace)
    for folder in ("benchmarks", "pretrain", "instruct"):
        shutil.copytree(REPO / folder, workspace / folder)
    models = workspace / ".medarena/models"
    models.mkdir(parents=True)
    (models / "tiny-medical-base").symlink_to(tiny_model_dir)
    (workspace / "pretrain/ci.yaml").write_text(PRETRAIN_RECIPE.format(name="ci", stage=2, steps=2))
    (workspace / "instruct/ci.yaml").write_text(
        instruct_recipe("ci", steps=2, deepspeed="false", batch=4)
    )
    db_url = f"sqlite:///{root / 'store.db'}"
    done = invoke(
        workspace, db_url, "eval", "-m", "tiny-medical-base", "-t", "pubmedqa", "--limit", "4"
    )
    assert done.exit_code == 0, done.output
    return root


@pytest.fixture
def populated(template: Path, tmp_path: Path) -> tuple[Path, str]:
    shutil.copytree(template / "ws", tmp_path / "ws", symlinks=True)
    shutil.copy(template / "store.db", tmp_path / "store.db")
    return tmp_path / "ws", f"sqlite:///{tmp_path / 'store.db'}"


def truncate_last_line(path: Path) -> int:
    data = path.read_bytes().rstrip(b"\n")
    cut = data.rfind(b"\n") + 1
    path.write_bytes(data[: cut + (len(data) - cut) // 2])  # the last record, cut in half
    return data.count(b"\n") + 1


def break_utf8(path: Path, line: int = 3) -> int:
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = lines[line - 1].replace(b'": "', b'": "\xff\xfe', 1)
    path.write_bytes(b"\n".join(lines))
    return line


def drop_field(path: Path, field: str, line: int = 2) -> int:
    lines = path.read_text().split("\n")
    record = json.loads(lines[line - 1])
    del record[field]
    lines[line - 1] = json.dumps(record)
    path.write_text("\n".join(lines))
    return line


COMMANDS = {
    "benchmark": ["eval", "-m", "tiny-medical-base", "-t", "medqa_4options"],
    "corpus": ["train", "pretrain", "-r", "ci", "-m", "tiny-medical-base"],
    "instruct": ["train", "instruct", "-r", "ci", "-m", "tiny-medical-base"],
}
FILES = {"benchmark": BENCH, "corpus": CORPUS, "instruct": INSTRUCT}
MISSING = {"benchmark": "question", "corpus": "clean_text", "instruct": "output"}


@pytest.mark.parametrize("kind", ["benchmark", "corpus", "instruct"])
@pytest.mark.parametrize("damage", ["truncated", "not-utf8", "missing-field"])
def test_damaged_data_file_is_named_and_the_store_untouched(populated, kind, damage):
    workspace, db_url = populated
    path = workspace / FILES[kind]
    if damage == "truncated":
        line, expected = truncate_last_line(path), "malformed JSON"
    elif damage == "not-utf8":
        line, expected = break_utf8(path), "UTF-8"
    else:
        line, expected = drop_field(path, MISSING[kind]), MISSING[kind]
    before = dump(db_url)
    result = invoke(workspace, db_url, *COMMANDS[kind])
    assert result.exit_code == 2, result.output
    assert f"{path}:{line}" in result.stderr or f"{FILES[kind]}:{line}" in result.stderr, (
        result.stderr
    )
    assert expected in result.stderr, result.stderr
    assert dump(db_url) == before
    assert not (workspace / ".medarena/runs").exists() or not any(
        (workspace / ".medarena/runs").iterdir()
    )


@pytest.mark.parametrize(
    ("kind", "old", "new", "field"),
    [
        ("pretrain", "max_steps: 2", "max_steps: many", "max_steps"),
        ("pretrain", "sequence_length: 64", "sequence_length: [64]", "sequence_length"),
        ("instruct", "r: 16", "r: sixteen", "lora.r"),
        ("instruct", "epochs: 100", "epochs: {a: 1}", "epochs"),
    ],
)
def test_recipe_with_wrong_types_is_named_and_the_store_untouched(populated, kind, old, new, field):
    workspace, db_url = populated
    recipe = workspace / kind / "ci.yaml"
    assert old in recipe.read_text()
    recipe.write_text(recipe.read_text().replace(old, new))
    before = dump(db_url)
    result = invoke(workspace, db_url, "train", kind, "-r", "ci", "-m", "tiny-medical-base")
    assert result.exit_code == 2, result.output
    assert f"{kind}/ci.yaml:" in result.stderr and field in result.stderr, result.stderr
    assert dump(db_url) == before


@pytest.mark.parametrize("content", [b"my notes, not a database\n" * 300, bytes(range(256)) * 64])
@pytest.mark.parametrize(
    "command",
    [
        ["eval", "-m", "tiny-medical-base", "-t", "pubmedqa", "--limit", "2"],
        ["query", "SELECT COUNT(*) FROM eval_runs"],
        ["models", "sync"],
        ["db", "upgrade"],
        ["results"],
        ["train", "pretrain", "-r", "ci", "-m", "tiny-medical-base"],
    ],
)
def test_db_that_is_not_a_database_is_refused_and_left_alone(populated, tmp_path, content, command):
    workspace, _ = populated
    path = tmp_path / "not-a.db"
    path.write_bytes(content)
    result = invoke(workspace, str(path), *command)
    assert result.exit_code != 0, result.output
    assert str(path) in result.stderr and "database" in result.stderr, result.stderr
    assert path.read_bytes() == content
    assert not list(tmp_path.glob("not-a.db-*"))  # no -wal / -shm / -journal beside it
