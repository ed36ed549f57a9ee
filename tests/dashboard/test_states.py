"""Empty and broken databases: the app says what to do, never shows a traceback, never writes;
and the dashboard never imports torch."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

from medarena.store import Store
from medarena.store.database import current_revision, make_engine, upgrade
from tests.conftest import REPO
from tests.dashboard.conftest import APP


def messages(app) -> list[str]:
    return [e.value for e in app.info] + [e.value for e in app.error]


def test_missing_database_shows_how_to_produce_results(tmp_path, open_app):
    path = tmp_path / "none.db"
    app = open_app(f"sqlite:///{path}")
    assert messages(app) == [f"No database at {path} yet. Produce results with:"]
    assert "medarena demo" in app.code[0].value
    assert "medarena eval -m VARIANT -t TASK" in app.code[0].value
    assert not path.exists()  # the dashboard does not create it


def test_empty_database_shows_how_to_produce_results(tmp_path, open_app):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).close()  # schema at head, nothing measured
    app = open_app(url)
    assert messages(app) == [f"The database {url} holds no evaluation or training run yet. Run:"]
    assert "medarena demo" in app.code[0].value
    assert not app.get("plotly_chart") and not app.dataframe


def test_older_schema_says_to_upgrade_and_is_left_alone(tmp_path, open_app):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    upgrade(engine, "0002")
    app = open_app(url)
    (message,) = [e.value for e in app.error]
    assert "has an older schema (revision 0002" in message
    assert message.endswith("run `medarena db upgrade`")
    assert current_revision(engine) == "0002"
    engine.dispose()


def test_not_a_database(tmp_path, open_app):
    path = tmp_path / "notes.db"
    path.write_text("not sqlite at all\n" * 100)
    app = open_app(f"sqlite:///{path}")
    (message,) = [e.value for e in app.error]
    assert "cannot be read as a database" in message


def test_a_view_failing_shows_a_message_not_a_traceback(seeded, tmp_path, open_app):
    root, _ = seeded
    broken = tmp_path / "broken.db"
    shutil.copy(root / "seeded.db", broken)
    with sqlite3.connect(broken) as connection:
        connection.execute("DROP TABLE metrics")
    app = open_app(f"sqlite:///{broken}")
    (message,) = [e.value for e in app.error]
    assert message.startswith("This view could not be shown: ")
    assert "no such table: metrics" in message
    registry = open_app(f"sqlite:///{broken}", "registry.py")  # views not needing it still work
    assert not registry.error and registry.dataframe


DRIVER = """
import json, os, sys
from streamlit.testing.v1 import AppTest
app = AppTest.from_file(sys.argv[1], default_timeout=60).run()
pages = ["task", "head_to_head", "training", "history", "sql", "registry"]
failures = [e.value for e in app.exception] + [e.value for e in app.error]
for page in pages:
    app.switch_page(f"views/{page}.py").run()
    failures += [e.value for e in app.exception] + [e.value for e in app.error]
print(json.dumps({"torch": sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3],
                  "failures": failures}))
"""


def test_the_dashboard_never_imports_torch(seeded):
    _, url = seeded
    env = {**os.environ, "MEDARENA_DB_URL": url, "PYTHONPATH": str(REPO / "platform")}
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(APP)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"torch": [], "failures": []}
