"""A seeded database for the dashboard tests and AppTest on the real app file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO
from tests.seeded import seed_api_database, seed_database

APP = REPO / "dashboard" / "app.py"


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("dashboard")
    return root, seed_database(root)


@pytest.fixture(scope="session")
def seeded_api(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The seeded database with an API run (GPT-4, billed per item)."""
    root = tmp_path_factory.mktemp("dashboard-api")
    return root, seed_api_database(root)


@pytest.fixture
def open_app(monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """Run the app on a database URL, optionally on one page (a views/ file name)."""

    def run(url: str, page: str | None = None) -> AppTest:
        monkeypatch.setenv("MEDARENA_DB_URL", url)
        app = AppTest.from_file(str(APP), default_timeout=60).run()
        if page is not None:
            app.switch_page(f"views/{page}").run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    return run
