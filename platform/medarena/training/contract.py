"""The run contract: RUN_DIR/run.json, what a training process reads to do its work.

Written once by the service that prepares a run (`medarena.training.service`) and read by every
rank (`python -m medarena.pretrain.train RUN_DIR`, `... instruct.train RUN_DIR`), on this machine or
on a cluster node. This module is the only one that writes or parses the file.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from medarena.errors import Refused
from medarena.training.plan import Memory, Plan
from medarena.yaml_source import write_atomic

RUN_FILE = "run.json"
RunStatus = Literal["running", "completed"]


@dataclass(frozen=True)
class LoraContract:
    """The adapter a LoRA run trains (the recipe's settings, target modules resolved)."""

    r: int
    alpha: float
    dropout: float
    target_modules: list[str]
    adapter_dtype: str


@dataclass(frozen=True)
class QloraContract:
    quant_type: str
    double_quant: bool


@dataclass(frozen=True)
class RunContract:
    """Everything a rank needs; `kind` decides which training module runs it."""

    kind: Literal["pretrain", "instruct"]
    status: RunStatus
    training_run_id: int
    db_url: str
    base_location: str  # where from_pretrained loads the base weights
    plan: Plan
    optimizer: dict[str, Any]  # the recipe's optimizer block, as validated
    schedule: dict[str, Any]  # the recipe's schedule block, as validated
    seed: int
    checkpoint_every: int
    params: float  # parameters of the base model (for MFU)
    peak_flops: float | None  # per GPU, from the hardware profile; None on CPU
    # instruction tuning only
    lora: LoraContract | None = None
    qlora: QloraContract | None = None
    chat_template: str | None = None
    added_tokens: list[str] = dataclasses.field(default_factory=list)
    trainable_params: int | None = None

    def completed(self) -> RunContract:
        return dataclasses.replace(self, status="completed")

    def write(self, run_dir: Path) -> Path:
        """Write RUN_DIR/run.json atomically (a reader never sees half a file)."""
        path = run_dir / RUN_FILE
        write_atomic(path, json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, run_dir: Path) -> RunContract:
        """Parse RUN_DIR/run.json; a file from an older medarena or a damaged one is refused with
        the file and the field named."""
        path = run_dir / RUN_FILE
        try:
            data = json.loads(path.read_text())
            plan = dict(data.pop("plan"))
            memory = plan.pop("memory_gib")
            lora, qlora = data.pop("lora", None), data.pop("qlora", None)
            return cls(
                plan=Plan(memory_gib=Memory(**memory) if memory else None, **plan),
                lora=LoraContract(**lora) if lora else None,
                qlora=QloraContract(**qlora) if qlora else None,
                **data,
            )
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise Refused(
                f"{path}: not a run contract this medarena can read ({type(exc).__name__}: "
                f"{exc}); start the run again with a new --output"
            ) from None

    @staticmethod
    def exists(run_dir: Path) -> bool:
        return (run_dir / RUN_FILE).is_file()
