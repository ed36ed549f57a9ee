"""RUN_DIR/run.json: written and read by one module, typed, refused when damaged."""

from __future__ import annotations

from pathlib import Path

import pytest

from medarena.errors import Refused
from medarena.training.contract import RUN_FILE, LoraContract, RunContract
from medarena.training.plan import Memory, Plan

PLAN = Plan(
    recipe="tiny-demo",
    variant="tiny-medical-base",
    hardware="h100-80gb-sxm",
    nodes=1,
    gpus_per_node=2,
    world_size=2,
    deepspeed=True,
    zero_stage=2,
    offload_optimizer=False,
    offload_params=False,
    activation_checkpointing=False,
    bf16=True,
    sequence_length=256,
    global_batch=8,
    micro_batch=4,
    grad_accum=1,
    lr=1e-3,
    steps=800,
    tokens=1_638_400,
    memory_gib=Memory(0.5, 0.25, 1.5, 2.0),
    gpu_memory_gib=74.5,
    gpu_hours=0.1,
    trainable_params=1234.0,
    notes=["a note"],
)
CONTRACT = RunContract(
    kind="instruct",
    status="running",
    training_run_id=7,
    db_url="sqlite:///x.db",
    base_location="/models/base",
    plan=PLAN,
    optimizer={"lr": 1e-3, "betas": [0.9, 0.95]},
    schedule={"kind": "cosine", "warmup_ratio": 0.1},
    seed=3,
    checkpoint_every=100,
    params=213_000.0,
    peak_flops=989e12,
    lora=LoraContract(
        r=16, alpha=32.0, dropout=0.05, target_modules=["q_proj"], adapter_dtype="model"
    ),
    chat_template="chatml",
    added_tokens=["<|im_end|>"],
    trainable_params=1234,
)


def test_round_trip_keeps_every_field_typed(tmp_path: Path) -> None:
    CONTRACT.write(tmp_path)
    read = RunContract.read(tmp_path)
    assert read == CONTRACT
    assert read.plan.memory_gib.total == pytest.approx(4.25)
    assert read.completed().status == "completed" and read.status == "running"


def test_a_damaged_or_foreign_file_is_refused_with_its_path(tmp_path: Path) -> None:
    (tmp_path / RUN_FILE).write_text('{"status": "running", "plan": {}}')
    with pytest.raises(Refused, match=rf"{tmp_path / RUN_FILE}: not a run contract"):
        RunContract.read(tmp_path)
    (tmp_path / RUN_FILE).write_text('{"status": ')
    with pytest.raises(Refused, match="JSONDecodeError"):
        RunContract.read(tmp_path)
