"""The results store on real SQLite files: migrations, schema checks, the Store API."""

import hashlib
import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from medarena.errors import Refused
from medarena.registry import load_registry
from medarena.results import MetricValue, Prediction, TrainingStep
from medarena.store import SchemaBehind, Store, StoreError
from medarena.store.database import (
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    resolve_url,
    upgrade,
)
from medarena.store.models import Base
from tests.factories import eval_spec


@pytest.fixture
def store(db_url: str, workspace: Path) -> Store:
    store = Store(db_url)
    store.sync_registry(load_registry(workspace))
    yield store
    store.close()


def test_migrated_schema_equals_the_models(db_url: str):
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    downgrade(engine, "base")
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_sqlite_settings(store: Store):
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_foreign_keys_are_enforced(store: Store):
    with pytest.raises(IntegrityError):
        store.add_predictions(999, [Prediction("q1", "h", "A")])


def test_older_schema_is_refused_until_upgraded(db_url: str, workspace: Path):
    engine = make_engine(db_url)
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO tasks (name, kind, spec) VALUES ('kept', 'multiple_choice', '{}')")
        )
    with pytest.raises(SchemaBehind, match=r"older schema \(revision 0001.*medarena db upgrade"):
        Store(db_url)
    upgrade(engine)
    with Store(db_url) as store, store.engine.connect() as connection:
        assert connection.execute(text("SELECT name FROM tasks")).scalar() == "kept"


def test_not_a_database_is_a_clear_error_and_is_left_alone(tmp_path: Path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(StoreError, match="cannot be read as a database"):
        Store(f"sqlite:///{path}")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_foreign_sqlite_database_is_not_adopted(tmp_path: Path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE mine (x INTEGER)")
    with pytest.raises(StoreError, match="not a medarena database"):
        Store(f"sqlite:///{path}")


def test_resolve_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert resolve_url("postgresql://u@h/db", None) == "postgresql://u@h/db"
    assert resolve_url(str(tmp_path / "x.db"), None) == f"sqlite:///{tmp_path / 'x.db'}"
    assert resolve_url(None, tmp_path) == f"sqlite:///{tmp_path / 'medarena.db'}"
    monkeypatch.setenv("MEDARENA_DB_URL", "sqlite:////elsewhere.db")
    assert resolve_url(None, tmp_path) == "sqlite:////elsewhere.db"


def test_registry_sync_is_idempotent_and_keeps_retired_variants(store: Store, workspace: Path):
    registry = load_registry(workspace)
    first = store.sync_registry(registry)
    second = store.sync_registry(registry)
    assert (first.families, first.variants) == (second.families, second.variants)
    assert first.variants == len(registry.variants)
    with store.engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM model_variants")).scalar()
    assert count == len(registry.variants)

    run = store.create_eval_run(eval_spec())
    (workspace / "models" / "tiny-medical.yaml").unlink()
    report = store.sync_registry(load_registry(workspace))
    assert report.retired_variants == ["tiny-medical-base"]
    with store.engine.connect() as connection:
        in_registry = connection.execute(
            text("SELECT in_registry FROM model_variants WHERE name = 'tiny-medical-base'")
        ).scalar()
    assert in_registry == 0
    assert store.predictions(run.id) == []  # the run and its variant row survive


def test_eval_run_lifecycle_and_resume(store: Store):
    run = store.create_eval_run(eval_spec())
    assert run.status == "running" and run.variant == "tiny-medical-base"
    first = [
        Prediction(f"q{i}", f"h{i}", "A", parsed_answer="A", correct=i % 2 == 0) for i in range(5)
    ]
    assert store.add_predictions(run.id, first) == 5
    # a resumed run re-sends items it already stored: nothing is duplicated
    again = [*first[3:], Prediction("q5", "h5", "B", parsed_answer="C", correct=False)]
    assert store.add_predictions(run.id, again) == 1
    assert store.stored_item_ids(run.id) == {f"q{i}" for i in range(6)}
    assert store.find_eval_run(eval_spec()).id == run.id
    assert store.find_eval_run(eval_spec(seed=7)) is None

    done = store.finish_eval_run(
        run.id, [MetricValue("acc", 0.5, 6, 0.1, 0.9)], items_per_s=12.0, tokens_per_s=900.0
    )
    assert (done.status, done.n_items) == ("completed", 6)
    assert store.metrics(run.id) == [MetricValue("acc", 0.5, 6, 0.1, 0.9)]
    stored = store.predictions(run.id)
    assert [p.item_id for p in stored] == [f"q{i}" for i in range(6)]
    assert stored[5].parsed_answer == "C" and stored[5].correct is False


def test_leaderboard_uses_the_latest_run_and_marks_published_results(store: Store):
    old = store.create_eval_run(eval_spec())
    store.finish_eval_run(old.id, [MetricValue("acc", 0.25, 40)])
    new = store.create_eval_run(eval_spec())
    store.finish_eval_run(new.id, [MetricValue("acc", 0.40, 40, 0.3, 0.5)])
    unfinished = store.create_eval_run(eval_spec())
    assert unfinished.status == "running"
    rows = store.leaderboard("acc")
    measured = [row for row in rows if row.source == "measured"]
    assert [(r.variant, r.task, r.value) for r in measured] == [
        ("tiny-medical-base", "medqa_4options", 0.40)
    ]
    assert measured[0].ci_low == 0.3
    published = [row for row in rows if row.source != "measured"]
    # every published accuracy in models/reference/, counted from the files themselves
    catalogue = load_registry()
    expected = sum(r.metric == "acc" for ref in catalogue.references.values() for r in ref.results)
    assert len(published) == expected >= 61
    meditron = [r for r in published if (r.variant, r.task) == ("meditron-7b", "pubmedqa")]
    assert [(r.value, r.source.startswith("Chen et al. 2023")) for r in meditron] == [(0.744, True)]
    assert not [
        r for r in store.leaderboard("acc", include_reference=False) if r.source != "measured"
    ]


def test_latest_completed_run_per_setting_everywhere(store: Store):
    def completed(value: float, **overrides) -> int:
        run = store.create_eval_run(eval_spec(**overrides))
        store.finish_eval_run(run.id, [MetricValue("acc", value, 4), MetricValue("f1", value, 4)])
        return run.id

    completed(0.25)  # older, same setting: not the latest
    latest = completed(0.5)
    three_shot = completed(0.75, shots=3)
    other_task = completed(1.0, task="pubmedqa")
    store.create_eval_run(eval_spec())  # running: never the latest
    runs = store.latest_runs(variant="tiny-medical-base", task="medqa_4options")
    assert [(run.id, run.shots, run.status) for run in runs] == [
        (latest, 0, "completed"),
        (three_shot, 3, "completed"),
    ]
    assert [run.id for run in store.latest_runs(shots=0)] == [latest, other_task]
    assert store.latest_runs(variant="meditron-7b") == []
    board = [row for row in store.leaderboard("acc") if row.source == "measured"]
    assert sorted(row.run_id for row in board) == [latest, three_shot, other_task]
    assert store.latest_metrics(["tiny-medical-base"], shots=0) == {
        ("tiny-medical-base", "medqa_4options", "loglik"): {"acc": 0.5, "f1": 0.5},
        ("tiny-medical-base", "pubmedqa", "loglik"): {"acc": 1.0, "f1": 1.0},
    }
    assert store.latest_metrics(["meditron-7b"], shots=0) == {}
    history = store.metric_history("tiny-medical-base", "medqa_4options", "acc")
    assert [(point.shots, point.value) for point in history] == [(0, 0.25), (0, 0.5), (3, 0.75)]
    assert store.task_names(completed=True) == ["medqa_4options", "pubmedqa"]


def test_training_run_records_steps_once_and_links_its_output(store: Store, workspace: Path):
    run = store.create_training_run(
        kind="pretrain",
        recipe_name="tiny-demo",
        recipe_hash="r" * 64,
        base_variant="tiny-medical-base",
        config={"zero_stage": 2},
        world_size=2,
    )
    steps = [
        TrainingStep(step, 5.0 - step * 0.1, 1e-3, tokens_seen=step * 4096) for step in range(1, 6)
    ]
    assert store.add_training_steps(run.id, steps) == 5
    assert store.add_training_steps(run.id, steps[3:]) == 0  # replayed after a resume
    assert [s.step for s in store.training_steps(run.id)] == [1, 2, 3, 4, 5]
    finished = store.finish_training_run(
        run.id, status="completed", output_variant="tiny-medical-base"
    )
    assert finished.tokens_seen == 5 * 4096
    assert finished.output_variant == "tiny-medical-base" and finished.status == "completed"
    assert (finished.world_size, finished.hardware) == (2, None)
    assert finished.wall_seconds is not None and finished.wall_seconds >= 0
    assert store.training_runs() == [finished]
    assert store.data_mix(run.id) == {}
    with pytest.raises(ValueError, match="status must be one of"):
        store.finish_training_run(run.id, status="done")


def test_unknown_variant_in_a_run_is_a_clear_error(store: Store):
    with pytest.raises(Refused, match="variant 'nope' is not in the store"):
        store.create_eval_run(eval_spec(variant="nope"))


def test_a_failed_write_leaves_no_partial_results(store: Store):
    run = store.create_eval_run(eval_spec())
    store.add_predictions(run.id, [Prediction("q1", "h1", "A", correct=True)])
    duplicate_metric = [MetricValue("acc", 1.0, 1), MetricValue("acc", 0.0, 1)]
    with pytest.raises(IntegrityError):
        store.finish_eval_run(run.id, duplicate_metric)
    assert store.metrics(run.id) == []
    assert store.find_eval_run(eval_spec()).status == "running"  # not half-finished
    bad_batch = [Prediction("q2", "h2", "B"), Prediction("q3", "h3", None)]  # gold is required
    with pytest.raises(IntegrityError):
        store.add_predictions(run.id, bad_batch)
    assert store.stored_item_ids(run.id) == {"q1"}  # the whole batch was rolled back


def test_0009_keeps_every_row_that_refers_to_a_variant(store: Store, db_url: str):
    """Making params_b nullable copies model_variants (SQLite batch mode), down and up again:
    runs, predictions and published results that refer to variants survive both, and only a
    database without undisclosed sizes goes back to 0008."""
    run = store.create_eval_run(eval_spec("tiny-medical-base", "medqa_4options"))
    store.add_predictions(run.id, [Prediction("q1", "h", "A", correct=True)])
    store.finish_eval_run(run.id, [MetricValue("acc", 1.0, 1)])
    engine = make_engine(db_url)
    undisclosed = "SELECT count(*) FROM model_variants WHERE params_b IS NULL"
    with engine.connect() as connection:
        assert connection.execute(text(undisclosed)).scalar() == 2  # gpt-3.5-turbo, gpt-4
    with pytest.raises(RuntimeError, match=r"2 variant.*no params_b"):
        downgrade(engine, "0008")
    assert current_revision(engine) == head_revision()
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM model_variants WHERE params_b IS NULL"))
    counted = (
        "SELECT (SELECT count(*) FROM model_variants), (SELECT count(*) FROM eval_runs), "
        "(SELECT count(*) FROM predictions), (SELECT count(*) FROM reference_results)"
    )
    with engine.connect() as connection:
        before = connection.execute(text(counted)).one()
    assert before[1:3] == (1, 1) and before[0] > 0 and before[3] > 0
    downgrade(engine, "0008")
    with engine.connect() as connection:
        assert connection.execute(text(counted)).one() == before
        with pytest.raises(IntegrityError):
            connection.execute(text("UPDATE model_variants SET params_b = NULL"))
    upgrade(engine)
    with engine.begin() as connection:
        assert connection.execute(text(counted)).one() == before
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        connection.execute(text("UPDATE model_variants SET params_b = NULL"))
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
