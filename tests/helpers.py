"""Helpers shared by the CLI-level tests: run `medarena` in-process, read the database back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import Result
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from medarena.cli import app

runner = CliRunner()


def invoke(workspace: Path, db_url: str, *args: str) -> Result:
    """`medarena --workspace W --db URL args...` in this process."""
    return runner.invoke(app, ["--workspace", str(workspace), "--db", db_url, *args])


def sql_rows(db_url: str, sql: str, **params: Any) -> list[tuple]:
    """Rows of one SQL statement, on a connection of its own."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return [tuple(row) for row in connection.execute(text(sql), params)]
    finally:
        engine.dispose()


def as_json(value: Any) -> Any:
    """A JSON column as Python (SQLite returns the text)."""
    return json.loads(value) if isinstance(value, str) else value
