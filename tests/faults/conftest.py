"""Fault-injection tests: every test here is an integration test (real processes and files)."""

from __future__ import annotations

import os
import random

import pytest

# One seed for every drawn fault point; override with MEDARENA_FAULT_SEED to explore others.
SEED = int(os.environ.get("MEDARENA_FAULT_SEED", "20261123"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "faults" in item.path.parts:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def fault_rng(request: pytest.FixtureRequest) -> random.Random:
    """A generator seeded from SEED and the test's name, so each test's points are stable."""
    rng = random.Random(f"{SEED}:{request.node.name}")
    print(f"fault seed {SEED} ({request.node.name})")
    return rng
