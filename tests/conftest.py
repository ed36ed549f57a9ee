"""Shared fixtures: a private copy of the workspace, a fresh database, the tiny model."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.integration)


def copy_models(root: Path) -> None:
    """The shipped models/ into root/models (curated cards only: models a training run
    produced are registered under the workspace's .medarena/models/)."""
    shutil.copytree(REPO / "models", root / "models")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # a developer's own settings must not leak into the tests
    monkeypatch.delenv("MEDARENA_WORKSPACE", raising=False)
    monkeypatch.delenv("MEDARENA_DB_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A writable copy of the shipped models/ folder."""
    root = tmp_path / "ws"
    copy_models(root)
    return root


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'results.db'}"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from medarena.tiny import build_tiny

    out = tmp_path_factory.mktemp("tiny") / "tiny-medical-base"
    build_tiny(out, seed=0)
    return out


@pytest.fixture
def eval_workspace(workspace: Path, tiny_model_dir: Path) -> Path:
    """A workspace with the shipped benchmarks and the tiny model where the registry looks."""
    (workspace / "benchmarks").symlink_to(REPO / "benchmarks")
    models = workspace / ".medarena" / "models"
    models.mkdir(parents=True)
    (models / "tiny-medical-base").symlink_to(tiny_model_dir)
    return workspace


@pytest.fixture(scope="session")
def slurm() -> Iterator[object]:
    """A private single-node SLURM cluster for the session (tests/slurm_cluster.py), stopped
    at the end. Skipped without the packages, a failure where MEDARENA_REQUIRE_SLURM=1 (CI)."""
    from tests.slurm_cluster import slurm_cluster, unavailable

    with slurm_cluster() as cluster:
        if cluster is None:
            unavailable()
        yield cluster
