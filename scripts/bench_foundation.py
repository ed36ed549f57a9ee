"""Foundation figures for docs/PERFORMANCE.md: tiny-family build time, CLI start-up, store
write and leaderboard speed. Run: .venv/bin/python scripts/bench_foundation.py"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def describe(name: str, times: list[float], unit: str = "s") -> str:
    return (
        f"| {name} | {min(times):.3f} | {statistics.median(times):.3f} | "
        f"{max(times):.3f} | {unit} | {len(times)} |"
    )


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # a fresh interpreter each time: the figure includes importing torch and transformers
        build = [
            sys.executable,
            "-c",
            "import sys; from medarena.tiny import build_tiny; "
            "build_tiny(sys.argv[1], seed=0, force=True)",
        ]
        rows.append(
            describe(
                "tiny build, fresh process (import + tokenizer + model + save)",
                timed(lambda: subprocess.run([*build, f"{tmp}/tiny"], check=True), 5),
            )
        )
        from medarena.tiny import build_tiny

        build_tiny(f"{tmp}/warm", seed=0)
        rows.append(
            describe(
                "tiny build, in process (tokenizer + model + save)",
                timed(lambda: build_tiny(f"{tmp}/warm", seed=0, force=True), 5),
            )
        )
        medarena = str(Path(sys.executable).parent / "medarena")
        for args in (["--help"], ["models", "ls"]):
            rows.append(
                describe(
                    f"`medarena {' '.join(args)}`",
                    timed(
                        lambda a=args: subprocess.run(
                            [medarena, "--workspace", str(REPO), *a],
                            check=True,
                            capture_output=True,
                        ),
                        5,
                    ),
                )
            )
        rows += store_figures(Path(tmp))
    print(
        f"Measured {date.today()} on {platform.node()} ({platform.machine()}, "
        f"{platform.processor() or 'cpu'}), Python {platform.python_version()}\n"
    )
    print("| what | min | median | max | unit | runs |\n| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


def store_figures(tmp: Path) -> list[str]:
    from medarena.registry import load_registry
    from medarena.results import EvalRunSpec, MetricValue, Prediction
    from medarena.store import Store

    store = Store(f"sqlite:///{tmp / 'bench.db'}")
    store.sync_registry(load_registry(REPO))
    variants = store.variant_names()
    items = 2_000
    runs = []

    def one_run(variant: str, task: str) -> None:
        run = store.create_eval_run(
            EvalRunSpec(
                variant=variant,
                task=task,
                task_kind="multiple_choice",
                dataset_hash="d" * 64,
                prompt_template_hash="p" * 64,
                scoring_mode="loglik",
                shots=0,
                seed=0,
                engine="hf",
                engine_version="x",
                code_version="bench",
            )
        )
        store.add_predictions(
            run.id,
            [
                Prediction(f"q{i}", "h", "A", parsed_answer="A", correct=i % 3 == 0)
                for i in range(items)
            ],
        )
        store.finish_eval_run(run.id, [MetricValue("acc", 1 / 3, items)])
        runs.append(run.id)

    tasks = [f"task{i}" for i in range(5)]
    insert = timed(lambda: [one_run(v, t) for v in variants[:5] for t in tasks], 1)
    per_second = [25 * items / t for t in insert]
    leaderboard = timed(lambda: store.leaderboard("acc"), 20)
    store.close()
    return [
        describe(f"store: 25 eval runs x {items} predictions, rows/s", per_second, "rows/s"),
        describe(
            "store: leaderboard (latest acc per variant x task, + published)",
            [t * 1000 for t in leaderboard],
            "ms",
        ),
    ]


if __name__ == "__main__":
    main()
