"""What every command module shares: the consoles, the global options (workspace, database) and
the one error handler. Command modules import this module and, to reuse a printer, modules below
them (demo -> train, evaluate, models); only `medarena.cli` itself assembles them into the app, so
the package has no import cycle."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import typer
from rich.console import Console

from medarena.errors import EXIT_FAILED, EXIT_REFUSED, MedarenaError
from medarena.registry import STATE_DIR, Registry, find_workspace, load_registry

__all__ = ["EXIT_FAILED", "EXIT_REFUSED", "Context", "err", "fail", "out", "reports_errors"]

# wide tables when piped (rich assumes 80 columns without a terminal); $COLUMNS still wins
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, width=_WIDTH)


@dataclass
class Context:
    """The global options, resolved lazily (a command that needs no registry never loads it)."""

    workspace: str | None
    db: str | None

    def registry(self) -> Registry:
        return load_registry(self.workspace)

    def db_url(self) -> str:
        from medarena.store import resolve_url

        state_dir = None
        if self.db is None:
            state_dir = find_workspace(self.workspace) / STATE_DIR
        return resolve_url(self.db, state_dir)

    def store(self, *, create_if_empty: bool = True) -> Any:
        from medarena.store import Store

        return Store(self.db_url(), create_if_empty=create_if_empty)


def fail(message: str, code: int) -> typer.Exit:
    """Print `error: message` on stderr; returns the Exit to raise."""
    err.print(f"error: {message}", style="red", markup=False, highlight=False)
    return typer.Exit(code)


F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """The one error handler: a MedarenaError becomes `error: ...` on stderr and its exit code
    (2: bad input or refused, nothing changed; 1: failed while working). Anything else is a bug
    and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except MedarenaError as exc:
            raise fail(str(exc), exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
