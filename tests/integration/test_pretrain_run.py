"""Continual pretraining for real on the tiny model: DeepSpeed ZeRO-2 and ZeRO-3 on CPU over
gloo, one process and two, checkpoint + resume after SIGKILL, the exported model registered."""

import json
import shutil
from pathlib import Path

import pytest

from medarena.registry import load_registry
from tests.conftest import REPO
from tests.helpers import invoke, sql_rows, training_killed_at_step

RECIPE = """
name: {name}
description: CI-sized continual pretraining on two bundled sources.
citation: medarena tests
sources:
  - {{name: guidelines, kind: guidelines, data: {{path: samples/guidelines/guidelines.jsonl}},
     text_fields: [title, clean_text], ratio: 3}}
  - {{name: notes, kind: clinical_notes, data: {{path: samples/clinical_notes/notes.jsonl}},
     ratio: 1}}
cleaning: {{min_words: 20, near_dedup_threshold: null}}
sequence_length: 64
global_batch_sequences: 4
max_steps: {steps}
optimizer: {{lr: 3.0e-3, weight_decay: 0.01}}
schedule: {{kind: cosine, warmup_steps: 2, min_lr: 3.0e-4}}
deepspeed: {{zero_stage: {stage}, bf16: false, activation_checkpointing: false}}
checkpoint_every: 4
"""


@pytest.fixture
def train_workspace(eval_workspace: Path) -> Path:
    shutil.copytree(REPO / "pretrain", eval_workspace / "pretrain")
    for name, stage, steps in (("ci-z2", 2, 12), ("ci-z3", 3, 3), ("ci-z2-short", 2, 3)):
        text = RECIPE.format(name=name, stage=stage, steps=steps)
        (eval_workspace / "pretrain" / f"{name}.yaml").write_text(text)
    return eval_workspace


def losses(db_url: str, output: str) -> list[tuple[int, float]]:
    return sql_rows(
        db_url,
        "SELECT s.step, s.loss FROM training_steps s JOIN training_runs r "
        "ON r.id = s.training_run_id JOIN model_variants v ON v.id = r.output_variant_id "
        "WHERE v.name = :name ORDER BY s.step",
        name=output,
    )


def test_killed_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_one(
    train_workspace, db_url, tmp_path
):
    train = ["train", "pretrain", "-r", "ci-z2", "-m", "tiny-medical-base"]
    whole = invoke(train_workspace, db_url, *train, "--output", "whole")
    assert whole.exit_code == 0, whole.output

    # killed after step 7: after the checkpoint of step 4, before the one of step 8
    with training_killed_at_step("medarena.pretrain.train", 7, tmp_path):
        killed = invoke(train_workspace, db_url, *train, "--output", "resumed")
    assert killed.exit_code == 1 and "run the same command again" in killed.stderr
    assert sql_rows(db_url, "SELECT status FROM training_runs ORDER BY id") == [
        ("completed",),
        ("interrupted",),
    ]
    run_dir = train_workspace / ".medarena/runs/resumed"
    assert (run_dir / "checkpoints/latest").read_text().strip() == "step0000004"
    assert not (train_workspace / "models/resumed.yaml").exists()  # nothing registered yet

    resumed = invoke(train_workspace, db_url, *train, "--output", "resumed")
    assert resumed.exit_code == 0, resumed.output
    assert sql_rows(db_url, "SELECT status, tokens_seen FROM training_runs ORDER BY id") == [
        ("completed", 12 * 4 * 64),
        ("completed", 12 * 4 * 64),
    ]
    after, before = losses(db_url, "resumed"), losses(db_url, "whole")
    assert [step for step, _ in after] == list(range(1, 13))  # steps 5-7 recorded once
    # same data position, optimizer, schedule and RNG state: the same losses
    assert [loss for _, loss in after] == pytest.approx([loss for _, loss in before], abs=1e-5)
    assert before[-1][1] < before[0][1] - 0.5  # it learns

    registry = load_registry(train_workspace)
    entry = registry.variant("resumed")
    assert entry.variant.parent == "tiny-medical-base" and entry.variant.recipes == ["ci-z2"]
    # a trained model's card joins the workspace's generated layer, never the curated models/
    assert registry.files["families:resumed"] == ".medarena/models/resumed.yaml"
    assert not (train_workspace / "models" / "resumed.yaml").exists()
    produced = sql_rows(
        db_url,
        "SELECT r.id FROM model_variants v JOIN training_runs r ON r.id = v.produced_by_run_id "
        "WHERE v.name = 'resumed'",
    )
    assert produced == [(2,)]


@pytest.mark.parametrize(
    ("recipe", "procs", "launcher", "stage"),
    [("ci-z3", 2, "deepspeed", 3), ("ci-z3", 1, "auto", 3), ("ci-z2-short", 2, "torchrun", 2)],
)
def test_zero_stages_and_data_parallel_sizes(
    train_workspace, db_url, capfd, recipe, procs, launcher, stage
):
    output = f"{recipe}-{procs}"
    result = invoke(
        train_workspace,
        db_url,
        "train",
        "pretrain",
        "-r",
        recipe,
        "-m",
        "tiny-medical-base",
        "--gpus",
        str(procs),
        "--launcher",
        launcher,
        "--output",
        output,
    )
    printed = capfd.readouterr().out
    assert result.exit_code == 0, result.output + printed[-3000:]
    assert f"engine: DeepSpeed ZeRO-{stage}, data-parallel size {procs}, 3 steps" in printed
    assert sql_rows(db_url, "SELECT world_size, status FROM training_runs") == [
        (procs, "completed")
    ]
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(
        train_workspace / ".medarena/models/tiny-medical-base"
    )
    trained = AutoModelForCausalLM.from_pretrained(
        train_workspace / f".medarena/runs/{output}/export"
    )
    changed = [
        name
        for (name, a), (_, b) in zip(
            base.named_parameters(), trained.named_parameters(), strict=True
        )
        if a.shape == b.shape and not (a == b).all()
    ]
    assert len(changed) == len(list(base.parameters()))  # gathered, full, every tensor trained


def test_bad_input_is_refused_before_any_compute(train_workspace, db_url):
    recipe = train_workspace / "pretrain" / "broken-path.yaml"
    recipe.write_text(
        RECIPE.format(name="broken-path", stage=2, steps=2).replace(
            "samples/clinical_notes/notes.jsonl", "samples/clinical_notes/missing.jsonl"
        )
    )
    missing = invoke(
        train_workspace, db_url, "train", "pretrain", "-r", "broken-path", "-m", "tiny-medical-base"
    )
    assert missing.exit_code == 2
    assert (
        "samples/clinical_notes/missing.jsonl" in missing.stderr and "not found" in missing.stderr
    )
    assert not (train_workspace / ".medarena/runs").exists() or not any(
        (train_workspace / ".medarena/runs").iterdir()
    )
    assert not Path(db_url.removeprefix("sqlite:///")).exists()

    indivisible = invoke(
        train_workspace,
        db_url,
        "train",
        "pretrain",
        "-r",
        "gap-replay",
        "-m",
        "llama-2-7b",
        "--hardware",
        "a100-80gb-sxm",
        "--nodes",
        "16",
        "--plan",
    )
    assert indivisible.exit_code == 2
    assert "global batch 1600 is not divisible by 128" in indivisible.stderr
    assert "use a global batch of 1536" in indivisible.stderr

    unknown = invoke(
        train_workspace,
        db_url,
        "train",
        "pretrain",
        "-r",
        "gap-replays",
        "-m",
        "llama-2-7b",
        "--plan",
    )
    assert unknown.exit_code == 2 and "known: broken-path, ci-z2" in unknown.stderr


def test_vocabulary_mismatch_is_refused(train_workspace, db_url, tmp_path):
    from transformers import AutoConfig

    small = tmp_path / "small-vocab"
    shutil.copytree(train_workspace / ".medarena/models/tiny-medical-base", small)
    config = AutoConfig.from_pretrained(small)
    config.vocab_size = 512
    config.save_pretrained(small)
    card = train_workspace / "models/tiny-medical.yaml"
    card.write_text(
        card.read_text() + f"  - name: tiny-small-vocab\n    params_b: 0.0002\n"
        f"    source: {{kind: local, path: {small}}}\n    context_length: 2048\n"
    )
    result = invoke(
        train_workspace, db_url, "train", "pretrain", "-r", "ci-z2", "-m", "tiny-small-vocab"
    )
    assert result.exit_code == 2
    assert "tokenizer has 1024 tokens, the model's vocabulary 512" in result.stderr


def test_plan_and_cluster_launchers(train_workspace, db_url):
    plan = invoke(
        train_workspace,
        db_url,
        "train",
        "pretrain",
        "-r",
        "gap-replay",
        "-m",
        "llama-2-70b",
        "--hardware",
        "h100-80gb-sxm",
        "--nodes",
        "16",
        "--plan",
    )
    assert plan.exit_code == 0, plan.output
    assert "zero_stage" in plan.stdout and "4,096" in plan.stdout  # the 70B override
    assert "data preparation" in plan.stdout and "CPU core-hours" in plan.stdout
    assert "wall hours on" in plan.stdout and "published per-source counts" in plan.stdout
    cluster = invoke(
        train_workspace,
        db_url,
        "train",
        "pretrain",
        "-r",
        "ci-z2",
        "-m",
        "tiny-medical-base",
        "--gpus",
        "2",
        "--nodes",
        "2",
    )
    assert cluster.exit_code == 0, cluster.output
    run_dir = train_workspace / ".medarena/runs/tiny-medical-base-ci-z2"
    launch, sbatch = (run_dir / "launch.sh").read_text(), (run_dir / "slurm.sbatch").read_text()
    assert "deepspeed --hostfile hostfile --num_nodes 2 --num_gpus 2" in launch
    assert f"--module medarena.pretrain.train {run_dir}" in launch
    assert "#SBATCH --nodes=2" in sbatch and "2 node(s) x 2 CPU ranks" in sbatch
    assert "--gpus-per-node" not in sbatch  # CPU ranks ask SLURM for no GPU
    assert "-m torch.distributed.run --nnodes 2 --nproc_per_node 2" in sbatch
    assert json.loads((run_dir / "run.json").read_text())["plan"]["world_size"] == 4
