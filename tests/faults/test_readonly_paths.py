"""Every statement that could change the database, through every path a user has to SQL: the
`medarena query` command and the dashboard's SQL page. Each is refused with a message (exit 2
for the command) and the file is byte-identical afterwards (sha256), with no -wal / -shm left.
The library function itself is covered statement by statement in
tests/integration/test_readonly_query.py (WRITES, reused here)."""

import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from medarena.errors import QueryTimeout
from tests.conftest import REPO
from tests.faults.faults import sha256
from tests.helpers import invoke
from tests.integration.test_readonly_query import ENDLESS, WRITES
from tests.seeded import seed_database

MORE = [
    "PRAGMA journal_mode=DELETE",
    "PRAGMA main.journal_mode = MEMORY",
    "PRAGMA user_version=5",
    "pragma USER_VERSION = 5",
    "PRAGMA schema_version = 1",
    "PRAGMA writable_schema = ON",
    "PRAGMA query_only = OFF",
    "SELECT 1; DROP TABLE eval_runs",
    "SELECT 1;DELETE FROM metrics;",
    "SELECT name FROM tasks; ATTACH DATABASE 'x.db' AS x",
    "WITH w AS (SELECT 1) INSERT INTO tasks (name, kind, spec) SELECT 'x', 'y', '{}' FROM w",
    "WITH RECURSIVE n(i) AS (SELECT 1) UPDATE metrics SET value = 0",
    "ATTACH 'file::memory:?cache=shared' AS m",
    "CREATE TEMP TABLE t AS SELECT * FROM metrics",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TRIGGER t AFTER INSERT ON tasks BEGIN DELETE FROM tasks; END",
    "INSERT OR IGNORE INTO tasks (name, kind, spec) VALUES ('x', 'y', '{}')",
    "SAVEPOINT s",
    "  \n-- comment\n  DELETE FROM metrics",
    "DROP INDEX IF EXISTS ix_metrics_name_eval_run_id_value",
]
STATEMENTS = [*WRITES, *MORE]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("readonly")
    url = seed_database(root)
    return root, Path(url.removeprefix("sqlite:///"))


def untouched(path: Path, digest: str) -> bool:
    """The file's bytes as before, and no journal content beside it: a read-only connection to
    a WAL database may leave an empty -wal and its -shm index (SQLite's own files), never a
    frame of data."""
    wal = path.with_name(path.name + "-wal")
    journal = path.with_name(path.name + "-journal")
    return (
        sha256(path) == digest
        and (not wal.exists() or wal.stat().st_size == 0)
        and not journal.exists()
    )


@pytest.mark.parametrize("sql", STATEMENTS)
def test_cli_query_refuses_and_leaves_the_file_identical(seeded, sql):
    root, path = seeded
    digest = sha256(path)
    result = invoke(root, str(path), "query", sql)
    assert result.exit_code == 2, (sql, result.output)
    assert "refused" in result.stderr.lower() or "one statement" in result.stderr, result.stderr
    assert "INTERRUPT" not in result.stderr  # the authorizer names the action it denied
    assert untouched(path, digest), sql


def test_dashboard_sql_page_refuses_every_write_and_leaves_the_file_identical(seeded, monkeypatch):
    _, path = seeded
    monkeypatch.setenv("MEDARENA_DB_URL", f"sqlite:///{path}")
    app = AppTest.from_file(str(REPO / "dashboard/app.py"), default_timeout=60).run()
    app.switch_page("views/sql.py").run()
    app.selectbox(key="sql_example").select("(your own query)").run()
    digest = sha256(path)
    for sql in STATEMENTS:
        app.text_area(key="sql_(your own query)").input(sql).run()
        app.button(key="sql_run").click().run()
        shown = [element.value for element in app.error]
        assert shown and shown[0].startswith("Refused:"), (sql, shown)
        assert not app.get("dataframe") or not [
            frame for frame in app.dataframe if frame.key == "sql_result"
        ], sql
        assert untouched(path, digest), sql
    # and a read still works on the same page afterwards
    app.text_area(key="sql_(your own query)").input("SELECT COUNT(*) AS n FROM metrics").run()
    app.button(key="sql_run").click().run()
    assert not app.error and int(app.dataframe[0].value["n"][0]) > 0
    assert untouched(path, digest)


def test_cli_query_stops_at_its_timeout_and_leaves_the_file_identical(seeded):
    root, path = seeded
    digest = sha256(path)
    started = time.monotonic()
    result = invoke(root, str(path), "query", ENDLESS, "--timeout", "0.5")
    assert time.monotonic() - started < 10
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "error: stopped after 0.5 s: the query ran past its time limit; nothing was changed "
        "(raise --timeout to give it longer)"
    ]
    assert untouched(path, digest)


def test_dashboard_sql_stops_at_its_time_limit_and_leaves_the_file_identical(seeded, monkeypatch):
    _, path = seeded
    url = f"sqlite:///{path}"
    digest = sha256(path)
    monkeypatch.syspath_prepend(str(REPO / "dashboard"))
    sys.modules.pop("data", None)  # the dashboard's module of that name, not a cached other
    import data

    started = time.monotonic()
    with pytest.raises(QueryTimeout, match=r"stopped after 0\.5 s"):
        data.run_sql(url, ENDLESS, timeout_s=0.5)
    assert time.monotonic() - started < 10
    # and the page: its time limit box, the message, no result table
    monkeypatch.setenv("MEDARENA_DB_URL", url)
    app = AppTest.from_file(str(REPO / "dashboard/app.py"), default_timeout=60).run()
    app.switch_page("views/sql.py").run()
    app.selectbox(key="sql_example").select("(your own query)").run()
    assert app.number_input(key="sql_timeout").value == 10.0
    app.number_input(key="sql_timeout").set_value(0.5).run()
    app.text_area(key="sql_(your own query)").input(ENDLESS).run()
    app.button(key="sql_run").click().run()
    assert [element.value for element in app.error] == [
        "Time limit: stopped after 0.5 s: the query ran past its time limit; nothing was "
        "changed. Raise the limit above to give it longer."
    ]
    assert not [frame for frame in app.dataframe if frame.key == "sql_result"]
    assert untouched(path, digest)
