"""The test cluster itself: a job with two tasks runs on the node, and nothing outlives the
cluster."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.slurm_cluster import DAEMONS, NODE, slurm_cluster, unavailable


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_two_task_job_runs_and_the_daemons_stop(tmp_path: Path):
    with slurm_cluster() as cluster:
        if cluster is None:
            unavailable()
        pids = [int((cluster.folder / "run" / f"{d}.pid").read_text().split()[0]) for d in DAEMONS]
        out = tmp_path / "job.out"
        task = "echo task $SLURM_PROCID of $SLURM_NTASKS on $SLURMD_NODENAME"
        submitted = subprocess.run(
            [
                *("sbatch", "--parsable", "--wait", "--ntasks=2", f"--output={out}"),
                *("--wrap", f"srun bash -c '{task}'"),
            ],
            env=cluster.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert submitted.returncode == 0, submitted.stderr
        shown = subprocess.run(
            ["scontrol", "-o", "show", "job", submitted.stdout.strip()],
            env=cluster.env(),
            capture_output=True,
            text=True,
        ).stdout
        assert "JobState=COMPLETED" in shown and "NumTasks=2" in shown
        assert sorted(out.read_text().splitlines()) == [
            f"task 0 of 2 on {NODE}",
            f"task 1 of 2 on {NODE}",
        ]
    assert [pid for pid in pids if _alive(pid)] == []
    assert not cluster.folder.exists()
