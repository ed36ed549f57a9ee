"""Two adjustments to datatrove: its dependency check (made once on import by the modules that
build its steps) and its progress messages (silenced while medarena runs its steps).

datatrove checks a step's pip dependencies (orjson for JSONL, xxhash for MinHash) by parsing the
metadata of every installed distribution, about 0.4 s per name in a large environment: more than
the demo's whole preparation takes. A direct lookup of the one distribution answers the same
question (installed or not), so the check is replaced by it.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from datatrove.utils import _import_utils
from loguru import logger


@lru_cache
def distribution_installed(name: str) -> bool | None:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    return True


_import_utils._is_distribution_available = distribution_installed


@contextmanager
def quiet() -> Iterator[None]:
    """datatrove's per-file and per-task log lines off (what fails is still raised)."""
    logger.disable("datatrove")
    try:
        yield
    finally:
        logger.enable("datatrove")
