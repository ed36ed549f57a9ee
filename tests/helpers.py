"""Helpers shared by the CLI-level tests: run `medarena` in-process, read the database back."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def training_killed_at_step(module: str, step: int, folder: Path) -> Iterator[None]:
    """While active, `medarena train` starts a training process (`module`) that SIGKILLs
    itself right after recording step `step`, as a crash or a preempted node would."""
    from medarena.training import launch

    script = folder / f"killed_at_step_{step}.py"
    script.write_text(script_killed_at_step(module, step))
    original = launch.local_command

    def killing(name: str, run_dir: Path, procs: int, launcher: str):
        _, env = original(name, run_dir, procs, launcher)
        return [sys.executable, str(script), str(run_dir)], env

    launch.local_command = killing
    try:
        yield
    finally:
        launch.local_command = original


def script_killed_at_step(module: str, step: int) -> str:
    """A training-process script for `module` (medarena.pretrain.train / medarena.instruct.train)
    that SIGKILLs itself right after recording step `step`."""
    return script_stopped_at_step(module, step, "os.kill(os.getpid(), signal.SIGKILL)")


def script_stopped_at_step(module: str, step: int, then: str) -> str:
    """A training-process script for `module` that runs the statement `then` right after
    recording step `step` (RUN_DIR is `sys.argv[1]`)."""
    return f"""
import os, signal, sys, time
from {module.rsplit(".", 1)[0]} import train
from medarena.training import loop

original = loop.Recorder.step

def stopping(self, step, *args):
    original(self, step, *args)
    if step == {step}:
        {then}

loop.Recorder.step = stopping
train.main(*loop.read_run(sys.argv[1:], "test"))
"""
