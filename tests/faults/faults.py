"""Fault injection shared by tests/faults and scripts/fault_campaign.py: seeded kill points, a
`medarena` process that SIGKILLs itself at a named point, and store checks (counts, orphans,
a dump of every table)."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text

from tests.helpers import sql_rows

REPO = Path(__file__).resolve().parents[2]

# Where a `medarena eval` process can be killed. K counts add_predictions calls (one per chunk).
#   chunk-before:K  chunk K scored, nothing of it stored yet
#   chunk-mid:K     chunk K's INSERT executed, its transaction not committed
#   chunk-after:K   chunk K committed
#   finish-mid      every prediction stored; inside the closing transaction (old metrics
#                   deleted, new ones added), before its commit
#   barrier:FOLDER  not a kill: after looking its first run key up, wait until a second process
#                   has done the same (both find no run, as two commands started together do)
#   barrier-late:FOLDER  the same, then 4 s more before going on (a slower model load)
EVAL_PHASES = ("chunk-before", "chunk-mid", "chunk-after")

EVAL_KILLER = r"""
import os, signal, sys
from medarena.store import api

point = os.environ["MEDARENA_FAULT"]
phase, _, number = point.partition(":")
calls, closing, waited = [], [], []

def die():
    sys.stdout.flush(); sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)

original_add, original_insert = api.Store.add_predictions, api._insert_new
original_finish, original_now = api.Store.finish_eval_run, api.utcnow

def add_predictions(self, run_id, predictions):
    calls.append(1)
    if phase == "chunk-before" and len(calls) == int(number):
        die()
    inserted = original_add(self, run_id, predictions)
    if phase == "chunk-after" and len(calls) == int(number):
        die()
    return inserted

def insert_new(session, table, *args):
    inserted = original_insert(session, table, *args)
    if phase == "chunk-mid" and table is api.PredictionRow and len(calls) == int(number):
        session.flush()
        die()
    return inserted

def finish_eval_run(self, *args, **kwargs):
    closing.append(1)
    return original_finish(self, *args, **kwargs)

def utcnow():
    if phase == "finish-mid" and closing:
        die()  # inside finish_eval_run's transaction: old metrics deleted, new ones added
    return original_now()

original_find = api.Store.find_eval_run

def find_eval_run(self, spec):
    found = original_find(self, spec)
    if phase in ("barrier", "barrier-late") and not waited:
        # wait until the other process has looked the key up too (first task only)
        import pathlib, time
        folder = pathlib.Path(number)
        (folder / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(folder.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        if phase == "barrier-late":
            time.sleep(4)  # then be slow, as a model that loads slowly: the other may finish
        waited.append(1)
    return found

api.Store.find_eval_run = find_eval_run
api.Store.add_predictions, api._insert_new = add_predictions, insert_new
api.Store.finish_eval_run, api.utcnow = finish_eval_run, utcnow
from medarena.cli import app
app(sys.argv[1:], prog_name="medarena")
"""


ENTRY = "import sys; from medarena.cli import app; app(sys.argv[1:], prog_name='medarena')"


def eval_kill_points(rng: random.Random, chunks: int, n: int) -> list[str]:
    """n distinct kill points of an evaluation of `chunks` chunks, drawn with `rng`."""
    every = [f"{phase}:{k}" for phase in EVAL_PHASES for k in range(1, chunks + 1)]
    every.append("finish-mid")
    return rng.sample(every, n)


def medarena_process(
    args: list[str], *, fault: str | None = None, folder: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """`medarena args...` as a child process; with `fault`, one that SIGKILLs itself there."""
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "platform"), str(REPO), os.environ.get("PYTHONPATH", "")]
        ),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    environment.pop("MEDARENA_DB_URL", None)
    environment.pop("MEDARENA_WORKSPACE", None)
    if fault is None:
        command = [sys.executable, "-c", ENTRY, *args]
    else:
        script = folder / "eval_killer.py"
        if not script.exists():
            script.write_text(EVAL_KILLER)
        command = [sys.executable, str(script), *args]
        environment["MEDARENA_FAULT"] = fault
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )


def run_medarena(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    process = medarena_process(args, **kwargs)
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


# ------------------------------------------------------------------------------ store checks


rows = sql_rows  # one statement's rows, on a connection of its own


def dump(db_url: str) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order: equal dumps mean an untouched store."""
    engine = create_engine(db_url)
    try:
        tables = sorted(inspect(engine).get_table_names())
        with engine.connect() as connection:
            return {
                table: sorted(
                    (tuple(row) for row in connection.execute(text(f'SELECT * FROM "{table}"'))),
                    key=repr,
                )
                for table in tables
            }
    finally:
        engine.dispose()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# Each query counts rows that must not exist in a consistent store.
ORPHANS = {
    "predictions without their eval run": (
        "SELECT COUNT(*) FROM predictions p LEFT JOIN eval_runs r ON r.id = p.eval_run_id "
        "WHERE r.id IS NULL"
    ),
    "metrics without their eval run": (
        "SELECT COUNT(*) FROM metrics m LEFT JOIN eval_runs r ON r.id = m.eval_run_id "
        "WHERE r.id IS NULL"
    ),
    "duplicate predictions (run, item)": (
        "SELECT COUNT(*) FROM (SELECT 1 FROM predictions GROUP BY eval_run_id, item_id "
        "HAVING COUNT(*) > 1)"
    ),
    "duplicate metrics (run, name)": (
        "SELECT COUNT(*) FROM (SELECT 1 FROM metrics GROUP BY eval_run_id, name "
        "HAVING COUNT(*) > 1)"
    ),
    "completed eval runs whose n_items differs from their predictions": (
        "SELECT COUNT(*) FROM eval_runs r WHERE r.status = 'completed' AND r.n_items != "
        "(SELECT COUNT(*) FROM predictions p WHERE p.eval_run_id = r.id)"
    ),
    "completed eval runs without metrics": (
        "SELECT COUNT(*) FROM eval_runs r WHERE r.status = 'completed' AND NOT EXISTS "
        "(SELECT 1 FROM metrics m WHERE m.eval_run_id = r.id)"
    ),
    "unfinished eval runs with a completed twin (same key)": (
        "SELECT COUNT(*) FROM eval_runs a JOIN eval_runs b ON a.id != b.id "
        "AND a.variant_id = b.variant_id AND a.task_id = b.task_id "
        "AND a.dataset_hash = b.dataset_hash AND a.prompt_template_hash = b.prompt_template_hash "
        "AND a.scoring_mode = b.scoring_mode AND a.shots = b.shots AND a.seed = b.seed "
        "AND a.engine = b.engine AND a.status != 'completed' AND b.status = 'completed'"
    ),
    "training steps without their run": (
        "SELECT COUNT(*) FROM training_steps s LEFT JOIN training_runs r "
        "ON r.id = s.training_run_id WHERE r.id IS NULL"
    ),
    "duplicate training steps (run, step)": (
        "SELECT COUNT(*) FROM (SELECT 1 FROM training_steps GROUP BY training_run_id, step "
        "HAVING COUNT(*) > 1)"
    ),
    "variants produced by a run that is not completed": (
        "SELECT COUNT(*) FROM model_variants v JOIN training_runs r "
        "ON r.id = v.produced_by_run_id WHERE r.status != 'completed'"
    ),
    "variants produced by a missing run": (
        "SELECT COUNT(*) FROM model_variants v LEFT JOIN training_runs r "
        "ON r.id = v.produced_by_run_id WHERE v.produced_by_run_id IS NOT NULL AND r.id IS NULL"
    ),
    "duplicate variant names": (
        "SELECT COUNT(*) FROM (SELECT 1 FROM model_variants GROUP BY name HAVING COUNT(*) > 1)"
    ),
    "completed training runs without an output variant": (
        "SELECT COUNT(*) FROM training_runs WHERE status = 'completed' "
        "AND output_variant_id IS NULL"
    ),
    "completed training runs with steps missing": (
        "SELECT COUNT(*) FROM training_runs r WHERE r.status = 'completed' AND "
        "(SELECT COUNT(*) FROM training_steps s WHERE s.training_run_id = r.id) != "
        "(SELECT MAX(s.step) FROM training_steps s WHERE s.training_run_id = r.id)"
    ),
}


def orphans(db_url: str) -> dict[str, int]:
    """The consistency checks that failed, with their counts ({} when the store is sound)."""
    found = {name: rows(db_url, sql)[0][0] for name, sql in ORPHANS.items()}
    return {name: count for name, count in found.items() if count}


# ------------------------------------------------------------------------------- training
#
# Where a `medarena train` command can be killed; the first group inside the training process
# (the rank), the second inside the command itself. S is an optimizer step.
#   step:S           step S recorded in memory (not yet written to the store)
#   flushed:S        checkpoint step S: its step metrics committed, the checkpoint not started
#   ckpt-partial:S   checkpoint S: a weights/state file half-written (truncated), then the kill
#   ckpt-unmarked:S  checkpoint S: every file written, `latest` not yet moved to it
#   export           the final weights (pretrain) or adapter (LoRA) written, the process not done
#   merge-staged     LoRA: the merged model written to its staging folder, not yet renamed
#   registered       models/<output>.yaml written, the store not yet told
#   finished         the store's run closed and variants linked, run.json not yet updated

TRAIN_KILLER = r"""
import os, signal, sys
from pathlib import Path

point = os.environ["MEDARENA_FAULT"]
phase, _, arg = point.partition(":")
here = Path(__file__).resolve()

def die():
    sys.stdout.flush(); sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if len(sys.argv) > 1 and sys.argv[1] == "--rank":  # the training process
    import builtins, importlib
    import torch
    from medarena.training import loop

    module = importlib.import_module(sys.argv[2])
    saving = []
    if phase == "step":
        original_step = loop.Recorder.step
        def step(self, number, *args):
            original_step(self, number, *args)
            if number == int(arg):
                die()
        loop.Recorder.step = step
    if phase == "flushed":
        original_flush = loop.Recorder.flush
        def flush(self):
            last = self.pending[-1].step if self.pending else None
            original_flush(self)
            if last == int(arg):
                die()
        loop.Recorder.flush = flush
    original_save = loop.StepEngine.save
    def save(self, run_dir, number, position):
        saving.append(number == int(arg or 0))
        try:
            return original_save(self, run_dir, number, position)
        finally:
            saving.pop()
    loop.StepEngine.save = save
    if phase == "ckpt-partial":
        original_torch_save = torch.save
        def torch_save(obj, f, *args, **kwargs):
            original_torch_save(obj, f, *args, **kwargs)
            if saving and saving[-1] and isinstance(f, (str, os.PathLike)):
                data = Path(f).read_bytes()
                Path(f).write_bytes(data[: len(data) // 2])
                die()
        torch.save = torch_save
    if phase == "ckpt-unmarked":
        original_open, original_atomic = builtins.open, loop._write_atomic
        def guarded_open(file, mode="r", *args, **kwargs):
            if saving and saving[-1] and "w" in mode and Path(str(file)).name == "latest":
                die()  # DeepSpeed writes `latest` last
            return original_open(file, mode, *args, **kwargs)
        def write_atomic(path, text):
            if saving and saving[-1] and path.name == "latest":
                die()  # the plain loop's marker
            return original_atomic(path, text)
        builtins.open, loop._write_atomic = guarded_open, write_atomic
    if phase == "export":
        for name in ("_export", "_save_adapter"):
            if hasattr(module, name):
                original_export = getattr(module, name)
                def export(*args, _original=original_export):
                    _original(*args)
                    die()
                setattr(module, name, export)
    module.main(*loop.read_run(sys.argv[3:], "fault"))
else:  # the `medarena train` command
    from medarena import adapters
    from medarena.training import service
    from medarena.store import api
    from medarena.training import launch

    original_command = launch.local_command
    def local_command(name, run_dir, procs, launcher):
        _, env = original_command(name, run_dir, procs, launcher)
        return [sys.executable, str(here), "--rank", name, str(run_dir)], env
    launch.local_command = local_command
    if phase == "merge-staged":
        original_rename = adapters.Path.rename
        def rename(self, target):
            if Path(target).name == "merged":
                die()
            return original_rename(self, target)
        adapters.Path.rename = rename
    if phase == "registered":
        original_add = service.add_family
        def add_family(*args, **kwargs):
            original_add(*args, **kwargs)
            die()
        service.add_family = add_family
    if phase == "finished":
        original_finish = api.Store.finish_training_run
        def finish_training_run(*args, **kwargs):
            original_finish(*args, **kwargs)
            die()
        api.Store.finish_training_run = finish_training_run
    from medarena.cli import app
    app(sys.argv[1:], prog_name="medarena")
"""


RANK_PHASES = ("step", "flushed", "ckpt-partial", "ckpt-unmarked")
COMMAND_POINTS = ("export", "merge-staged", "registered", "finished")


def train_kill_order(steps: int, every: int, *, lora: bool = False) -> list[str]:
    """Every kill point of one training run, in the order the run reaches them."""
    order = []
    for step in range(1, steps + 1):
        order.append(f"step:{step}")
        if step % every == 0 or step == steps:
            order += [f"flushed:{step}", f"ckpt-partial:{step}", f"ckpt-unmarked:{step}"]
    return [*order, "export", *(["merge-staged"] if lora else []), "registered", "finished"]


def train_kill_points(
    rng: random.Random, steps: int, every: int, n: int, *, lora: bool = False
) -> list[str]:
    """n distinct kill points of one training run drawn with `rng`: n - 1 inside the training
    loop and one at its end (export, merge, registration), in the order a run reaches them, so
    each rerun gets further than the last."""
    order = train_kill_order(steps, every, lora=lora)
    inside = [point for point in order if point.partition(":")[0] in RANK_PHASES]
    end = [point for point in order if point not in inside]
    return sorted([*rng.sample(inside, n - 1), rng.choice(end)], key=order.index)


def killer_script(folder: Path) -> Path:
    script = folder / "train_killer.py"
    if not script.exists():
        script.write_text(TRAIN_KILLER)
    return script


@contextmanager
def rank_killed_at(point: str, folder: Path) -> Iterator[None]:
    """While active, `medarena train` run in this process starts a training process that
    SIGKILLs itself at `point` (one of RANK_PHASES, or `export`)."""
    from medarena.training import launch

    script, original = killer_script(folder), launch.local_command

    def killing(name: str, run_dir: Path, procs: int, launcher: str):
        _, env = original(name, run_dir, procs, launcher)
        return [sys.executable, str(script), "--rank", name, str(run_dir)], {
            **env,
            "MEDARENA_FAULT": point,
        }

    launch.local_command = killing
    try:
        yield
    finally:
        launch.local_command = original


def train_process(args: list[str], fault: str | None, folder: Path) -> subprocess.Popen:
    """`medarena train ...` as a child process; with `fault`, killed there (SIGKILL)."""
    if fault is None:
        return medarena_process(args, folder=folder)
    script = killer_script(folder)
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "platform"), str(REPO), os.environ.get("PYTHONPATH", "")]
        ),
        "HF_HUB_OFFLINE": "1",
        "MEDARENA_FAULT": fault,
    }
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


# a process that opens (creating it if new) a SQLite store and syncs the registry into it at a
# shared start time: argv = database file, workspace, start time (time.time())
OPEN_AND_SYNC = """
import sys, time
from medarena.registry import load_registry
from medarena.store import Store

registry = load_registry(sys.argv[2])
while time.time() < float(sys.argv[3]):
    time.sleep(0.001)
with Store(f"sqlite:///{sys.argv[1]}") as store:
    store.sync_registry(registry)
"""
