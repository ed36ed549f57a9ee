"""What produced a result: the code version recorded with every run."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

from medarena import __version__


def _git(*args: str) -> str:
    here = Path(__file__).resolve().parent
    return subprocess.run(
        ["git", *args], cwd=here, capture_output=True, text=True, timeout=5, check=True
    ).stdout.strip()


@cache
def code_version() -> str:
    """`<package version>+g<commit>[.dirty]` inside a git checkout, else the package version."""
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}" + (".dirty" if dirty else "")
