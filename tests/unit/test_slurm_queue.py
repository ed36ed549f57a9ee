"""Following submitted jobs through squeue: what counts as ended, what is asked again, and what
is cancelled. squeue and scancel are stand-ins on PATH (the cluster is outside the code under
test; the cluster tests in tests/integration run the real ones)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from medarena.data.slurm import active
from medarena.slurm_queue import listed_jobs, wait_for_jobs

STAND_IN = """#!{python}
import json, sys
from pathlib import Path
folder = Path(__file__).parent
calls = folder / "calls.jsonl"
with calls.open("a") as log:
    log.write(json.dumps([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\\n")
if Path(sys.argv[0]).name == "squeue":
    answers = json.loads((folder / "answers.json").read_text())
    stdout, stderr, code = answers.pop(0) if len(answers) > 1 else answers[0]
    (folder / "answers.json").write_text(json.dumps(answers))
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    sys.exit(code)
"""
UNREACHABLE = ("", "slurm_load_jobs error: Unable to contact slurm controller\n", 1)
PURGED = ("", "slurm_load_jobs error: Invalid job id specified\n", 1)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """Writes squeue's answers, one per call (the last repeats); returns the calls made."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("squeue", "scancel"):
        path = folder / name
        path.write_text(STAND_IN.replace("{python}", sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    def answer(*answers: tuple[str, str, int]) -> Path:
        (folder / "answers.json").write_text(json.dumps(answers))
        return folder / "calls.jsonl"

    return answer


def calls_of(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_waiting_asks_again_while_squeue_cannot_answer_and_cancels_what_never_runs(cluster):
    log = cluster(
        UNREACHABLE,  # a controller restart is not the jobs' end
        ("12 Resources\n13 Dependency\n", "", 0),
        ("13 DependencyNeverSatisfied\n", "", 0),
        PURGED,  # ids squeue no longer knows: ended
    )
    wait_for_jobs(["12", "13"], poll_s=0)
    calls = calls_of(log)
    assert [call[0] for call in calls] == ["squeue", "squeue", "squeue", "scancel", "squeue"]
    assert calls[0][-2:] == ["-j", "12,13"] and calls[3] == ["scancel", "13"]


def test_listed_jobs_tell_ended_from_unanswered(cluster):
    cluster(("7 None\n8 (launch failed requeued held)\n", "", 0))
    assert listed_jobs(["7", "8"]) == {"7": "None", "8": "(launch failed requeued held)"}
    cluster(("", "", 0))
    assert listed_jobs(["7"]) == {}
    cluster(PURGED)
    assert listed_jobs(["7"]) == {}
    cluster(UNREACHABLE)
    assert listed_jobs(["7"]) is None
    assert listed_jobs([]) == {}


def test_a_preparation_is_refused_only_while_its_jobs_can_still_run(cluster):
    cluster(("21 Priority\n22 DependencyNeverSatisfied\n", "", 0))
    assert active(["21", "22"]) == ["21"]
    cluster(UNREACHABLE)
    assert active(["21"]) == []  # the check does not block on an unreachable controller
