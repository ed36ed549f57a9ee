"""Dashboard figures for docs/PERFORMANCE.md: a seeded SQLite file of 100 variants x 20 tasks x
1M per-item rows, the leaderboard's queries (goal <= 100 ms) and the leaderboard view's data
load + render (goal <= 2 s), plus the task and head-to-head views' reads.

Run: .venv/bin/python scripts/bench_dashboard.py [--variants 100 --tasks 20 --items 500]
(--items is per run: 100 x 20 x 500 = 1M prediction rows; two runs per variant x task, the
older one without items, so "latest run" has something to pick.)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "dashboard"))
CHUNK = 50_000


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def describe(name: str, times: list[float], unit: str = "ms", scale: float = 1000.0) -> str:
    values = [t * scale for t in times]
    return (
        f"| {name} | {min(values):.1f} | {statistics.median(values):.1f} | "
        f"{max(values):.1f} | {unit} | {len(values)} |"
    )


def seed(url: str, n_variants: int, n_tasks: int, n_items: int) -> tuple[int, float]:
    """Bulk-insert the synthetic history with SQLAlchemy core executemany, one transaction.
    Returns (prediction rows, seconds)."""
    import numpy as np
    from sqlalchemy import insert

    from medarena.store import Store
    from medarena.store.models import (
        EvalRunRow,
        MetricRow,
        ModelFamilyRow,
        ModelVariantRow,
        PredictionRow,
        TaskRow,
    )

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    now = datetime(2026, 11, 1)
    with Store(url) as store, store.engine.begin() as connection:
        families = [f"family{f}" for f in range(10)]
        connection.execute(
            insert(ModelFamilyRow),
            [
                {
                    "id": i + 1,
                    "name": name,
                    "display_name": name,
                    "developer": "bench",
                    "license": "apache-2.0",
                    "card": {},
                    "synced_at": now,
                }
                for i, name in enumerate(families)
            ],
        )
        sizes = [0.5, 1.1, 7.0, 13.0, 70.0]
        connection.execute(
            insert(ModelVariantRow),
            [
                {
                    "id": v + 1,
                    "name": f"variant{v:03d}",
                    "family_id": v % 10 + 1,
                    "params_b": sizes[v % 5],
                    "source_kind": "hub",
                    "location": "x",
                    "context_length": 4096,
                    "architecture": "llama",
                    "dtype": "bfloat16",
                    "instruction_tuned": False,
                    "gated": False,
                    "tensor_parallel": 1,
                    "in_registry": True,
                    "spec": {},
                    "synced_at": now,
                }
                for v in range(n_variants)
            ],
        )
        connection.execute(
            insert(TaskRow),
            [
                {"id": t + 1, "name": f"task{t:02d}", "kind": "multiple_choice", "spec": {}}
                for t in range(n_tasks)
            ],
        )
        runs, metrics, run_id = [], [], 0
        latest: list[int] = []
        for v in range(n_variants):
            for t in range(n_tasks):
                for age in (1, 0):  # an older run, then the latest
                    run_id += 1
                    runs.append(
                        {
                            "id": run_id,
                            "run_uuid": f"{run_id:036d}",
                            "variant_id": v + 1,
                            "task_id": t + 1,
                            "dataset_hash": "d",
                            "prompt_template_hash": "p",
                            "scoring_mode": "loglik",
                            "shots": 0,
                            "seed": 0,
                            "engine": "hf",
                            "engine_version": "x",
                            "code_version": "bench",
                            "config": {},
                            "status": "completed",
                            "n_items": n_items,
                            "created_at": now - timedelta(days=age),
                            "finished_at": now,
                        }
                    )
                    for name in ("acc", "acc_norm", "macro_f1"):
                        value = float(rng.uniform(0.2, 0.8))
                        metrics.append(
                            {
                                "eval_run_id": run_id,
                                "name": name,
                                "value": value,
                                "ci_low": value - 0.05,
                                "ci_high": value + 0.05,
                                "n": n_items,
                            }
                        )
                latest.append(run_id)
        connection.execute(insert(EvalRunRow), runs)
        connection.execute(insert(MetricRow), metrics)
        rows = 0
        batch: list[dict] = []
        correct = rng.random(len(latest) * n_items) < 0.5
        for r, run in enumerate(latest):
            for i in range(n_items):
                ok = bool(correct[r * n_items + i])
                batch.append(
                    {
                        "eval_run_id": run,
                        "item_id": f"q{i:05d}",
                        "prompt_hash": "h",
                        "prompt": f"Question {i}: which answer is right?",
                        "raw_output": " A",
                        "parsed_answer": "A" if ok else "B",
                        "gold": "A",
                        "correct": ok,
                        "parse_failed": False,
                        "created_at": now,
                    }
                )
                if len(batch) == CHUNK:
                    connection.execute(insert(PredictionRow), batch)
                    rows += len(batch)
                    batch = []
        if batch:
            connection.execute(insert(PredictionRow), batch)
            rows += len(batch)
    return rows, time.perf_counter() - start


def query_figures(url: str, repeat: int) -> list[str]:
    import data
    import streamlit as st

    from medarena.store import Store

    def cold(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            st.cache_data.clear()
            return fn()

        return run

    with Store(url, create_if_empty=False) as store:
        rows = [
            describe(
                "Store.leaderboard('acc') (latest run per variant x task)",
                timed(lambda: store.leaderboard("acc"), repeat),
            ),
        ]
    rows += [
        describe(
            "leaderboard view queries, uncached (metric names + variants + leaderboard)",
            timed(cold(lambda: (data.metric_names(url), data.leaderboard(url, "acc"))), repeat),
        ),
        describe(
            "task view: per-item rows of one run (500 of 1M)",
            timed(cold(lambda: data.predictions(url, 2000)), repeat),
        ),
        describe(
            "head-to-head: paired statistics of two runs (500 items each)",
            timed(
                cold(
                    lambda: data.head_to_head(
                        url, "variant000", "variant001", "task00", ("loglik", 0), "acc"
                    )
                ),
                repeat,
            ),
        ),
    ]
    return rows


def render_figures(url: str, repeat: int) -> list[str]:
    """The leaderboard page run by AppTest (the app's script end to end, caches cleared)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["MEDARENA_DB_URL"] = url

    def render() -> None:
        st.cache_data.clear()
        app = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60).run()
        assert not app.exception and not app.error, (app.exception, app.error)
        assert len(app.dataframe[0].value) > 0

    return [
        describe(
            "leaderboard view: data load + render (AppTest, caches cleared)",
            timed(render, repeat),
            "s",
            1.0,
        )
    ]


BASELINE_APP = 'import streamlit as st\nst.title("baseline")\nst.dataframe({"a": [1, 2, 3]})\n'


def _serve(command: list[str], port: int) -> subprocess.Popen:
    import urllib.request

    server = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as answer:
                if answer.read() == b"ok":
                    return server
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"no server on port {port}")


def _first_rows(browser, port: int, loads: int) -> list[float]:
    """Seconds from navigation until the page's first table has rows, per load."""
    times = []
    for _ in range(loads):
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        start = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/")
        # the grid paints on a canvas; its accessible table (hidden) holds the rows
        rows = page.locator('[data-testid="stDataFrame"] tbody tr')
        rows.first.wait_for(state="attached", timeout=60_000)
        times.append(time.perf_counter() - start)
        page.close()
    return times


def browser_figures(url: str, repeat: int, tmp: str) -> list[str]:
    """`medarena dashboard` on the seeded file in headless Chromium, until the leaderboard's
    first table has rows: the first load (server caches empty), then reloads; and the same for
    a one-table Streamlit page, the browser's and Streamlit's fixed cost on this machine."""
    import signal
    import socket

    from playwright.sync_api import sync_playwright

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    baseline = Path(tmp, "baseline.py")
    baseline.write_text(BASELINE_APP)
    cli = [sys.executable, "-c", "from medarena.cli import app; app()", "--workspace", str(REPO)]
    servers = {
        "dashboard": [*cli, "dashboard", "--db", url, "--port", str(port)],
        "baseline": [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(baseline),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
        ],
    }
    sys.path.insert(0, str(REPO))
    from tests.browser import CHROMIUM_ARGS

    times: dict[str, list[float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        for name, command in servers.items():
            server = _serve(command, port)
            try:
                times[name] = _first_rows(browser, port, repeat + 1)
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=20)
        browser.close()
    first, again = times["dashboard"][:1], times["dashboard"][1:]
    return [
        describe("leaderboard in Chromium until rows, first load (caches empty)", first, "s", 1),
        describe("leaderboard in Chromium until rows, reload (data cached)", again, "s", 1),
        describe(
            "one-table Streamlit page in Chromium, reload (fixed cost)",
            times["baseline"][1:],
            "s",
            1,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--browser", action="store_true", help="Also time Chromium (e2e).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        rows, seconds = seed(url, args.variants, args.tasks, args.items)
        size = Path(tmp, "bench.db").stat().st_size / 2**20
        figures = query_figures(url, args.repeat) + render_figures(url, args.repeat)
        if args.browser:
            figures += browser_figures(url, args.repeat, tmp)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpu.splitlines()
            if line.startswith("Model name")
        ),
        platform.processor(),
    )
    print(
        f"Measured {date.today()} on {os.cpu_count()} cores ({model}), Python "
        f"{platform.python_version()}. Seeded {args.variants} variants x {args.tasks} tasks, "
        f"{rows:,} prediction rows ({size:.0f} MiB) in {seconds:.0f} s "
        f"({rows / seconds:,.0f} rows/s).\n"
    )
    print("| what | min | median | max | unit | runs |\n| --- | --- | --- | --- | --- | --- |")
    print("\n".join(figures))


if __name__ == "__main__":
    main()
