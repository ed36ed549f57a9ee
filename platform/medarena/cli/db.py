"""`medarena db ...` (create, migrate, inspect the results database) and `medarena query`
(read-only SQL over it)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.table import Table

from medarena.cli.common import err, out, reports_errors
from medarena.errors import Problem, ProblemsError, QueryTimeout

app = typer.Typer(help="The results database.", no_args_is_help=True)


@contextmanager
def _engine(ctx: typer.Context) -> Iterator[Any]:
    from medarena.store.database import make_engine

    engine = make_engine(ctx.obj.db_url())
    try:
        yield engine
    finally:
        engine.dispose()


@app.command("upgrade")
@reports_errors
def db_upgrade(ctx: typer.Context) -> None:
    """Create the database or migrate it to the current schema."""
    from medarena.store.database import upgrade

    with _engine(ctx) as engine:
        before, after = upgrade(engine)
    if before == after:
        out.print(f"{ctx.obj.db_url()}: already at schema revision {after}")
    else:
        out.print(f"{ctx.obj.db_url()}: schema revision {before or '(empty)'} -> {after}")


@app.command("current")
@reports_errors
def db_current(ctx: typer.Context) -> None:
    """Print the database's schema revision and the one this code expects."""
    from medarena.store.database import current_revision, head_revision

    with _engine(ctx) as engine:
        current = current_revision(engine)
    out.print(
        f"{ctx.obj.db_url()}: revision {current or '(empty)'}; "
        f"this medarena expects {head_revision()}"
    )


@reports_errors
def query(
    ctx: typer.Context,
    sql: str = typer.Argument(..., help="One SELECT / WITH / EXPLAIN statement."),
    fmt: str = typer.Option("table", "--format", help="table, csv or json."),
    max_rows: int = typer.Option(10_000, help="Stop after this many rows."),
    timeout: float = typer.Option(
        10.0, "--timeout", metavar="SECONDS", help="Stop the query after this many seconds."
    ),
) -> None:
    """Run a read-only SQL query over the results history (writes are refused, exit 2)."""
    from medarena.store import run_readonly_query

    if fmt not in {"table", "csv", "json"}:
        raise ProblemsError([Problem("command line", None, "--format", f"unknown {fmt!r}")])
    try:
        result = run_readonly_query(ctx.obj.db_url(), sql, max_rows=max_rows, timeout_s=timeout)
    except QueryTimeout as exc:
        raise QueryTimeout(f"{exc} (raise --timeout to give it longer)") from None
    if fmt == "json":
        rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        table = Table(*result.columns)
        for row in result.rows:
            table.add_row(*("NULL" if value is None else str(value) for value in row))
        out.print(table)
    if result.truncated:
        err.print(f"(stopped after {max_rows} rows: raise --max-rows to see more)")
