"""The store on PostgreSQL: the same migrations, API and read-only queries as on SQLite."""

import os
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from medarena.errors import QueryTimeout
from medarena.registry import load_registry
from medarena.results import MetricValue, Prediction
from medarena.store import Store, WriteRefused
from medarena.store import run_readonly_query as query
from medarena.store.database import current_revision, downgrade, make_engine
from medarena.store.models import Base
from medarena.store.readonly import _generic_query
from tests.factories import eval_spec
from tests.integration.test_readonly_query import ENDLESS
from tests.postgres import postgres_server


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as url:
        if url is None:
            if os.environ.get("MEDARENA_REQUIRE_POSTGRES") == "1":
                pytest.fail("PostgreSQL is required here (MEDARENA_REQUIRE_POSTGRES=1)")
            pytest.skip("no PostgreSQL binaries on this machine")
        yield url
        engine = make_engine(url)
        with engine.begin() as connection:  # 0008 and older need a size: the API entries go
            connection.execute(text("DELETE FROM model_variants WHERE params_b IS NULL"))
        downgrade(engine, "base")
        engine.dispose()


def test_migrations_match_the_models_on_postgres(pg_url: str):
    with Store(pg_url) as store, store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        assert current_revision(store.engine) == "0010"


def test_store_round_trip_on_postgres(pg_url: str, workspace: Path):
    with Store(pg_url) as store:
        report = store.sync_registry(load_registry(workspace))
        assert report.variants == len(load_registry(workspace).variants)
        run = store.create_eval_run(
            eval_spec(
                "meditron-7b",
                "pubmedqa",
                scoring_mode="generate",
                shots=3,
                engine="vllm",
                config={"temperature": 0.0},
            )
        )
        store.add_predictions(
            run.id,
            [
                Prediction(
                    "p1",
                    "h1",
                    "yes",
                    parsed_answer="yes",
                    correct=True,
                    logprobs={"yes": -0.1, "no": -2.3},
                ),
                Prediction("p2", "h2", "no", parsed_answer=None, correct=False, parse_failed=True),
            ],
        )
        store.finish_eval_run(run.id, [MetricValue("acc", 0.5, 2, 0.0, 1.0)])
        assert store.predictions(run.id)[0].logprobs == {"yes": -0.1, "no": -2.3}
        board = store.leaderboard("acc")
        measured = [r for r in board if r.source == "measured"]
        assert [(r.variant, r.task, r.value) for r in measured] == [
            ("meditron-7b", "pubmedqa", 0.5)
        ]
        assert any(r.variant == "meditron-7b" and r.source.startswith("Chen") for r in board)


def test_readonly_queries_on_postgres(pg_url: str, workspace: Path):
    with Store(pg_url) as store:
        store.sync_registry(load_registry(workspace))
    rows = query(pg_url, "SELECT name FROM model_families ORDER BY name").rows
    assert ("meditron",) in rows
    with pytest.raises(WriteRefused):
        query(pg_url, "DELETE FROM model_families")
    # the server-side guard, without the statement check: a READ ONLY transaction
    with pytest.raises(WriteRefused, match="read-only"):
        _generic_query(
            pg_url,
            "WITH gone AS (DELETE FROM model_families RETURNING 1) SELECT count(*) FROM gone",
            None,
        )
    engine = make_engine(pg_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM model_families")).scalar() >= 10
    engine.dispose()


def test_readonly_query_time_limit_on_postgres(pg_url: str, workspace: Path):
    with Store(pg_url) as store:
        store.sync_registry(load_registry(workspace))
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"^stopped after 0\.5 s: the query ran past its time"):
        query(pg_url, ENDLESS, timeout_s=0.5)
    assert time.monotonic() - started < 10
    # statement_timeout was set for that transaction only: the next query has its own limit
    assert query(pg_url, "SELECT count(*) FROM model_families").rows[0][0] >= 10
    assert query(pg_url, "SELECT 1 FROM pg_sleep(0.6)", timeout_s=2).rows == [(1,)]


def test_sweep_claims_on_postgres(pg_url: str):
    from tests.integration.test_sweep import check_claims

    check_claims(pg_url)
