"""`medarena train pretrain` (DeepSpeed ZeRO-2) and `medarena train instruct` (LoRA, plain loop)
killed with SIGKILL at seeded points of one run: after a step, after a checkpoint's metrics,
mid-checkpoint (a half-written file; every file but `latest`), after the export, mid-merge,
after the registry card, after the store's close. Each time the same command is run again;
at the end there is one training run, completed, every step once, both registered once."""

import shutil
from pathlib import Path

import pytest

from medarena.registry import load_registry
from tests.conftest import REPO
from tests.faults.faults import (
    RANK_PHASES,
    orphans,
    rank_killed_at,
    rows,
    train_kill_points,
    train_process,
)
from tests.helpers import invoke
from tests.integration.test_instruct_run import recipe as instruct_recipe
from tests.integration.test_pretrain_run import RECIPE as PRETRAIN_RECIPE

STEPS, EVERY = 8, 2


def run_until_done(workspace, db_url, args, points, folder):
    """Run the command killed at each point in turn, then once more without a fault. Kills in
    the training process run the command here; kills of the command itself, in a child."""
    for point in points:
        if point.partition(":")[0] in RANK_PHASES or point == "export":
            with rank_killed_at(point, folder):
                result = invoke(workspace, db_url, *args)
            assert result.exit_code == 1, (point, result.output)
            assert "run the same command again" in result.stderr
        else:
            process = train_process(
                ["--workspace", str(workspace), "--db", db_url, *args], point, folder
            )
            _, err = process.communicate(timeout=600)
            assert process.returncode == -9, (point, process.returncode, err[-3000:])
    result = invoke(workspace, db_url, *args)
    assert result.exit_code == 0, result.output


def check_store(db_url: str, outputs: list[str], kind: str) -> None:
    assert orphans(db_url) == {}
    assert rows(db_url, "SELECT kind, status, tokens_seen > 0 FROM training_runs") == [
        (kind, "completed", 1)
    ]
    steps = rows(db_url, "SELECT step FROM training_steps ORDER BY step")
    assert steps == [(step,) for step in range(1, STEPS + 1)]
    produced = rows(
        db_url,
        "SELECT v.name, v.produced_by_run_id FROM model_variants v "
        "WHERE v.produced_by_run_id IS NOT NULL ORDER BY v.name",
    )
    assert produced == [(name, 1) for name in sorted(outputs)]


@pytest.fixture
def workspace_with_recipes(eval_workspace: Path) -> Path:
    shutil.copytree(REPO / "pretrain", eval_workspace / "pretrain")
    shutil.copytree(REPO / "instruct", eval_workspace / "instruct")
    (eval_workspace / "pretrain/fault-z2.yaml").write_text(
        PRETRAIN_RECIPE.format(name="fault-z2", stage=2, steps=STEPS).replace(
            "checkpoint_every: 4", f"checkpoint_every: {EVERY}"
        )
    )
    (eval_workspace / "instruct/fault-plain.yaml").write_text(
        instruct_recipe("fault-plain", steps=STEPS, deepspeed="false", batch=8).replace(
            "checkpoint_every: 4", f"checkpoint_every: {EVERY}"
        )
    )
    return eval_workspace


def test_pretraining_killed_at_seeded_points_completes_one_run(
    workspace_with_recipes, tmp_path, fault_rng
):
    db_url = f"sqlite:///{tmp_path / 'train.db'}"
    points = train_kill_points(fault_rng, STEPS, EVERY, 2)
    print("kill points:", points)
    args = ["train", "pretrain", "-r", "fault-z2", "-m", "tiny-medical-base", "--output", "pt"]
    run_until_done(workspace_with_recipes, db_url, args, points, tmp_path)
    check_store(db_url, ["pt"], "pretrain")
    assert load_registry(workspace_with_recipes).variant("pt").variant.parent == "tiny-medical-base"


def test_lora_killed_at_seeded_points_completes_one_run(
    workspace_with_recipes, tmp_path, fault_rng
):
    db_url = f"sqlite:///{tmp_path / 'tune.db'}"
    points = train_kill_points(fault_rng, STEPS, EVERY, 2, lora=True)
    print("kill points:", points)
    args = ["train", "instruct", "-r", "fault-plain", "-m", "tiny-medical-base", "--output", "chat"]
    run_until_done(workspace_with_recipes, db_url, args, points, tmp_path)
    check_store(db_url, ["chat", "chat-adapter"], "instruct")
    registry = load_registry(workspace_with_recipes)
    assert registry.variant("chat-adapter").variant.source.kind == "adapter"
    merged = workspace_with_recipes / ".medarena/runs/chat/merged"
    assert (merged / "model.safetensors").is_file()
    assert not list(merged.parent.glob(".merged.merge-*"))  # no staging folder left behind
