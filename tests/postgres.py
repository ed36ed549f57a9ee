"""A throwaway PostgreSQL server for tests that prove the store works beyond SQLite.

Uses $MEDARENA_TEST_POSTGRES_URL when set; otherwise starts a private cluster from the local
PostgreSQL binaries in a temporary folder, reachable only through a Unix socket (no TCP port).
Without PostgreSQL the tests are skipped, unless $MEDARENA_REQUIRE_POSTGRES=1 (CI), where that
is a failure instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _as_postgres_user() -> list[str]:
    # initdb refuses to run as root; Debian's package creates a `postgres` system user
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@contextmanager
def postgres_server() -> Iterator[str | None]:
    """Yield a SQLAlchemy URL of an empty database, or None when PostgreSQL is unavailable."""
    if os.environ.get("MEDARENA_TEST_POSTGRES_URL"):
        yield os.environ["MEDARENA_TEST_POSTGRES_URL"]
        return
    binaries = _binaries()
    if binaries is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="medarena-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    prefix = _as_postgres_user()
    run = lambda *args: subprocess.run([*prefix, *args], check=True, capture_output=True)  # noqa: E731
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "medarena")
        options = f"-k {folder} -c listen_addresses='' -p 54329 -c fsync=off"
        run(
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-w",
            "-l",
            str(folder / "log"),
            "start",
        )
        try:
            yield f"postgresql+psycopg://medarena@/postgres?host={folder}&port=54329"
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
