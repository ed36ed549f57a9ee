"""`medarena eval` killed with SIGKILL at seeded points (before, inside and after a chunk's
transaction, inside the closing transaction), then run again: one run per key, one prediction
per item, metrics once and equal to an uninterrupted run's. Two `medarena eval` processes on
one SQLite file at once: both exit 0, nothing lost or doubled."""

from pathlib import Path

from tests.faults.faults import eval_kill_points, medarena_process, orphans, rows
from tests.helpers import invoke

ITEMS, CHUNK = 40, 8  # medqa_4options sample: 5 chunks


def eval_args(workspace: Path, db_url: str, *extra: str) -> list[str]:
    return [
        "--workspace",
        str(workspace),
        "--db",
        db_url,
        "eval",
        "-m",
        "tiny-medical-base",
        "-t",
        "medqa_4options",
        "--chunk-size",
        str(CHUNK),
        *extra,
    ]


def test_eval_killed_at_seeded_points_resumes_to_one_result_per_item(
    eval_workspace, tmp_path, fault_rng
):
    db_url = f"sqlite:///{tmp_path / 'killed.db'}"
    assert invoke(eval_workspace, db_url, "models", "sync").exit_code == 0
    points = eval_kill_points(fault_rng, ITEMS // CHUNK, 2)
    print("kill points:", points)
    for seed, point in enumerate(points):
        killed = medarena_process(
            eval_args(eval_workspace, db_url, "--seed", str(seed)), fault=point, folder=tmp_path
        )
        _, err = killed.communicate(timeout=300)
        assert killed.returncode == -9, (point, err[-2000:])
        phase, _, k = point.partition(":")
        committed = {"chunk-before": int(k or 0) - 1, "chunk-mid": int(k or 0) - 1}.get(
            phase, int(k or 0)
        )
        stored = rows(
            db_url,
            "SELECT r.status, COUNT(p.id) FROM eval_runs r LEFT JOIN predictions p "
            "ON p.eval_run_id = r.id WHERE r.seed = :seed GROUP BY r.id",
            seed=seed,
        )
        expected = ITEMS if phase == "finish-mid" else CHUNK * committed
        assert stored == [("running", expected)], point  # whole chunks only, still open
        unfinished = rows(
            db_url,
            "SELECT COUNT(*) FROM metrics m JOIN eval_runs r ON r.id = m.eval_run_id "
            "WHERE r.seed = :seed",
            seed=seed,
        )
        assert unfinished == [(0,)], point  # the closing transaction is all or nothing

        resumed = invoke(
            eval_workspace, db_url, *eval_args(eval_workspace, db_url)[4:], "--seed", str(seed)
        )
        assert resumed.exit_code == 0, resumed.output

    assert orphans(db_url) == {}
    per_run = rows(
        db_url,
        "SELECT r.seed, r.status, r.n_items, COUNT(DISTINCT p.item_id), COUNT(p.id) "
        "FROM eval_runs r JOIN predictions p ON p.eval_run_id = r.id GROUP BY r.id ORDER BY r.seed",
    )
    assert per_run == [(seed, "completed", ITEMS, ITEMS, ITEMS) for seed in range(len(points))]

    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert invoke(eval_workspace, fresh, *eval_args(eval_workspace, fresh)[4:]).exit_code == 0
    metrics = (
        "SELECT name, value, ci_low, ci_high, n FROM metrics WHERE eval_run_id = :run ORDER BY name"
    )
    reference = rows(fresh, metrics, run=1)
    for (run_id,) in rows(db_url, "SELECT id FROM eval_runs"):
        assert rows(db_url, metrics, run=run_id) == reference  # loglik: the seed changes nothing


def test_two_eval_processes_share_one_database(eval_workspace, tmp_path):
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"
    assert invoke(eval_workspace, db_url, "models", "sync").exit_code == 0
    base = [
        "--workspace",
        str(eval_workspace),
        "--db",
        db_url,
        "eval",
        "-m",
        "tiny-medical-base",
        "--chunk-size",
        "4",
        "--limit",
        "16",
    ]
    # both start on the same task (one run key) and look it up before either creates the run,
    # then each goes on with a task of its own
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    fault = f"barrier:{barrier}"
    first = medarena_process(
        [*base, "-t", "pubmedqa", "-t", "medqa_4options"], fault=fault, folder=tmp_path
    )
    # the second is slower to load its model: the first may have finished the shared run by
    # then (it must be found, not run again); both creating at the same instant is covered in
    # test_store_faults.py and by the campaign
    second = medarena_process(
        [*base, "-t", "pubmedqa", "-t", "medmcqa"], fault=f"barrier-late:{barrier}", folder=tmp_path
    )
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    for process, (_out, err) in zip((first, second), outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
        assert "locked" not in err
    assert orphans(db_url) == {}
    per_task = rows(
        db_url,
        "SELECT t.name, COUNT(DISTINCT r.id), COUNT(p.id), COUNT(DISTINCT p.item_id) "
        "FROM eval_runs r JOIN tasks t ON t.id = r.task_id "
        "JOIN predictions p ON p.eval_run_id = r.id GROUP BY t.name ORDER BY t.name",
    )
    sizes = dict(
        rows(db_url, "SELECT t.name, r.n_items FROM eval_runs r JOIN tasks t ON t.id = r.task_id")
    )
    assert sorted(sizes) == ["medmcqa", "medqa_4options", "pubmedqa"]
    assert per_task == [(name, 1, sizes[name], sizes[name]) for name in sorted(sizes)], per_task
    assert rows(db_url, "SELECT DISTINCT status FROM eval_runs") == [("completed",)]
