"""Read-only SQL: reads work, every kind of write is refused and the file stays byte-identical."""

import hashlib
import time
from pathlib import Path

import pytest

from medarena.errors import QueryTimeout, Refused
from medarena.registry import load_registry
from medarena.store import Store, WriteRefused, run_readonly_query
from medarena.store.readonly import _sqlite_query

# never ends by itself: counts an endless recursive sequence
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"


@pytest.fixture
def populated(tmp_path: Path, workspace: Path) -> Path:
    path = tmp_path / "history.db"
    with Store(f"sqlite:///{path}") as store:
        store.sync_registry(load_registry(workspace))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_select_returns_rows(populated: Path):
    result = run_readonly_query(
        f"sqlite:///{populated}", "SELECT name, params_b FROM model_variants ORDER BY name"
    )
    assert result.columns == ["name", "params_b"]
    assert ("tiny-medical-base", 0.000213) in result.rows
    assert not result.truncated


def test_max_rows_truncates(populated: Path):
    result = run_readonly_query(
        f"sqlite:///{populated}",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
        "WHERE i < 50) SELECT i FROM n",
        max_rows=10,
    )
    assert len(result.rows) == 10 and result.truncated


def test_reporting_pragma_is_allowed(populated: Path):
    result = run_readonly_query(f"sqlite:///{populated}", "PRAGMA table_info(model_variants)")
    assert "params_b" in [row[1] for row in result.rows]


def test_reporting_pragma_functions_are_allowed(populated: Path):
    sql = (
        "SELECT t.name, c.name FROM pragma_table_list t, pragma_table_info(t.name) c "
        "WHERE t.name = 'predictions' AND c.pk"
    )
    before = digest(populated)
    assert run_readonly_query(f"sqlite:///{populated}", sql).rows == [("predictions", "id")]
    # the connection's own guard (the authorizer) allows them too
    names = _sqlite_query(populated, "SELECT name FROM pragma_index_list('metrics')", None).rows
    assert ("ix_metrics_name_eval_run_id_value",) in names
    assert digest(populated) == before


@pytest.mark.parametrize("pragma", ["user_version", "journal_mode", "data_version"])
def test_other_pragma_functions_are_refused_naming_the_pragma(populated: Path, pragma: str):
    before = digest(populated)
    sql = f"SELECT * FROM pragma_{pragma}"
    with pytest.raises(WriteRefused, match=f"^pragma_{pragma} is refused: only reporting"):
        run_readonly_query(f"sqlite:///{populated}", sql)
    with pytest.raises(WriteRefused, match=f"the query tried PRAGMA {pragma};"):
        _sqlite_query(populated, sql, None)
    assert digest(populated) == before


def test_an_endless_query_stops_at_the_time_limit(populated: Path):
    before = digest(populated)
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"^stopped after 0\.3 s: the query ran past its time"):
        run_readonly_query(f"sqlite:///{populated}", ENDLESS, timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert digest(populated) == before
    # the same connection settings still answer a query that ends
    assert run_readonly_query(f"sqlite:///{populated}", "SELECT 1", timeout_s=0.3).rows == [(1,)]


def test_the_time_limit_stops_a_slow_fetch_too(populated: Path):
    # every row comes quickly, but there is no end to them without a row limit
    endless_rows = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c"
    with pytest.raises(QueryTimeout):
        run_readonly_query(f"sqlite:///{populated}", endless_rows, max_rows=None, timeout_s=0.3)


@pytest.mark.parametrize("seconds", [0, -1.0])
def test_the_time_limit_must_be_positive(populated: Path, seconds: float):
    with pytest.raises(Refused, match="time limit must be a positive number of seconds"):
        run_readonly_query(f"sqlite:///{populated}", "SELECT 1", timeout_s=seconds)


WRITES = [
    "INSERT INTO tasks (name, kind, spec) VALUES ('x', 'y', '{}')",
    "UPDATE model_variants SET params_b = 0",
    "DELETE FROM model_variants",
    "DROP TABLE predictions",
    "CREATE TABLE t (x)",
    "ALTER TABLE tasks ADD COLUMN x",
    "REPLACE INTO tasks (name, kind, spec) VALUES ('x', 'y', '{}')",
    "ATTACH DATABASE '/tmp/other.db' AS other",
    "DETACH DATABASE main",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 7",
    "PRAGMA wal_checkpoint(TRUNCATE)",
    "PRAGMA foreign_keys = OFF",
    "VACUUM",
    "REINDEX",
    "ANALYZE",
    "BEGIN IMMEDIATE",
    "WITH doomed AS (SELECT id FROM tasks) DELETE FROM tasks WHERE id IN doomed",
    "SELECT 1; DROP TABLE tasks",
    "/* sneaky */ DELETE FROM model_variants -- SELECT",
    "SELECT load_extension('evil')",
    "SELECT * FROM pragma_user_version",
    "SELECT journal_mode FROM pragma_journal_mode('main')",
]


@pytest.mark.parametrize("sql", WRITES)
def test_writes_are_refused_and_the_file_is_untouched(populated: Path, sql: str):
    before = digest(populated)
    with pytest.raises(WriteRefused):
        run_readonly_query(f"sqlite:///{populated}", sql)
    assert digest(populated) == before


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM model_variants",
        "WITH doomed AS (SELECT id FROM tasks) DELETE FROM tasks WHERE id IN doomed",
        "PRAGMA user_version = 7",
        "ATTACH DATABASE ':memory:' AS other",
    ],
)
def test_connection_guard_holds_even_without_the_statement_check(populated: Path, sql: str):
    before = digest(populated)
    with pytest.raises(WriteRefused, match="refused"):
        _sqlite_query(populated, sql, None)
    assert digest(populated) == before


def test_missing_file_is_not_created(tmp_path: Path):
    target = tmp_path / "absent.db"
    with pytest.raises(Exception, match="does not exist"):
        run_readonly_query(f"sqlite:///{target}", "SELECT 1")
    assert not target.exists()
