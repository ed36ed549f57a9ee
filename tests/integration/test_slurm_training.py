"""Training through SLURM for real: `medarena train pretrain --submit` on the private cluster
(tests/slurm_cluster.py); srun starts torchrun, which rendezvouses from SLURM's environment and
starts two CPU ranks (DeepSpeed over gloo); the job registers the output. Cancelled with
`scancel` mid-run, the same command resubmitted resumes from the last checkpoint. LoRA tuning
goes the same way and registers the merged model and the adapter."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from medarena.registry import load_registry
from medarena.training import service
from tests.helpers import invoke, script_stopped_at_step, sql_rows
from tests.integration.test_instruct_run import tune, tune_workspace  # noqa: F401 (fixture)
from tests.integration.test_pretrain_run import train_workspace  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow

# the rank pauses after step 7 (after the checkpoint of step 4, before the one of step 8) and
# leaves a mark, so that scancel lands mid-run at a known point
PAUSE = "open(os.path.join(sys.argv[1], 'paused'), 'w').close(); time.sleep(3600)"


def job_state(slurm, job: str) -> str:
    shown = subprocess.run(
        ["scontrol", "-o", "show", "job", job], env=slurm.env(), capture_output=True, text=True
    )
    return re.search(r"JobState=(\S+)", shown.stdout).group(1)


def wait_for_pause(slurm, job: str, run_dir, timeout: float) -> None:
    """Until the rank has paused after step 7; fails early (with the job's log) when the job
    ends first."""
    deadline = time.monotonic() + timeout
    while not (run_dir / "paused").exists():
        state = job_state(slurm, job)
        log = run_dir / f"slurm-{job}.out"
        shown = log.read_text()[-3000:] if log.exists() else "(no log)"
        assert state in ("PENDING", "RUNNING"), f"job {job} {state}:\n{shown}"
        assert time.monotonic() < deadline, f"job {job} not at step 7 in time:\n{shown}"
        time.sleep(0.5)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_submitted_run_trains_on_two_ranks_and_resumes_after_scancel(
    train_workspace,  # noqa: F811
    db_url,
    slurm,
    tmp_path,
    monkeypatch,
):
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))  # sbatch exports this environment
    # the job imports the paused trainer from tmp_path (and whatever path this run already has)
    paths = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path for path in paths if path))
    (tmp_path / "paused_pretrain.py").write_text(
        script_stopped_at_step("medarena.pretrain.train", 7, PAUSE)
    )
    monkeypatch.setitem(service.MODULES, "pretrain", "paused_pretrain")
    train = ["train", "pretrain", "-r", "ci-z2", "-m", "tiny-medical-base", "--gpus", "2"]
    train += ["--output", "clustered", "--submit"]
    run_dir = train_workspace / ".medarena/runs/clustered"

    first = invoke(train_workspace, db_url, *train)
    assert first.exit_code == 0, first.output
    job = re.search(r"SLURM job (\d+) submitted", first.stdout).group(1)
    sbatch = (run_dir / "slurm.sbatch").read_text()
    assert '--rdzv_id "$SLURM_JOB_ID"' in sbatch and "--gpus-per-node" not in sbatch
    wait_for_pause(slurm, job, run_dir, 300)
    assert job_state(slurm, job) == "RUNNING"
    assert (run_dir / "checkpoints/latest").read_text().strip() == "step0000004"

    subprocess.run(["scancel", job], env=slurm.env(), check=True)
    wait_until(lambda: job_state(slurm, job) == "CANCELLED", 60, "the cancelled job")
    # the batch script outlives the SIGTERM long enough to record the stop
    wait_until(
        lambda: sql_rows(db_url, "SELECT status FROM training_runs") == [("interrupted",)],
        60,
        "the run marked interrupted",
    )
    assert "clustered" not in load_registry(train_workspace).variants

    monkeypatch.setitem(service.MODULES, "pretrain", "medarena.pretrain.train")
    second = invoke(train_workspace, db_url, *train, "--wait")
    assert second.exit_code == 0, second.output
    assert "resuming run clustered" in second.stdout and "step0000004" in second.stdout
    job2 = re.search(r"SLURM job (\d+) ended", second.stdout).group(1)
    log = (run_dir / f"slurm-{job2}.out").read_text()
    assert "data-parallel size 2" in log and "registered clustered" in log
    assert job_state(slurm, job2) == "COMPLETED"

    # one training run, every step recorded once, the output registered as a direct launch does
    assert sql_rows(db_url, "SELECT status, world_size, tokens_seen FROM training_runs") == [
        ("completed", 2, 12 * 4 * 64)
    ]
    steps = sql_rows(db_url, "SELECT step FROM training_steps ORDER BY step")
    assert [step for (step,) in steps] == list(range(1, 13))
    entry = load_registry(train_workspace).variant("clustered")
    assert entry.variant.parent == "tiny-medical-base" and entry.variant.recipes == ["ci-z2"]


def test_a_submitted_lora_run_registers_the_merged_model_and_the_adapter(
    tune_workspace,  # noqa: F811
    db_url,
    slurm,
    monkeypatch,
):
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    result = tune(tune_workspace, db_url, "ci-z3-tags", "tags", "--gpus", "2", "--submit", "--wait")
    assert result.exit_code == 0, result.output
    job = re.search(r"SLURM job (\d+) ended", result.stdout).group(1)
    log = (tune_workspace / f".medarena/runs/tags/slurm-{job}.out").read_text()
    assert "engine: DeepSpeed ZeRO-3, data-parallel size 2, 3 steps" in log
    assert "registered tags, tags-adapter" in log
    assert sql_rows(db_url, "SELECT kind, status, world_size FROM training_runs") == [
        ("instruct", "completed", 2)
    ]
    registry = load_registry(tune_workspace)
    assert registry.variant("tags-adapter").variant.source.kind == "adapter"
    assert registry.variant("tags").variant.parent == "tiny-medical-base"
