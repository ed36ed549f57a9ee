"""A contamination check follows the lineage of an instruction-tuned tiny model through both
its training runs (continual pretraining, then LoRA tuning), reading each run's recorded
recipe: an item planted in the pretraining data and one planted in the instruction data are
each found in their run's corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from medarena.evaluate.runner import load_task_data
from medarena.evaluate.spec import load_benchmarks
from tests.conftest import REPO
from tests.helpers import as_json, invoke

TASK = "medqa_4options"
PRETRAIN = """
name: ci-pre
description: CI-sized pretraining with one planted item.
citation: medarena tests
sources:
  - {name: guidelines, kind: guidelines, data: {path: samples/guidelines/guidelines.jsonl},
     text_fields: [title, clean_text], ratio: 3}
  - {name: planted, kind: general, data: {path: samples/planted.jsonl}, ratio: 1}
cleaning: {min_words: 20, near_dedup_threshold: null}
sequence_length: 64
global_batch_sequences: 4
max_steps: 2
optimizer: {lr: 3.0e-3, weight_decay: 0.01}
schedule: {kind: constant}
deepspeed: {zero_stage: 2, bf16: false, activation_checkpointing: false}
checkpoint_every: 100
"""
INSTRUCT = """
name: ci-sft
description: CI-sized LoRA tuning with one planted item.
citation: medarena tests
chat_template: chatml
data:
  - {name: planted, format: alpaca, data: {path: samples/planted.jsonl}}
lora: {r: 4, alpha: 8, dropout: 0.0, target_modules: [q_proj, v_proj]}
sequence_length: 512
global_batch_sequences: 2
max_steps: 2
optimizer: {lr: 1.0e-3, weight_decay: 0.0}
schedule: {kind: constant}
deepspeed: {enabled: false}
checkpoint_every: 100
"""


@pytest.mark.slow
def test_the_check_follows_both_training_runs(eval_workspace: Path, db_url: str) -> None:
    items = load_task_data(load_benchmarks(eval_workspace)[TASK], eval_workspace).items
    in_pretraining, in_instructions = items[4], items[5]
    for folder, name, recipe in (
        ("pretrain", "ci-pre", PRETRAIN),
        ("instruct", "ci-sft", INSTRUCT),
    ):
        shutil.copytree(REPO / folder, eval_workspace / folder)
        (eval_workspace / folder / f"{name}.yaml").write_text(recipe)
    planted_text = f"Board review. {in_pretraining.fields['question']} " + "Filler words. " * 10
    (eval_workspace / "pretrain/samples/planted.jsonl").write_text(
        json.dumps({"id": "board-review", "text": planted_text}) + "\n"
    )
    pair = {"instruction": in_instructions.fields["question"], "input": "", "output": "B"}
    (eval_workspace / "instruct/samples/planted.jsonl").write_text(json.dumps(pair) + "\n")

    pretrain = ["train", "pretrain", "-r", "ci-pre", "-m", "tiny-medical-base", "--output", "pre"]
    assert (done := invoke(eval_workspace, db_url, *pretrain)).exit_code == 0, done.output
    instruct = ["train", "instruct", "-r", "ci-sft", "-m", "pre", "--output", "sft"]
    assert (done := invoke(eval_workspace, db_url, *instruct)).exit_code == 0, done.output

    result = invoke(eval_workspace, db_url, "contamination", "-m", "sft", "-t", TASK, "--json")
    assert result.exit_code == 0, result.output
    data = as_json(result.stdout)
    assert data["lineage"] == ["sft", "pre", "tiny-medical-base"]
    assert [(c["name"], c["origin"]) for c in data["corpora"]] == [
        ("ci-sft/planted", "training run 2 (instruct)"),
        ("ci-pre/guidelines", "training run 1 (pretrain)"),
        ("ci-pre/planted", "training run 1 (pretrain)"),
    ]
    flagged = {item["item_id"]: item for item in data["items"] if item["contaminated"]}
    assert set(flagged) == {in_pretraining.id, in_instructions.id}
    assert flagged[in_pretraining.id]["sources"][0]["corpus"] == "ci-pre/planted"
    assert flagged[in_pretraining.id]["sources"][0]["document"] == "board-review"
    assert flagged[in_instructions.id]["sources"][0]["corpus"] == "ci-sft/planted"
