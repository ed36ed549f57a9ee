"""The store itself under faults: a migration killed part-way, processes opening a new
database at the same instant, and the 0004 migration on a database full of results."""

import subprocess
import sys
import time

from sqlalchemy import text

from medarena.registry import load_registry
from medarena.results import MetricValue, Prediction
from medarena.store import Store
from medarena.store.database import current_revision, downgrade, head_revision, make_engine, upgrade
from tests.factories import eval_spec
from tests.faults.faults import OPEN_AND_SYNC, orphans, rows
from tests.seeded import seed_database

KILLED_MIGRATION = """
import os, signal, sys
from alembic.operations import Operations
from medarena.store import Store

original, calls = Operations.create_table, []

def create_table(self, *args, **kwargs):
    table = original(self, *args, **kwargs)
    calls.append(1)
    if len(calls) == int(sys.argv[2]):
        os.kill(os.getpid(), signal.SIGKILL)
    return table

Operations.create_table = create_table
Store(f"sqlite:///{sys.argv[1]}")
"""


def python(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_processes_opening_a_new_database_at_once_all_succeed(workspace, tmp_path):
    for attempt in range(2):
        path = tmp_path / f"new-{attempt}.db"
        start = str(time.time() + 3)  # both past their imports, then off together
        processes = [python(OPEN_AND_SYNC, str(path), str(workspace), start) for _ in range(2)]
        for process in processes:
            _, err = process.communicate(timeout=120)
            assert process.returncode == 0, err[-2000:]
        url = f"sqlite:///{path}"
        assert rows(url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
        assert orphans(url) == {}
        names = rows(url, "SELECT COUNT(*), COUNT(DISTINCT name) FROM model_variants")
        assert names[0][0] == names[0][1] > 20


def test_migration_killed_part_way_leaves_a_database_that_opens(tmp_path, fault_rng):
    points = fault_rng.sample(range(1, 8), 3)  # the n-th CREATE TABLE of a new database
    print("killed after CREATE TABLE number", points)
    for n in points:
        path = tmp_path / f"killed-{n}.db"
        process = python(KILLED_MIGRATION, str(path), str(n))
        _, err = process.communicate(timeout=120)
        assert process.returncode == -9, err[-2000:]
        url = f"sqlite:///{path}"
        # nothing of the half-made schema was kept: the next open creates it whole
        from medarena.store import Store

        with Store(url):
            pass
        assert rows(url, "SELECT version_num FROM alembic_version") == [(head_revision(),)]


def test_open_key_migration_keeps_every_result(tmp_path):
    url = seed_database(tmp_path)
    engine = make_engine(url)
    counted = (
        "SELECT (SELECT COUNT(*) FROM eval_runs), (SELECT COUNT(*) FROM predictions), "
        "(SELECT COUNT(*) FROM metrics), (SELECT COUNT(*) FROM training_steps)"
    )
    before = rows(url, counted)
    assert before[0][1] > 0
    # before 0009 every variant has a size: the API entries of undisclosed size (no runs) go
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM model_variants WHERE params_b IS NULL"))
    downgrade(engine, "0003")
    assert rows(url, counted) == before
    upgrade(engine)
    assert current_revision(engine) == head_revision() and rows(url, counted) == before
    engine.dispose()


def test_two_stores_creating_one_run_key_share_the_run(workspace, tmp_path):
    url = f"sqlite:///{tmp_path / 'key.db'}"
    spec = eval_spec(task="pubmedqa", seed=0)
    with Store(url) as first, Store(url) as second:
        first.sync_registry(load_registry(workspace))
        # both looked the key up and found nothing; both create
        one, two = first.create_eval_run(spec), second.create_eval_run(spec)
        assert one.id == two.id and one.status == "running"
        both = [Prediction(item_id=f"i{n}", prompt_hash="h", gold="A") for n in range(6)]
        assert first.add_predictions(one.id, both[:4]) == 4
        assert second.add_predictions(one.id, both) == 2  # the overlap is stored once
        first.finish_eval_run(one.id, [MetricValue("acc", 0.5, 6)])
        second.set_eval_run_status(one.id, "interrupted")  # the slower one stops: no downgrade
        assert first.find_eval_run(spec).status == "completed"
        # a completed run releases its key: --rerun starts a new one
        assert second.create_eval_run(spec).id != one.id
    assert rows(url, "SELECT COUNT(*), COUNT(DISTINCT item_id) FROM predictions") == [(6, 6)]
