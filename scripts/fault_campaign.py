"""Fault campaign: the kill/resume and concurrency experiments of tests/faults, many more times.

    python scripts/fault_campaign.py --seed 1 --eval 20 --pretrain 20 --instruct 20 --concurrent 10

Every injection point is drawn from one seeded random.Random, so a campaign is reproducible
(timer kills excepted: they depend on the machine's speed). Stages:

- eval: `medarena eval` (medqa_4options, 40 items, chunks of 8) SIGKILLed at a named point
  (before / inside / after a chunk's transaction, inside the closing transaction) or after a
  random delay (anywhere: start-up, registry sync, model load, scoring); then run again.
- pretrain / instruct: one training run killed at several points in turn (inside the training
  loop, the checkpoint, the export, the merge, the registration), then run to the end; repeated
  with a new output until the stage has its number of kills.
- concurrent: two `medarena eval` processes that look the same run key up before either
  creates the run, then each go on with a task of its own; and two processes opening one new
  database at the same instant.

After each stage the store is checked: one run per key / per training run, one prediction per
item, every step once, no orphans (tests/faults/faults.py ORPHANS). Prints a summary table and
writes the details as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "platform")]

from tests.faults.faults import (  # noqa: E402
    COMMAND_POINTS,
    OPEN_AND_SYNC,
    RANK_PHASES,
    eval_kill_points,
    medarena_process,
    orphans,
    rank_killed_at,
    rows,
    train_kill_points,
    train_process,
)

ITEMS, CHUNK, STEPS, EVERY = 40, 8, 8, 2


@dataclass
class Stage:
    name: str
    injections: int = 0
    resumed_ok: int = 0
    duplicates: int = 0
    orphans: int = 0
    failures: list[str] = field(default_factory=list)
    points: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def hit(self, point: str) -> None:
        phase = point.split(":")[0]
        self.points[phase] = self.points.get(phase, 0) + 1


def workspace(root: Path) -> Path:
    from medarena.tiny import build_tiny
    from tests.conftest import copy_models
    from tests.integration.test_instruct_run import recipe as instruct_recipe
    from tests.integration.test_pretrain_run import RECIPE as PRETRAIN_RECIPE

    ws = root / "ws"
    copy_models(ws)
    (ws / "benchmarks").symlink_to(REPO / "benchmarks")
    shutil.copytree(REPO / "pretrain", ws / "pretrain")
    shutil.copytree(REPO / "instruct", ws / "instruct")
    every = f"checkpoint_every: {EVERY}"
    (ws / "pretrain/fault-z2.yaml").write_text(
        PRETRAIN_RECIPE.format(name="fault-z2", stage=2, steps=STEPS).replace(
            "checkpoint_every: 4", every
        )
    )
    (ws / "instruct/fault-plain.yaml").write_text(
        instruct_recipe("fault-plain", steps=STEPS, deepspeed="false", batch=8).replace(
            "checkpoint_every: 4", every
        )
    )
    build_tiny(ws / ".medarena/models/tiny-medical-base", seed=0)
    return ws


def invoke(ws: Path, db_url: str, *args: str):
    from tests.helpers import invoke as run

    return run(ws, db_url, *args)


# ------------------------------------------------------------------------------------- eval


def eval_stage(ws: Path, tmp: Path, rng: random.Random, n: int) -> Stage:
    stage, started = Stage("eval"), time.perf_counter()
    db_url = f"sqlite:///{tmp / 'eval.db'}"
    invoke(ws, db_url, "models", "sync")
    named = eval_kill_points(rng, ITEMS // CHUNK, 3 * (ITEMS // CHUNK) + 1)
    for seed in range(n):
        args = ["--workspace", str(ws), "--db", db_url, "eval", "-m", "tiny-medical-base"]
        args += ["-t", "medqa_4options", "--chunk-size", str(CHUNK), "--seed", str(seed)]
        if seed % 2 == 0:  # a named point
            point = named[(seed // 2) % len(named)]
            process = medarena_process(args, fault=point, folder=tmp)
        else:  # anywhere: a random delay
            delay = rng.uniform(0.5, 12.0)
            point = f"timer:{delay:.1f}s"
            process = medarena_process(args, folder=tmp)
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
        process.communicate(timeout=600)
        if process.returncode != -9:
            stage.failures.append(f"{point}: not killed (exit {process.returncode})")
            continue
        stage.injections += 1
        stage.hit(point)
        resumed = invoke(ws, db_url, *args[4:])
        per_run = rows(
            db_url,
            "SELECT r.status, COUNT(p.id), COUNT(DISTINCT p.item_id), "
            "(SELECT COUNT(*) FROM metrics m WHERE m.eval_run_id = r.id) FROM eval_runs r "
            "LEFT JOIN predictions p ON p.eval_run_id = r.id WHERE r.seed = :seed GROUP BY r.id",
            seed=seed,
        )
        if (
            resumed.exit_code == 0
            and len(per_run) == 1
            and per_run[0][:3]
            == (
                "completed",
                ITEMS,
                ITEMS,
            )
        ):
            stage.resumed_ok += 1
        else:
            stage.failures.append(f"{point}: exit {resumed.exit_code}, runs {per_run}")
        stage.duplicates += sum(max(0, count - distinct) for _, count, distinct, _ in per_run)
        stage.duplicates += max(0, len(per_run) - 1)
    stage.orphans = sum(orphans(db_url).values())
    stage.wall_s = time.perf_counter() - started
    return stage


# --------------------------------------------------------------------------------- training


def training_stage(ws: Path, tmp: Path, rng: random.Random, n: int, kind: str) -> Stage:
    stage, started = Stage(kind), time.perf_counter()
    db_url = f"sqlite:///{tmp / f'{kind}.db'}"
    lora = kind == "instruct"
    recipe = "fault-plain" if lora else "fault-z2"
    run = 0
    while stage.injections < n:
        output = f"{kind}-{run}"
        points = train_kill_points(rng, STEPS, EVERY, min(3, n - stage.injections), lora=lora)
        args = ["train", kind, "-r", recipe, "-m", "tiny-medical-base", "--output", output]
        for point in points:
            if point.partition(":")[0] in RANK_PHASES or point == "export":
                with rank_killed_at(point, tmp):
                    result = invoke(ws, db_url, *args)
                killed = result.exit_code == 1
            else:
                assert point in COMMAND_POINTS
                process = train_process(["--workspace", str(ws), "--db", db_url, *args], point, tmp)
                process.communicate(timeout=600)
                killed = process.returncode == -9
            if killed:
                stage.injections += 1
                stage.hit(point)
            else:
                stage.failures.append(f"{output} {point}: not killed")
        result = invoke(ws, db_url, *args)
        steps = rows(
            db_url,
            "SELECT r.status, COUNT(s.id), COUNT(DISTINCT s.step) FROM training_runs r "
            "JOIN model_variants v ON v.id = r.output_variant_id "
            "LEFT JOIN training_steps s ON s.training_run_id = r.id "
            "WHERE v.name = :name GROUP BY r.id",
            name=output,
        )
        if result.exit_code == 0 and steps == [("completed", STEPS, STEPS)]:
            stage.resumed_ok += 1
        else:
            stage.failures.append(f"{output}: exit {result.exit_code}, {steps}")
        stage.duplicates += sum(count - distinct for _, count, distinct in steps)
        run += 1
    runs = rows(db_url, "SELECT COUNT(*) FROM training_runs")[0][0]
    stage.duplicates += max(0, runs - run)  # a second row for one run
    stage.orphans = sum(orphans(db_url).values())
    stage.wall_s = time.perf_counter() - started
    stage.points["runs"] = run
    return stage


# ------------------------------------------------------------------------------- concurrent


def concurrent_stage(ws: Path, tmp: Path, rounds: int) -> Stage:
    stage, started = Stage("concurrent"), time.perf_counter()
    db_url = f"sqlite:///{tmp / 'shared.db'}"
    invoke(ws, db_url, "models", "sync")
    for round_ in range(rounds):
        barrier = tmp / f"barrier-{round_}"
        barrier.mkdir()
        base = ["--workspace", str(ws), "--db", db_url, "eval", "-m", "tiny-medical-base"]
        base += ["--chunk-size", "4", "--limit", "16", "--seed", str(round_)]
        fault = f"barrier:{barrier}"
        pair = [
            medarena_process(
                [*base, "-t", "pubmedqa", "-t", "medqa_4options"], fault=fault, folder=tmp
            ),
            medarena_process([*base, "-t", "pubmedqa", "-t", "medmcqa"], fault=fault, folder=tmp),
        ]
        errors = [process.communicate(timeout=600)[1] for process in pair]
        stage.injections += 1
        stage.hit("same-key eval pair")
        codes = [process.returncode for process in pair]
        per_task = rows(
            db_url,
            "SELECT t.name, COUNT(DISTINCT r.id), COUNT(p.id), COUNT(DISTINCT p.item_id) "
            "FROM eval_runs r JOIN tasks t ON t.id = r.task_id "
            "JOIN predictions p ON p.eval_run_id = r.id WHERE r.seed = :seed GROUP BY t.name",
            seed=round_,
        )
        stage.duplicates += sum(
            runs - 1 + count - distinct for _, runs, count, distinct in per_task
        )
        if codes == [0, 0] and len(per_task) == 3:
            stage.resumed_ok += 1
        else:
            locked = any("locked" in err for err in errors)
            tails = [err.strip().splitlines()[-1:] for err in errors]
            stage.failures.append(
                f"round {round_}: exits {codes}, locked={locked}, {per_task}, stderr {tails}"
            )
        # and two processes opening one new database at the same instant
        path = tmp / f"new-{round_}.db"
        start = str(time.time() + 3)
        openers = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AND_SYNC, str(path), str(ws), start],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO / "platform")},
            )
            for _ in range(2)
        ]
        results = [(o.communicate(timeout=120)[1], o.returncode) for o in openers]
        stage.injections += 1
        stage.hit("new-database pair")
        url = f"sqlite:///{path}"
        if all(code == 0 for _, code in results):
            stage.resumed_ok += 1
            stage.orphans += sum(orphans(url).values())
        else:
            stage.failures.append(f"new db {round_}: {[err[-300:] for err, _ in results]}")
    stage.orphans += sum(orphans(db_url).values())
    stage.wall_s = time.perf_counter() - started
    return stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--eval", type=int, default=20, help="eval kills")
    parser.add_argument("--pretrain", type=int, default=20, help="pretraining kills")
    parser.add_argument("--instruct", type=int, default=20, help="LoRA kills")
    parser.add_argument("--concurrent", type=int, default=10, help="rounds (two pairs each)")
    parser.add_argument("--out", type=Path, default=None, help="JSON with every detail")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    options = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rng = random.Random(options.seed)
    tmp = Path(tempfile.mkdtemp(prefix="medarena-faults-"))
    ws = workspace(tmp)
    stages = []
    if options.eval:
        stages.append(eval_stage(ws, tmp, rng, options.eval))
    if options.pretrain:
        stages.append(training_stage(ws, tmp, rng, options.pretrain, "pretrain"))
    if options.instruct:
        stages.append(training_stage(ws, tmp, rng, options.instruct, "instruct"))
    if options.concurrent:
        stages.append(concurrent_stage(ws, tmp, options.concurrent))
    print(f"\nfault campaign, seed {options.seed}")
    print(
        f"{'stage':<12}{'injections':>11}{'resumed OK':>12}{'duplicates':>12}{'orphans':>9}"
        f"{'failures':>10}{'wall s':>9}"
    )
    for stage in stages:
        print(
            f"{stage.name:<12}{stage.injections:>11}{stage.resumed_ok:>12}"
            f"{stage.duplicates:>12}{stage.orphans:>9}{len(stage.failures):>10}"
            f"{stage.wall_s:>9.0f}"
        )
    for stage in stages:
        print(f"  {stage.name} points: {dict(sorted(stage.points.items()))}")
        for failure in stage.failures:
            print(f"  {stage.name} FAILURE: {failure}")
    if options.out:
        options.out.write_text(
            json.dumps({"seed": options.seed, "stages": [asdict(s) for s in stages]}, indent=2)
        )
    if not options.keep:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
