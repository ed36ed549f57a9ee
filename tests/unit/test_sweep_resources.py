"""What a sweep's SLURM jobs ask for: GPUs from the variant's size and the hardware profile,
jobs of one variant, the array script."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from medarena.errors import Refused
from medarena.registry import load_registry
from medarena.sweep.slurm import array_script, gpus_per_job, split_jobs
from medarena.sweep.spec import SlurmSettings
from tests.conftest import REPO

REGISTRY = load_registry(REPO)
H100 = REGISTRY.hardware_profile("h100-80gb-sxm")


def variant(name: str):
    return REGISTRY.variant(name).variant


def test_gpus_follow_the_weights_and_the_tensor_parallel_size() -> None:
    assert gpus_per_job(variant("meditron-7b"), H100, "hf") == 1  # 7e9 x 2 B x 1.2 = 16.8 GB
    assert gpus_per_job(variant("meditron-7b-awq"), H100, "vllm") == 1  # 4-bit
    assert gpus_per_job(variant("llama-2-70b"), H100, "vllm") == 4  # 168 GB -> 3, tp 4
    assert gpus_per_job(variant("meditron-7b"), H100, "openai") == 0
    small = H100.model_copy(update={"gpu_memory_gb": 24.0, "gpus_per_node": 2})
    with pytest.raises(Refused, match=r"llama-2-70b needs 7 GPUs .* than one node.s 2"):
        gpus_per_job(variant("llama-2-70b").model_copy(update={"tensor_parallel": 1}), small, "hf")


@dataclass(frozen=True)
class FakeCell:
    variant: str
    key: str


def test_jobs_hold_one_variant_and_at_most_cells_per_job() -> None:
    cells = [FakeCell(v, f"{v}{i}") for v in ("a", "b") for i in range(3)] + [FakeCell("c", "c0")]
    keys = lambda jobs: [[cell.key for cell in job] for job in jobs]  # noqa: E731
    assert keys(split_jobs(cells, 0)) == [["a0", "a1", "a2"], ["b0", "b1", "b2"], ["c0"]]
    assert keys(split_jobs(cells, 2)) == [["a0", "a1"], ["a2"], ["b0", "b1"], ["b2"], ["c0"]]


def test_the_array_script_asks_for_what_the_sweep_says() -> None:
    settings = SlurmSettings(
        partition="gpu", time="04:00:00", cpus_per_task=8, mem="64G", max_parallel=2,
        sbatch=["--account=med"],
    )  # fmt: skip
    script = array_script("grid", Path("/w/.medarena/sweeps/grid/a.json"), 3, 4, settings)
    lines = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert lines == [
        "#SBATCH --job-name=sweep-grid",
        "#SBATCH --array=0-2%2",
        "#SBATCH --ntasks=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --gpus-per-task=4",
        "#SBATCH --mem=64G",
        "#SBATCH --time=04:00:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=med",
        "#SBATCH --output=/w/.medarena/sweeps/grid/slurm-%A_%a.out",
    ]
    assert script.rstrip().endswith("-m medarena.sweep.job /w/.medarena/sweeps/grid/a.json")
    cpu = array_script("grid", Path("/w/a.json"), 1, 0, SlurmSettings(gpus=False))
    assert "--gpus" not in cpu and "#SBATCH --array=0-0\n" in cpu
