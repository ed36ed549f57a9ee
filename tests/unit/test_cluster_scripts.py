"""The SLURM batch script written for a run: GPUs requested only for GPU runs, torchrun's
rendezvous from SLURM's environment, the finishing step, valid bash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from medarena.training.launch import write_cluster_scripts


@pytest.mark.parametrize("gpu", [True, False])
def test_the_batch_script_requests_gpus_only_for_gpu_runs(tmp_path: Path, gpu: bool):
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    _, sbatch = write_cluster_scripts(
        "medarena.pretrain.train",
        run_dir,
        nodes=16,
        gpus_per_node=8,
        gpu=gpu,
        hostfile=None,
        job_name="r1",
        workspace=tmp_path,
    )
    text = sbatch.read_text()
    assert ("#SBATCH --gpus-per-node=8\n" in text) is gpu
    assert "#SBATCH --nodes=16\n#SBATCH --ntasks-per-node=1\n" in text
    assert f"srun {sys.executable} -m torch.distributed.run --nnodes 16 --nproc_per_node 8" in text
    assert '--rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT"' in text
    assert f"-m medarena.pretrain.train {run_dir} || status=$?" in text
    assert text.endswith(f'-m medarena.training.finish {tmp_path} {run_dir} "$status"\n')
    assert subprocess.run(["bash", "-n", str(sbatch)]).returncode == 0


def test_submission_options_are_refused_before_anything_is_prepared(
    workspace: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from tests.helpers import invoke

    train = ("train", "pretrain", "-r", "gap-replay", "-m", "llama-2-7b")
    alone = invoke(workspace, db_url, *train, "--wait")
    assert alone.exit_code == 2 and "--wait goes with --submit" in alone.stderr
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    nowhere = invoke(workspace, db_url, *train, "--submit")
    assert nowhere.exit_code == 2 and "--submit needs SLURM's `sbatch` on PATH" in nowhere.stderr
    assert not (workspace / ".medarena").exists()
    assert not Path(db_url.removeprefix("sqlite:///")).exists()
