"""Read-only SQL: reads work, every kind of write is refused and the file stays byte-identical."""

import hashlib
from pathlib import Path

import pytest

from medarena.registry import load_registry
from medarena.store import Store, WriteRefused, run_readonly_query
from medarena.store.readonly import _sqlite_query


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
