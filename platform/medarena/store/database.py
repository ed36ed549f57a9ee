"""Connecting to the store: URL resolution, SQLite settings, Alembic migrations, schema checks."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError

from medarena.errors import SchemaBehind, StoreError

DB_URL_ENV = "MEDARENA_DB_URL"
DEFAULT_DB_NAME = "medarena.db"


def resolve_url(db: str | None, state_dir: Path | None) -> str:
    """`--db` (a URL or a file path), else $MEDARENA_DB_URL, else the workspace's SQLite file."""
    chosen = db or os.environ.get(DB_URL_ENV)
    if chosen:
        if "://" in chosen:
            return chosen
        return f"sqlite:///{Path(chosen).expanduser().resolve()}"
    if state_dir is None:
        raise StoreError(f"no database given: pass --db URL or set {DB_URL_ENV}")
    return f"sqlite:///{state_dir / DEFAULT_DB_NAME}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


BUSY_TIMEOUT_S = 30.0


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # WAL lets readers (the dashboard) run beside a writer; busy_timeout makes two writers wait
    # for each other instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys = ON")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.close()


def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """`PRAGMA journal_mode = WAL`, waiting like busy_timeout would.

    Switching a new file's journal mode needs a moment alone with it, and SQLite answers BUSY
    at once, without its busy handler, while another connection holds the file (another process
    creating the schema of the same new database): the campaign saw "database is locked" here.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def make_engine(url: str) -> Engine:
    """An engine for any SQLAlchemy URL; SQLite files get WAL, a busy timeout and FKs on."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r} ({exc})") from exc
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    path = sqlite_path(url)
    if path is not None:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise StoreError(f"{path} is a folder, not a database file")
    engine = create_engine(url, connect_args={"timeout": 30})
    event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("medarena.store") / "migrations"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """Alembic revision stamped in the database (None: never migrated)."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DatabaseError as exc:
        raise StoreError(f"{_describe(engine)} cannot be read as a database: {exc.orig}") from exc


def has_tables(engine: Engine) -> bool:
    try:
        return bool(inspect(engine).get_table_names())
    except DatabaseError as exc:
        raise StoreError(f"{_describe(engine)} cannot be read as a database: {exc.orig}") from exc


@contextmanager
def _migration(engine: Engine) -> Iterator[Connection]:
    """A connection whose whole migration is one transaction.

    SQLite has transactional DDL, but Python's sqlite3 (before 3.12) commits before every
    CREATE / ALTER / DROP on its own, so a migration killed half-way left some tables without a
    revision stamp ("not a medarena database" ever after), and a second process opening a new
    database at the same moment saw the first one's half-made schema. Here the driver's own
    transaction handling is off and the migration runs inside BEGIN IMMEDIATE: all of it or
    nothing, and a second migrator waits (busy_timeout) and then finds the work done (Alembic
    reads the revision inside the transaction).

    Foreign keys are off meanwhile, as SQLite's own procedure for table changes asks: batch
    mode rebuilds a table by copy, drop and rename, and with them on, dropping a table that
    others refer to (model_variants) fails or cascades. `PRAGMA foreign_key_check` must find
    nothing before the commit.
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            yield connection
        return
    with engine.connect() as connection:
        driver = connection.connection.driver_connection
        saved = driver.isolation_level
        driver.isolation_level = None  # autocommit at the driver: we issue BEGIN / COMMIT
        connection.exec_driver_sql("PRAGMA foreign_keys = OFF")  # no effect inside a transaction
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield connection
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise StoreError(f"the migration broke foreign keys: {broken[:5]}")
            except BaseException:
                connection.exec_driver_sql("ROLLBACK")
                raise
            connection.exec_driver_sql("COMMIT")
        finally:
            connection.exec_driver_sql("PRAGMA foreign_keys = ON")
            driver.isolation_level = saved


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate to `revision`, in one transaction; returns (before, after)."""
    before = current_revision(engine)
    config = alembic_config()
    try:
        with _migration(engine) as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except OperationalError as exc:
        raise StoreError(f"migration of {_describe(engine)} failed: {exc.orig}") from exc
    return before, current_revision(engine)


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with _migration(engine) as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def check_schema(engine: Engine, *, create_if_empty: bool) -> None:
    """Make sure the schema is the one this code expects.

    An empty database is created at the head revision when `create_if_empty`; a database at an
    older revision is never migrated silently: the user runs `medarena db upgrade` (and can back
    up first).
    """
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None and not has_tables(engine):
        if create_if_empty:
            upgrade(engine)
            return
        raise StoreError(f"{_describe(engine)} is empty: run `medarena db upgrade` to create it")
    if current is None:
        raise StoreError(
            f"{_describe(engine)} has tables but no medarena schema version; "
            "it is not a medarena database"
        )
    known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
    if current not in known:
        raise StoreError(
            f"{_describe(engine)} is at schema revision {current}, which this version of "
            f"medarena does not know (newer code wrote it?); this code expects {head}"
        )
    raise SchemaBehind(
        f"{_describe(engine)} has an older schema (revision {current}; this medarena needs "
        f"{head}): run `medarena db upgrade`"
    )


def _describe(engine: Engine) -> str:
    path = sqlite_path(str(engine.url))
    return f"database file {path}" if path else f"database {engine.url.render_as_string()}"
