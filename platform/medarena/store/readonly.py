"""Read-only SQL over the store, for the CLI and the dashboard.

Three guards, so no single mistake can write: (1) only one statement, starting with SELECT,
WITH, VALUES, EXPLAIN or a read-only PRAGMA, calling only read-only pragma functions; (2) for
SQLite files, a connection opened with `mode=ro` plus `PRAGMA query_only`, and an authorizer
that denies every action except reading; (3) for other databases, a READ ONLY transaction that
is always rolled back.

Every query has a time limit (SQLite: a progress handler that interrupts it; PostgreSQL:
`statement_timeout`): a stopped query raises QueryTimeout and leaves the database as it was.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from medarena.errors import QueryTimeout, Refused, StoreError, WriteRefused
from medarena.results import QueryResult
from medarena.store.database import make_engine, sqlite_path

DEFAULT_TIMEOUT_S = 10.0
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement stopped by statement_timeout

ALLOWED_FIRST_WORDS = {"select", "with", "values", "explain", "pragma"}
# PRAGMAs that only report; everything else (journal_mode=, wal_checkpoint, optimize...) may write
READ_ONLY_PRAGMAS = {
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "database_list",
    "collation_list",
    "function_list",
    "pragma_list",
    "compile_options",
    "module_list",
}
DENIED_FUNCTIONS = {"load_extension", "writefile", "edit"}
# the schema tables SQLite names when it declares a pragma function's virtual table
SCHEMA_TABLES = {"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"}
# how many SQLite VM instructions run between two looks at the clock
PROGRESS_INSTRUCTIONS = 10_000


def _strip_comments_and_strings(sql: str) -> str:
    sql = re.sub(r"--[^\n]*", " ", sql)
    sql = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    return re.sub(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", "''", sql)


def check_statement(sql: str) -> None:
    """Refuse anything but one reading statement, before any connection is opened."""
    bare = _strip_comments_and_strings(sql).strip()
    statements = [part for part in bare.split(";") if part.strip()]
    if not statements:
        raise WriteRefused("empty query")
    if len(statements) > 1:
        raise WriteRefused("one statement at a time: the query contains several")
    first = statements[0].split(None, 1)[0].lower()
    if first not in ALLOWED_FIRST_WORDS:
        raise WriteRefused(
            f"{first.upper()} statements are refused: queries are read-only "
            f"(allowed: {', '.join(sorted(w.upper() for w in ALLOWED_FIRST_WORDS))})"
        )
    if first == "pragma":
        match = re.match(r"pragma\s+(?:\w+\.)?(\w+)\s*(=|\()?", statements[0], flags=re.I)
        name = match.group(1).lower() if match else ""
        if name not in READ_ONLY_PRAGMAS or (match and match.group(2) == "="):
            raise WriteRefused(f"PRAGMA {name} is refused: {_ONLY_REPORTING}")
    for name in re.findall(r"\bpragma_(\w+)", statements[0], flags=re.I):
        if name.lower() not in READ_ONLY_PRAGMAS:
            raise WriteRefused(f"pragma_{name.lower()} is refused: {_ONLY_REPORTING}")


_ONLY_REPORTING = (
    "only reporting pragmas are allowed, as PRAGMA name or as the function pragma_name "
    f"({', '.join(sorted(READ_ONLY_PRAGMAS))})"
)


class _Authorizer:
    """sqlite3 authorizer that allows reading only, remembering what it denied and why."""

    def __init__(self) -> None:
        self.denied: str | None = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() not in DENIED_FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in READ_ONLY_PRAGMAS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_UPDATE and (arg1 or "").lower() in SCHEMA_TABLES:
            # SQLite asks this while declaring a pragma function's virtual table (the
            # SQLITE_PRAGMA check that follows decides); IGNORE leaves any real update of the
            # schema table a no-op, and SQLite refuses those on its own anyway
            return sqlite3.SQLITE_IGNORE
        self.denied = _ACTION_NAMES.get(action, f"action {action}") + (f" {arg1}" if arg1 else "")
        return sqlite3.SQLITE_DENY


# the authorizer's action codes only: the module's other SQLITE_* integers are result codes,
# and several share a value with an action (SQLITE_INTERRUPT = SQLITE_DELETE = 9)
_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{name}"): name
    for name in [
        "CREATE_INDEX",
        "CREATE_TABLE",
        "CREATE_TEMP_INDEX",
        "CREATE_TEMP_TABLE",
        "CREATE_TEMP_TRIGGER",
        "CREATE_TEMP_VIEW",
        "CREATE_TRIGGER",
        "CREATE_VIEW",
        "DELETE",
        "DROP_INDEX",
        "DROP_TABLE",
        "DROP_TEMP_INDEX",
        "DROP_TEMP_TABLE",
        "DROP_TEMP_TRIGGER",
        "DROP_TEMP_VIEW",
        "DROP_TRIGGER",
        "DROP_VIEW",
        "INSERT",
        "PRAGMA",
        "READ",
        "SELECT",
        "TRANSACTION",
        "UPDATE",
        "ATTACH",
        "DETACH",
        "ALTER_TABLE",
        "REINDEX",
        "ANALYZE",
        "CREATE_VTABLE",
        "DROP_VTABLE",
        "FUNCTION",
        "SAVEPOINT",
        "RECURSIVE",
    ]
    if hasattr(sqlite3, f"SQLITE_{name}")
}


class _Deadline:
    """sqlite3 progress handler that interrupts the statement once `seconds` have passed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.passed = False

    def __call__(self) -> int:
        self.passed = time.monotonic() > self.at
        return int(self.passed)


def run_readonly_query(
    url: str,
    sql: str,
    *,
    max_rows: int | None = 10_000,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
) -> QueryResult:
    """Run one read-only statement and return its rows (at most `max_rows`), stopping it with
    QueryTimeout after `timeout_s` seconds (None: no limit)."""
    if timeout_s is not None and not timeout_s > 0:
        raise Refused(f"the time limit must be a positive number of seconds, not {timeout_s}")
    check_statement(sql)
    path = sqlite_path(url)
    if path is not None:
        return _sqlite_query(path, sql, max_rows, timeout_s)
    if make_url(url).get_backend_name() == "sqlite":
        raise StoreError("read-only queries need a SQLite file, not an in-memory database")
    return _generic_query(url, sql, max_rows, timeout_s)


def _stopped(seconds: float) -> QueryTimeout:
    return QueryTimeout(
        f"stopped after {seconds:g} s: the query ran past its time limit; nothing was changed"
    )


def _sqlite_query(
    path: Path, sql: str, max_rows: int | None, timeout_s: float | None = DEFAULT_TIMEOUT_S
) -> QueryResult:
    if not path.is_file():
        raise StoreError(f"database file {path} does not exist")
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        connection.execute("PRAGMA query_only = ON")
        authorizer = _Authorizer()
        connection.set_authorizer(authorizer)
        deadline = _Deadline(timeout_s) if timeout_s is not None else None
        connection.set_progress_handler(deadline, PROGRESS_INSTRUCTIONS)
        try:
            cursor = connection.execute(sql)
            rows = cursor.fetchmany(max_rows + 1) if max_rows is not None else cursor.fetchall()
        except sqlite3.DatabaseError as exc:
            if deadline is not None and deadline.passed:
                raise _stopped(deadline.seconds) from exc
            if authorizer.denied or "readonly" in str(exc) or "not authorized" in str(exc):
                raise WriteRefused(
                    f"refused: the query tried {authorizer.denied or 'to write'}; "
                    "queries are read-only"
                ) from exc
            if getattr(exc, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise StoreError(
                    f"database file {path} cannot be read as a database: {exc}"
                ) from exc
            raise StoreError(f"query failed: {exc}") from exc
        columns = [column[0] for column in cursor.description or []]
    finally:
        connection.close()
    return _result(columns, rows, max_rows)


def _generic_query(
    url: str, sql: str, max_rows: int | None, timeout_s: float | None = DEFAULT_TIMEOUT_S
) -> QueryResult:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name in {"postgresql", "mysql", "mariadb"}:
                connection.execute(text("SET TRANSACTION READ ONLY"))
            if engine.dialect.name == "postgresql" and timeout_s is not None:
                # LOCAL: for this transaction only, which is rolled back below
                milliseconds = max(1, round(timeout_s * 1000))
                connection.execute(text(f"SET LOCAL statement_timeout = {milliseconds}"))
            try:
                result = connection.exec_driver_sql(sql)
                columns = list(result.keys())
                rows = result.fetchmany(max_rows + 1) if max_rows is not None else result.fetchall()
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) == QUERY_CANCELED and timeout_s:
                    raise _stopped(timeout_s) from exc
                if "read-only" in str(exc.orig) or "READ ONLY" in str(exc.orig):
                    raise WriteRefused(f"refused by the server: {exc.orig}") from exc
                raise StoreError(f"query failed: {exc.orig}") from exc
            finally:
                connection.rollback()
    finally:
        engine.dispose()
    return _result(columns, [tuple(row) for row in rows], max_rows)


def _result(columns: list[str], rows: list, max_rows: int | None) -> QueryResult:
    truncated = max_rows is not None and len(rows) > max_rows
    return QueryResult(columns, list(rows[:max_rows] if truncated else rows), truncated)
