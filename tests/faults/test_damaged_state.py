"""State damaged on disk: a checkpoint that `latest` names but that is half-written or missing,
and the truncated weights of a registered local variant. Resuming or evaluating is refused
with a message naming the file, a non-zero exit, and the store as it was."""

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.faults.faults import dump
from tests.helpers import invoke, training_killed_at_step
from tests.integration.test_pretrain_run import RECIPE as PRETRAIN_RECIPE

TRAIN = ["train", "pretrain", "-r", "ckpt", "-m", "tiny-medical-base", "--output", "ckpt"]


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A DeepSpeed pretraining run killed after step 3; its `latest` is step 2."""
    from tests.conftest import copy_models

    root = tmp_path_factory.mktemp("ckpt")
    workspace = root / "ws"
    copy_models(workspace)
    (workspace / "benchmarks").symlink_to(REPO / "benchmarks")
    shutil.copytree(REPO / "pretrain", workspace / "pretrain")
    (workspace / "pretrain/ckpt.yaml").write_text(
        PRETRAIN_RECIPE.format(name="ckpt", stage=2, steps=4).replace(
            "checkpoint_every: 4", "checkpoint_every: 1"
        )
    )
    models = workspace / ".medarena/models"
    models.mkdir(parents=True)
    (models / "tiny-medical-base").symlink_to(tiny_model_dir)
    db_url = f"sqlite:///{root / 'store.db'}"
    with training_killed_at_step("medarena.pretrain.train", 3, root):
        killed = invoke(workspace, db_url, *TRAIN)
    assert killed.exit_code == 1, killed.output
    return root


@pytest.fixture
def resumable(killed_run: Path, tmp_path: Path) -> tuple[Path, str, Path]:
    shutil.copytree(killed_run / "ws", tmp_path / "ws", symlinks=True)
    shutil.copy(killed_run / "store.db", tmp_path / "store.db")
    checkpoints = tmp_path / "ws/.medarena/runs/ckpt/checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step0000002"
    return tmp_path / "ws", f"sqlite:///{tmp_path / 'store.db'}", checkpoints


def half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", ["truncated-model", "truncated-optimizer", "missing-tag"])
def test_damaged_checkpoint_is_named_on_resume_and_the_store_untouched(resumable, damage):
    workspace, db_url, checkpoints = resumable
    tag = checkpoints / "step0000002"
    if damage == "missing-tag":
        shutil.rmtree(tag)
        named = "names checkpoint 'step0000002', which does not exist"
    else:
        pattern = "*model_states.pt" if damage == "truncated-model" else "*optim_states.pt"
        (target,) = tag.glob(pattern)
        half(target)
        named = f"checkpoint file {target} is damaged"
    before = dump(db_url)
    result = invoke(workspace, db_url, *TRAIN)
    assert result.exit_code == 2, result.output
    assert named in result.stderr and "earlier checkpoints: step0000001" in result.stderr
    assert dump(db_url) == before

    if damage != "truncated-model":
        return
    # the remedy the message gives works: resume from the earlier checkpoint
    (checkpoints / "latest").write_text("step0000001")
    if tag.exists():
        shutil.rmtree(tag)
    resumed = invoke(workspace, db_url, *TRAIN)
    assert resumed.exit_code == 0, resumed.output


def test_truncated_weights_of_a_local_variant_are_named_and_the_store_untouched(
    eval_workspace, tmp_path
):
    folder = eval_workspace / ".medarena/models/broken"
    shutil.copytree(eval_workspace / ".medarena/models/tiny-medical-base", folder)
    half(folder / "model.safetensors")
    card = yaml.safe_load((eval_workspace / "models/tiny-medical.yaml").read_text())
    variant = card["variants"][0] | {
        "name": "broken-local",
        "source": {"kind": "local", "path": ".medarena/models/broken"},
    }
    card |= {"name": "broken", "display_name": "Broken", "variants": [variant]}
    (eval_workspace / "models/broken.yaml").write_text(yaml.safe_dump(card))
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    done = invoke(
        eval_workspace, db_url, "eval", "-m", "tiny-medical-base", "-t", "pubmedqa", "--limit", "2"
    )
    assert done.exit_code == 0, done.output
    before = dump(db_url)
    result = invoke(
        eval_workspace, db_url, "eval", "-m", "broken-local", "-t", "pubmedqa", "--limit", "2"
    )
    assert result.exit_code != 0, result.output
    assert str(folder / "model.safetensors") in result.stderr or str(folder) in result.stderr, (
        result.stderr
    )
    after = dump(db_url)
    for table in ("eval_runs", "predictions", "metrics", "training_runs", "tasks"):
        assert after[table] == before[table], table
