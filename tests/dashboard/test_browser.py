"""End to end in a real browser: `medarena dashboard` serves the app, headless Chromium (Debian's,
driven by Playwright) loads the leaderboard, opens head-to-head for two models and reads the
numbers off the page. Screenshots go to the test's tmp dir (and to docs/img/ with
MEDARENA_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser import CHROMIUM_ARGS
from tests.conftest import REPO
from tests.helpers import sql_rows
from tests.seeded import API_VARIANT, BASE, PRETRAINED, QA_TASK, api_run_usage

pytestmark = pytest.mark.e2e

README_SCREENSHOT = REPO / "docs" / "img" / "dashboard-leaderboard.png"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("MEDARENA_REQUIRE_BROWSER") == "1":
        pytest.fail(
            "Chromium is required here (MEDARENA_REQUIRE_BROWSER=1): apt-get install chromium"
        )
    pytest.skip(
        "no chromium on PATH (apt-get install -y chromium); CI sets MEDARENA_REQUIRE_BROWSER=1"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(seeded: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard as a user starts it: `medarena dashboard --db URL --port P`."""
    yield from serve(seeded[1], tmp_path_factory.mktemp("server") / "dashboard.log")


@pytest.fixture(scope="module")
def api_server(
    seeded_api: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The dashboard on the seeded database with an API run."""
    yield from serve(seeded_api[1], tmp_path_factory.mktemp("api-server") / "dashboard.log")


def serve(url: str, log: Path) -> Iterator[str]:
    """Start `medarena dashboard` on `url`, yield its base URL once it answers, stop it."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform")}
    command = [
        sys.executable,
        "-c",
        "from medarena.cli import app; app()",
        "--workspace",
        str(REPO),
    ]
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*command, "dashboard", "--db", url, "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group, stopped as one below
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"the dashboard exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as answer:
                    if answer.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the dashboard did not answer within 60 s:\n{log.read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def grid_rows(grid) -> list[dict[str, str]]:
    """The rows a st.dataframe renders, from its accessible table (the grid itself is a canvas)."""
    headers = grid.locator("thead th").all_inner_texts()
    return [
        dict(zip(headers, row.locator("td, th").all_inner_texts(), strict=False))
        for row in grid.locator("tbody tr").all()
    ]


def test_leaderboard_and_head_to_head_in_chromium(server, seeded, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    _, url = seeded
    latest = dict(
        sql_rows(
            url,
            "SELECT v.name, m.value FROM metrics m JOIN eval_runs r ON r.id = m.eval_run_id "
            "JOIN model_variants v ON v.id = r.variant_id JOIN tasks t ON t.id = r.task_id "
            "WHERE m.name = 'acc' AND t.name = :task AND r.id IN "
            "(SELECT max(id) FROM eval_runs GROUP BY variant_id, task_id)",
            task=QA_TASK,
        )
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(server)
            page.wait_for_selector('[data-testid="stDataFrame"]', timeout=60_000)
            pivot = page.get_by_test_id("stDataFrame").first
            # the grid's accessible table carries the full value (the canvas shows 4 decimals)
            expect(pivot).to_contain_text(repr(latest[PRETRAINED]), timeout=30_000)
            rows = {
                row["variant"]: row for row in grid_rows(pivot) if row.get("source") == "measured"
            }
            for name in (BASE, PRETRAINED):
                assert float(rows[name][QA_TASK]) == latest[name]
            assert page.get_by_test_id("stException").count() == 0
            page.screenshot(path=tmp_path / "leaderboard.png", full_page=True)
            if os.environ.get("MEDARENA_SCREENSHOTS") == "1":
                README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=README_SCREENSHOT)

            page.get_by_test_id("stSidebarNav").get_by_text("Head-to-head").click()
            page.wait_for_selector('[data-testid="stMetric"]', timeout=60_000)
            for label, name in (("Model A", PRETRAINED), ("Model B", BASE)):
                page.get_by_test_id("stSelectbox").filter(has_text=label).click()
                page.get_by_role("option", name=name, exact=True).click()
            cards = page.get_by_test_id("stMetric")
            expect(cards.filter(has_text="A wins / B wins / ties")).to_contain_text(
                "5 / 2 / 5", timeout=30_000
            )
            expect(cards.filter(has_text=f"A: {PRETRAINED}")).to_contain_text(
                f"{latest[PRETRAINED]:.4f}"
            )
            expect(cards.filter(has_text=f"B: {BASE}")).to_contain_text(f"{latest[BASE]:.4f}")
            expect(cards.filter(has_text="p (exact McNemar)")).to_contain_text("0.4531")
            items = page.get_by_test_id("stDataFrame").first
            expect(items).to_contain_text("q03")
            assert page.get_by_test_id("stException").count() == 0
            page.screenshot(path=tmp_path / "head_to_head.png", full_page=True)
        finally:
            browser.close()


def test_api_usage_and_cost_in_chromium(api_server, tmp_path):
    """The seeded GPT-4 run's tokens in / out and its dollars, read off the leaderboard page."""
    from playwright.sync_api import expect, sync_playwright

    tokens_in, tokens_out, cost = api_run_usage()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1400})
            page.goto(api_server)
            heading = page.get_by_text("API usage and cost")
            expect(heading).to_be_visible(timeout=60_000)
            expect(page.get_by_text(f"Total: ${cost:,.4f}")).to_be_visible(timeout=30_000)
            grid = page.get_by_test_id("stDataFrame").last
            expect(grid).to_contain_text(API_VARIANT, timeout=30_000)
            (row,) = [row for row in grid_rows(grid) if row.get("variant") == API_VARIANT]
            assert int(row["tokens_in"].replace(",", "")) == tokens_in
            assert int(row["tokens_out"].replace(",", "")) == tokens_out
            assert float(row["USD"]) == pytest.approx(cost, abs=5e-5)
            assert page.get_by_test_id("stException").count() == 0
            page.screenshot(path=tmp_path / "api_usage.png", full_page=True)
        finally:
            browser.close()
