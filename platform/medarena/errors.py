"""The one error hierarchy. Kept free of heavy imports so the CLI can catch errors cheaply.

Two kinds of error reach a user, and the CLI treats them differently (`medarena.cli.common`):

- `UserError`: bad input or a refused request (a bad file, an unknown name, a setting that cannot
  be scored, an impossible plan, a query that could write). Exit code 2, one line naming the
  file / line / field, and nothing was changed.
- `OperationFailed`: something failed while working (the store, an engine, the file system, a
  training process). Exit code 1, with the cause.

Anything else is a bug and surfaces as a real traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXIT_FAILED = 1  # something went wrong while working
EXIT_REFUSED = 2  # bad input or a refused request: nothing was changed


class MedarenaError(Exception):
    """Base of every error medarena reports to a user instead of a traceback."""

    exit_code = EXIT_FAILED


class UserError(MedarenaError):
    """Bad input or a refused request; nothing was changed."""

    exit_code = EXIT_REFUSED


class OperationFailed(MedarenaError):
    """Something failed while working (store, engine, I/O, a training process)."""

    exit_code = EXIT_FAILED


# ------------------------------------------------------------------------------ user errors


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file, located as precisely as the input allows."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ProblemsError(UserError):
    """Raised with every problem found, so a user fixes them all in one pass."""

    def __init__(self, problems: Sequence[Problem], headline: str = "invalid input"):
        self.problems = list(problems)
        self.headline = headline
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{headline} ({len(self.problems)} problem(s)):\n{lines}")

    def __reduce__(self):  # raised in a worker process, re-raised whole in the parent
        return type(self), (self.problems, self.headline)


class Refused(UserError):
    """A request that cannot be carried out as asked (a setting that cannot be scored, a run
    that is already complete, a name that is taken); the message says what to change."""


class WorkspaceNotFound(UserError):
    """No medarena workspace (a folder holding models/) where one was looked for."""


class UnknownName(UserError, KeyError):
    """A name that is not in the registry; the message lists the known ones."""

    def __init__(self, kind: str, name: str, known: Sequence[str]):
        self.message = f"unknown {kind} {name!r}; known: {', '.join(sorted(known)) or '(none)'}"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class PlanError(Refused):
    """An impossible plan; the message says what would make it possible."""


class WriteRefused(UserError):
    """A read-only query could change the database; it was not run."""


class QueryTimeout(UserError):
    """A read-only query ran past its time limit and was stopped; nothing was changed."""


# ------------------------------------------------------------------------ operation failures


class StoreError(OperationFailed):
    """The database cannot be used as it is; the message says what to do."""


class SchemaBehind(StoreError):
    """The database has an older schema: `medarena db upgrade` migrates it."""


class EngineError(OperationFailed):
    """A model could not be loaded or run by an evaluation engine."""


class TrainingFailed(OperationFailed):
    """A training process failed or was stopped; running the same command again resumes."""
