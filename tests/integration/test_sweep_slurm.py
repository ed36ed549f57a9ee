"""An evaluation sweep through SLURM for real: `medarena sweep run FILE --slurm` submits a job
array to the private cluster (tests/slurm_cluster.py), every array task writes into one
PostgreSQL server started by the test (tests/postgres.py). The array is cancelled with
`scancel` while a task is mid-run; resubmitted, only the cells not completed are submitted,
the interrupted run is resumed (no duplicate rows), and the results equal plain sequential
`medarena eval` runs: 3 variants x 3 tasks x 2 settings."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from medarena.sweep import slurm as sweep_slurm
from tests.helpers import invoke, sql_rows
from tests.integration.test_postgres import pg_url  # noqa: F401 (a fixture)
from tests.integration.test_slurm_training import job_state, wait_until
from tests.integration.test_sweep import (  # noqa: F401 (fixtures)
    VARIANTS,
    assert_same_results,
    sequential,
    stored_results,
    sweep_process,
    sweep_workspace,
    tiny_copies,
    write_sweep,
)

pytestmark = pytest.mark.slow

# array task 0 pauses after storing its first chunk (2 of 4 items) and leaves a mark, so that
# scancel lands mid-run at a known point
PAUSED_JOB = """
import os, sys, time
from medarena.store import api
from medarena.sweep import job

original = api.Store.add_predictions

def pausing(self, run_id, predictions):
    stored = original(self, run_id, predictions)
    if os.environ.get("SLURM_ARRAY_TASK_ID") == "0":
        open(os.environ["SWEEP_PAUSE_MARK"], "w").close()
        time.sleep(3600)
    return stored

api.Store.add_predictions = pausing
sys.exit(job.main(sys.argv[1:]))
"""


def states(workspace, url, path) -> list[dict]:
    shown = invoke(workspace, url, "sweep", "status", str(path), "--json")
    assert shown.exit_code == 0, shown.output
    return json.loads(shown.stdout)


def test_a_sweep_array_cancelled_mid_run_completes_on_resubmission(
    sweep_workspace,  # noqa: F811
    pg_url,  # noqa: F811
    slurm,
    tmp_path,
    monkeypatch,
):
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))  # sbatch exports this environment
    paths = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path for path in paths if path))
    (tmp_path / "paused_sweep_job.py").write_text(PAUSED_JOB)
    mark = tmp_path / "paused"
    monkeypatch.setenv("SWEEP_PAUSE_MARK", str(mark))
    monkeypatch.setattr(sweep_slurm, "JOB_MODULE", "paused_sweep_job")
    slurm_settings = {"gpus": False, "cpus_per_task": 1, "cells_per_job": 3}
    grid = write_sweep(
        sweep_workspace / "grid.yaml", "grid", VARIANTS, chunk_size=2, slurm=slurm_settings
    )
    folder = sweep_workspace / ".medarena/sweeps/grid"

    first = invoke(sweep_workspace, pg_url, "sweep", "run", str(grid), "--slurm")
    assert first.exit_code == 0, first.output
    found = re.search(
        r"SLURM array job (\d+) submitted: 6 task\(s\), 18 cell\(s\), 0 GPU", first.stdout
    )
    assert found, first.stdout
    job = found.group(1)
    (script,) = folder.glob("*.sbatch")
    assert "#SBATCH --array=0-5\n" in script.read_text() and "--gpus" not in script.read_text()

    def paused() -> bool:
        log = folder / f"slurm-{job}_0.out"
        assert job_state(slurm, f"{job}_0") in ("PENDING", "RUNNING"), log.read_text()
        return mark.exists()

    wait_until(paused, 300, "array task 0 to pause mid-run")
    running = [row for row in states(sweep_workspace, pg_url, grid) if row["state"] == "running"]
    assert any(f"SLURM job {job}_0" in row["detail"] for row in running), running

    subprocess.run(["scancel", job], env=slurm.env(), check=True)
    wait_until(lambda: array_ended(slurm, job), 120, "the cancelled array to end")
    # SIGTERM: the run in progress is marked interrupted and its claim released
    wait_until(
        lambda: (
            sql_rows(pg_url, "SELECT count(*) FROM eval_runs WHERE status = 'running'") == [(0,)]
        ),
        60,
        "the runs marked interrupted",
    )
    assert sql_rows(pg_url, "SELECT count(*) FROM sweep_claims") == [(0,)]
    before = states(sweep_workspace, pg_url, grid)
    done_before = sum(row["state"] == "done" for row in before)
    interrupted = [row for row in before if "interrupted" in row["detail"]]
    assert done_before < 18 and interrupted, before
    assert {row["state"] for row in before} <= {"done", "pending"}
    assert any(row["detail"].endswith("2/4 items") for row in interrupted), interrupted
    resumed_ids = {row["run_id"] for row in interrupted}

    # resubmitted while another sweep that shares tiny-sweep-1's cells runs here
    other = write_sweep(sweep_workspace / "other.yaml", "other", [VARIANTS[1]], chunk_size=2)
    beside = sweep_process(sweep_workspace, pg_url, "run", str(other))
    monkeypatch.setattr(sweep_slurm, "JOB_MODULE", "medarena.sweep.job")
    second = invoke(sweep_workspace, pg_url, "sweep", "run", str(grid), "--slurm", "--wait")
    assert second.exit_code == 0, second.output
    beside_output = beside.communicate(timeout=600)[0]
    assert beside.returncode == 0, beside_output
    assert "sweep other: 6 done, 0 running, 0 failed, 0 pending" in beside_output
    ran = [line for log in folder.glob("slurm-*.out") for line in log.read_text().splitlines()]
    ran += beside_output.splitlines()
    ran = [line.removeprefix("ran: ") for line in ran if line.startswith("ran: ")]
    assert len(ran) == len(set(ran)), ran  # no cell ran twice, across the array and the other
    assert f"{18 - done_before} cell(s), 0 GPU" in second.stdout  # only what was not completed
    assert "sweep grid: 18 done, 0 running, 0 failed, 0 pending" in second.stdout
    after = states(sweep_workspace, pg_url, grid)
    assert resumed_ids <= {row["run_id"] for row in after}  # resumed, not started again

    # one run per cell, each item stored once, the same results as sequential `medarena eval`
    assert sql_rows(pg_url, "SELECT count(*), sum(n_items) FROM eval_runs") == [(18, 72)]
    assert sql_rows(
        pg_url, "SELECT count(*), count(DISTINCT (eval_run_id, item_id)) FROM predictions"
    ) == [(72, 72)]
    plain_url = f"sqlite:///{tmp_path / 'sequential.db'}"
    sequential(sweep_workspace, plain_url, "--chunk-size", "2")
    assert_same_results(stored_results(pg_url), stored_results(plain_url))


def array_ended(slurm, job: str) -> bool:
    """No task of the array is pending or running."""
    shown = subprocess.run(
        ["squeue", "-h", "-o", "%i", "-j", job], env=slurm.env(), capture_output=True, text=True
    )
    return not shown.stdout.strip()
