"""Evaluation sweeps (`medarena sweep`) with local workers on SQLite: the file's checks, the
plan, the claims, equality with plain sequential `medarena eval` runs, and two concurrent
sweeps sharing cells that never run a cell twice (real processes)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from medarena.store import Store
from medarena.store.claims import Holder
from medarena.store.models import utcnow
from tests.helpers import as_json, invoke, sql_rows

VARIANTS = ["tiny-medical-base", "tiny-sweep-1", "tiny-sweep-2"]
TASKS = ["pubmedqa", "medqa_4options", "medmcqa"]
SETTINGS = [
    {"name": "zero-shot", "mode": "loglik"},
    {"name": "one-shot", "mode": "loglik", "shots": 1},
]
FAMILY = {
    "name": "tiny-sweep",
    "display_name": "Tiny copies for sweeps",
    "developer": "medarena tests",
    "license": "apache-2.0",
    "variants": [
        {
            "name": f"tiny-sweep-{seed}",
            "params_b": 0.000213,
            "source": {"kind": "embedded", "builder": "tiny", "seed": seed},
            "context_length": 2048,
            "dtype": "float32",
        }
        for seed in (1, 2)
    ],
}


@pytest.fixture(scope="session")
def tiny_copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two more tiny models (seeds 1 and 2), built once per session."""
    from medarena.tiny import build_tiny

    folder = tmp_path_factory.mktemp("tiny-copies")
    built = {}
    for seed in (1, 2):
        built[f"tiny-sweep-{seed}"] = folder / f"tiny-sweep-{seed}"
        build_tiny(built[f"tiny-sweep-{seed}"], seed=seed)
    return built


@pytest.fixture
def sweep_workspace(eval_workspace: Path, tiny_copies: dict[str, Path]) -> Path:
    """The evaluation workspace with three tiny variants and the sweep `grid.yaml`: 3 variants
    x 3 tasks x 2 settings, 4 items each."""
    (eval_workspace / "models" / "tiny-sweep.yaml").write_text(json.dumps(FAMILY))
    for name, folder in tiny_copies.items():
        (eval_workspace / ".medarena" / "models" / name).symlink_to(folder)
    write_sweep(eval_workspace / "grid.yaml", "grid", VARIANTS)
    return eval_workspace


def write_sweep(path: Path, name: str, variants: list[str], **extra) -> Path:
    sweep = {"name": name, "variants": variants, "tasks": TASKS, "settings": SETTINGS, "limit": 4}
    path.write_text(yaml.safe_dump({**sweep, **extra}, sort_keys=False))
    return path


def stored_results(db_url: str) -> dict[tuple, dict]:
    """Every completed run by (variant, task, mode, shots, seed): its key hashes, metrics and
    predictions, as stored."""
    where = "FROM eval_runs r JOIN model_variants v ON v.id = r.variant_id "
    where += "JOIN tasks t ON t.id = r.task_id"
    found: dict[tuple, dict] = {}
    for row in sql_rows(
        db_url,
        "SELECT r.id, v.name, t.name, r.scoring_mode, r.shots, r.seed, r.dataset_hash, "
        f"r.prompt_template_hash, r.settings_hash, r.status, r.n_items {where}",
    ):
        run_id, *key, dataset, template, settings, status, n_items = row
        metrics = sql_rows(
            db_url,
            "SELECT name, value, ci_low, ci_high FROM metrics WHERE eval_run_id = :r",
            r=run_id,
        )
        predictions = sql_rows(
            db_url,
            "SELECT item_id, prompt_hash, parsed_answer, correct, logprobs FROM predictions "
            "WHERE eval_run_id = :r ORDER BY item_id",
            r=run_id,
        )
        assert tuple(key) not in found, f"two runs of {key}"
        found[tuple(key)] = {
            "hashes": (dataset, template, settings),
            "status": (status, n_items),
            "metrics": sorted(metrics),
            "predictions": [(*p[:4], as_json(p[4])) for p in predictions],
        }
    return found


def assert_same_results(found: dict[tuple, dict], expected: dict[tuple, dict]) -> None:
    """stored_results equal, the first difference named."""
    assert sorted(found) == sorted(expected)
    for key, run in expected.items():
        for part, value in run.items():
            assert found[key][part] == value, f"{key} {part} differs"


def sequential(workspace: Path, db_url: str, *options: str) -> None:
    """The sweep's 18 runs as plain `medarena eval` commands, one after the other."""
    for shots in ("0", "1"):
        models = [arg for variant in VARIANTS for arg in ("-m", variant)]
        tasks = [arg for task in TASKS for arg in ("-t", task)]
        result = invoke(
            workspace, db_url, "eval", *models, *tasks, "--mode", "loglik", "--shots", shots,
            "--limit", "4", *options,
        )  # fmt: skip
        assert result.exit_code == 0, result.output


def sweep_process(workspace: Path, db_url: str, *args: str) -> subprocess.Popen:
    """`medarena sweep ...` in a process of its own."""
    command = [sys.executable, "-c", "from medarena.cli import app; app()"]
    command += ["--workspace", str(workspace), "--db", db_url, "sweep", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_bad_sweep_file_is_refused_with_its_lines(eval_workspace, db_url, tmp_path):
    bad = eval_workspace / "bad.yaml"
    bad.write_text(
        "name: bad\n"
        "variants: [tiny-medical-base, no-such-model]\n"
        "tasks: [pubmedqa, nothing]\n"
        "settings:\n"
        "  - {name: letters, mode: cloze}\n"
        "hardware: h100-80gb-sxm\n"
        "shots: 3\n"
    )
    result = invoke(eval_workspace, db_url, "sweep", "run", str(bad), "--plan")
    assert result.exit_code == 2, result.output
    assert f"{bad}:7: shots: unknown key" in result.output
    bad.write_text(bad.read_text().replace("shots: 3\n", ""))
    result = invoke(eval_workspace, db_url, "sweep", "run", str(bad), "--plan")
    assert result.exit_code == 2, result.output
    assert f"{bad}:2: variants[1]: unknown variant 'no-such-model'" in result.output
    assert f"{bad}:3: tasks[1]: unknown task 'nothing'" in result.output
    assert f"{bad}:5: settings[0].mode: task pubmedqa (tasks[0]) allows" in result.output
    bad.write_text("name: bad\nvariants: [tiny-medical-base]\ntasks: [pubmedqa]\n")
    result = invoke(eval_workspace, db_url, "sweep", "run", str(bad), "--plan")
    assert result.exit_code == 2 and "exactly one of them" in result.output
    assert not (tmp_path / "results.db").exists()


def test_the_plan_counts_runs_items_and_gpu_hours_and_stores_nothing(
    sweep_workspace, db_url, tmp_path
):
    from medarena.evaluate.reproduce import estimate, mean_item_chars
    from medarena.registry import load_registry
    from medarena.sweep.cells import expand
    from medarena.sweep.spec import load_sweep

    grid = str(sweep_workspace / "grid.yaml")
    result = invoke(sweep_workspace, db_url, "sweep", "run", grid, "--plan", "--slurm")
    assert result.exit_code == 0, result.output
    registry = load_registry(sweep_workspace)
    swept = expand(registry, load_sweep(sweep_workspace / "grid.yaml", registry))
    assert len(swept.cells) == 18 and {cell.items for cell in swept.cells} == {4}
    profile = registry.hardware_profile("h100-80gb-sxm")
    hours = sum(
        estimate(c.task, c.options, 4, mean_item_chars(swept.data(c).items), 213e3, profile)[1]
        for c in swept.cells
    )
    assert f"18 runs, 72 items, about {hours:.2f} GPU-hours on h100-80gb-sxm" in result.output
    assert result.output.count("one-shot") == 9
    # without slurm settings: one job per variant, each on one GPU of the profile
    assert (
        "SLURM array: 3 job(s), 1 GPU(s) each: tiny-medical-base, tiny-sweep-1, tiny-sweep-2"
        in result.output
    )
    assert not (tmp_path / "results.db").exists()


def test_claims_are_exclusive_until_released_expired_or_their_holder_is_dead(db_url):
    check_claims(db_url)


def check_claims(db_url: str) -> None:
    """Claims on any database (also run on PostgreSQL: test_postgres.py)."""
    me = Holder("a" * 36, socket.gethostname(), os.getpid())
    other = Holder("b" * 36, socket.gethostname(), os.getpid())
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    ghost = Holder("c" * 36, socket.gethostname(), int(dead.stdout))
    elsewhere = Holder("d" * 36, "another-node", 1)
    with Store(db_url) as store:
        claim = dict(sweep="s", cell="c", lease_s=60)
        assert store.claim_cell("k1", holder=me, **claim)
        assert store.claim_cell("k1", holder=me, **claim)  # already mine
        assert not store.claim_cell("k1", holder=other, **claim)
        store.release_claim("k1", me.id)
        assert store.claims(["k1"]) == {}
        assert store.claim_cell("k1", holder=other, **claim)
        # a holder known dead (a process of this host that is gone) loses its claim at once
        assert store.claim_cell("k2", holder=ghost, **claim)
        assert store.claim_cell("k2", holder=me, **claim)
        # a holder on another node keeps it while it renews, loses it when the lease lapses
        assert store.claim_cell("k3", holder=elsewhere, sweep="s", cell="c", lease_s=0.2)
        assert not store.claim_cell("k3", holder=me, **claim)
        assert store.renew_claims(elsewhere.id, 60) == 1
        assert store.claims(["k3"])["k3"].expires_at > utcnow() + timedelta(seconds=50)
        assert store.renew_claims(elsewhere.id, -1) == 1  # lapsed
        assert store.claim_cell("k3", holder=me, **claim)
        # a failed cell keeps its error, expired, until a worker claims it again
        store.release_claim("k3", me.id, error="EngineError: boom")
        failed = store.claims(["k3"])["k3"]
        assert failed.error == "EngineError: boom" and not failed.live()
        assert store.claim_cell("k3", holder=other, **claim)
        assert store.claims(["k3"])["k3"].error is None
        assert {key: c.holder.id for key, c in store.claims(["k1", "k2", "k3"]).items()} == {
            "k1": other.id,
            "k2": me.id,
            "k3": other.id,
        }


@pytest.mark.slow
def test_local_workers_store_what_a_sequential_run_stores(sweep_workspace, db_url, tmp_path):
    grid = str(sweep_workspace / "grid.yaml")
    swept = sweep_process(sweep_workspace, db_url, "run", grid, "--workers", "2")
    output = swept.communicate(timeout=600)[0]
    assert swept.returncode == 0, output
    assert "2 workers ended with exit codes [0, 0]" in output
    assert "sweep grid: 18 done, 0 running, 0 failed, 0 pending" in output
    plain_url = f"sqlite:///{tmp_path / 'sequential.db'}"
    sequential(sweep_workspace, plain_url)
    from_sweep, from_eval = stored_results(db_url), stored_results(plain_url)
    assert len(from_sweep) == 18
    assert_same_results(from_sweep, from_eval)
    assert sql_rows(db_url, "SELECT count(*) FROM predictions") == [(72,)]
    assert sql_rows(db_url, "SELECT count(*) FROM sweep_claims") == [(0,)]  # all released

    status = invoke(sweep_workspace, db_url, "sweep", "status", grid, "--json")
    assert status.exit_code == 0, status.output
    rows = json.loads(status.stdout)
    assert len(rows) == 18 and {row["state"] for row in rows} == {"done"}
    again = invoke(sweep_workspace, db_url, "sweep", "run", grid)
    assert again.exit_code == 0 and "ran:" not in again.output  # nothing left to run
    assert sql_rows(db_url, "SELECT count(*) FROM eval_runs") == [(18,)]


@pytest.mark.slow
def test_two_sweeps_sharing_cells_never_run_a_cell_twice(sweep_workspace, db_url):
    # both start on the cells they share (tiny-sweep-1's), at the same moment
    first = write_sweep(sweep_workspace / "first.yaml", "first", [VARIANTS[1], VARIANTS[0]])
    second = write_sweep(sweep_workspace / "second.yaml", "second", VARIANTS[1:])
    # the store exists before both start, as it does for sweeps on a shared database
    with Store(db_url):
        pass
    processes = [
        sweep_process(sweep_workspace, db_url, "run", str(path)) for path in (first, second)
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    ran = [
        line.removeprefix("ran: ")
        for out in outputs
        for line in out.splitlines()
        if line.startswith("ran: ")
    ]
    shared = [label for label in ran if label.startswith("tiny-sweep-1 /")]
    assert len(shared) == 6 and len(set(shared)) == 6  # each shared cell ran in one process only
    assert len(ran) == 18 and len(set(ran)) == 18
    assert "sweep first: 12 done, 0 running, 0 failed, 0 pending" in outputs[0]
    assert "sweep second: 12 done, 0 running, 0 failed, 0 pending" in outputs[1]
    assert sql_rows(
        db_url, "SELECT count(*), sum(n_items) FROM eval_runs WHERE status = 'completed'"
    ) == [(18, 72)]
    assert sql_rows(db_url, "SELECT count(*) FROM predictions") == [(72,)]


def test_a_cell_that_fails_is_reported_and_the_others_complete(sweep_workspace, db_url):
    broken = dict(FAMILY, name="tiny-broken")
    broken["variants"] = [
        dict(
            FAMILY["variants"][0],
            name="tiny-unbuilt",
            source={"kind": "embedded", "builder": "tiny", "seed": 7},
        )
    ]
    (sweep_workspace / "models" / "tiny-broken.yaml").write_text(json.dumps(broken))
    path = write_sweep(
        sweep_workspace / "mixed.yaml",
        "mixed",
        ["tiny-unbuilt", "tiny-medical-base"],
        tasks=["pubmedqa"],
        settings=SETTINGS[:1],
    )
    result = invoke(sweep_workspace, db_url, "sweep", "run", str(path))
    assert result.exit_code == 1, result.output
    assert "sweep mixed: 1 done, 0 running, 1 failed, 0 pending" in result.output
    status = json.loads(
        invoke(sweep_workspace, db_url, "sweep", "status", str(path), "--json").stdout
    )
    assert [(row["variant"], row["state"]) for row in status] == [
        ("tiny-unbuilt", "failed"),
        ("tiny-medical-base", "done"),
    ]
    assert "tiny-unbuilt" in status[0]["detail"]


def test_slurm_sweeps_refuse_sqlite_naming_postgresql(sweep_workspace, db_url, tmp_path):
    result = invoke(
        sweep_workspace, db_url, "sweep", "run", str(sweep_workspace / "grid.yaml"), "--slurm"
    )
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "SQLite file cannot be shared safely between nodes" in message
    assert "PostgreSQL URL (postgresql+psycopg://" in message
    assert not (tmp_path / "results.db").exists()
    assert not (sweep_workspace / ".medarena" / "sweeps").exists()


def test_protocol_cells_follow_the_protocols_and_shared_runs_are_one_cell(eval_workspace):
    from medarena.registry import load_registry
    from medarena.sweep.cells import expand
    from medarena.sweep.spec import load_sweep

    path = eval_workspace / "protocols.yaml"
    path.write_text(
        "name: presets\nvariants: [tiny-medical-base]\ntasks: [pubmedqa, medqa_4options]\n"
        "protocols: [lm-eval, openmedlb, meditron-incontext]\nlimit: 3\n"
    )
    registry = load_registry(eval_workspace)
    cells = expand(registry, load_sweep(path, registry)).cells
    shown = [
        (c.task.name, c.setting, c.spec.scoring_mode, c.options.shots, c.options.seed)
        for c in cells
    ]
    assert shown == [
        ("pubmedqa", "lm-eval, openmedlb", "loglik", 0, 0),  # one run under both presets
        ("pubmedqa", "meditron-incontext", "generate", 3, 0),
        ("pubmedqa", "meditron-incontext", "generate", 3, 1),
        ("pubmedqa", "meditron-incontext", "generate", 3, 2),
        ("medqa_4options", "lm-eval, openmedlb", "loglik", 0, 0),
        ("medqa_4options", "meditron-incontext", "generate", 3, 0),
        ("medqa_4options", "meditron-incontext", "generate", 3, 1),
        ("medqa_4options", "meditron-incontext", "generate", 3, 2),
    ]
    assert len({cell.key for cell in cells}) == 8


def test_the_shipped_sweeps_are_valid(eval_workspace, db_url, tmp_path):
    from medarena.registry import load_registry
    from medarena.sweep.spec import load_sweep
    from tests.conftest import REPO

    registry = load_registry(eval_workspace)
    shipped = sorted((REPO / "benchmarks" / "sweeps").glob("*.yaml"))
    names = ["meditron-7b-leaderboard.yaml", "seed-comparison.yaml", "tiny-grid.yaml"]
    assert [path.name for path in shipped] == names
    for path in shipped:
        load_sweep(path, registry)
    plan = invoke(eval_workspace, db_url, "sweep", "run", str(shipped[2]), "--plan")
    assert plan.exit_code == 0, plan.output
    assert "6 runs, 48 items" in plan.output
    assert not (tmp_path / "results.db").exists()


def test_the_plan_prices_api_variants(eval_workspace, db_url):
    from medarena.evaluate.reproduce import api_cost, mean_item_chars
    from medarena.registry import load_registry
    from medarena.sweep.cells import expand
    from medarena.sweep.spec import load_sweep
    from tests.integration.test_eval_api import PRICES, card

    (eval_workspace / "models" / "served.yaml").write_text(card("http://127.0.0.1:9/v1"))
    path = write_sweep(
        eval_workspace / "api.yaml", "api", ["tiny-api", "gpt-4"],
        tasks=["pubmedqa", "medqa_4options"], engine="openai",
        settings=[{"name": "generated", "mode": "generate"}],
    )  # fmt: skip
    result = invoke(eval_workspace, db_url, "sweep", "run", str(path), "--plan")
    assert result.exit_code == 0, result.output
    registry = load_registry(eval_workspace)
    swept = expand(registry, load_sweep(path, registry))
    prices = {v: registry.variant(v).variant.source.prices for v in ("tiny-api", "gpt-4")}
    assert (prices["tiny-api"].input_per_million, prices["tiny-api"].output_per_million) == PRICES
    assert registry.variant("gpt-4").variant.params_b is None  # undisclosed: priced all the same
    cost = sum(
        api_cost(c.task, c.options, 4, mean_item_chars(swept.data(c).items), prices[c.variant])
        for c in swept.cells
    )
    assert cost > 0 and f"4 runs, 16 items, API cost about ${cost:,.4f}: 4 char" in result.output


def test_a_working_holder_keeps_its_claims_past_the_lease(db_url):
    import time

    from medarena.sweep.run import new_holder, renewing

    holder, other = new_holder(), Holder("e" * 36, "another-node", 1)
    with Store(db_url) as store:
        assert store.claim_cell("k", sweep="s", cell="c", holder=holder, lease_s=0.4)
        with renewing(db_url, holder, 0.4):
            time.sleep(1.2)  # three leases: renewed every 0.1 s
            assert store.claims(["k"])["k"].live()
            assert not store.claim_cell("k", sweep="s", cell="c", holder=other, lease_s=60)
        time.sleep(0.6)  # no longer renewed: lapsed, taken over
        assert store.claim_cell("k", sweep="s", cell="c", holder=other, lease_s=60)


def test_variants_run_on_their_own_engines_and_plans_for_the_cluster_check_its_gpus(
    eval_workspace, db_url
):
    """`variant_engines` gives a variant its engine (checked: a variant of the sweep, a known
    engine); a GPU-only variant is planned for `--slurm` GPU jobs on a machine without a GPU,
    and refused for this machine's workers, naming what can run it."""
    from medarena.registry import load_registry
    from medarena.sweep.cells import expand
    from medarena.sweep.spec import load_sweep

    path = write_sweep(
        eval_workspace / "mixed.yaml", "mixed", ["tiny-medical-base", "meditron-7b-gptq", "gpt-4"],
        tasks=["pubmedqa"], engine="hf", settings=[{"name": "generated", "mode": "generate"}],
        variant_engines={"meditron-7b-gptq": "vllm", "gpt-4": "openai"},
    )  # fmt: skip
    registry = load_registry(eval_workspace)
    swept = expand(registry, load_sweep(path, registry), "cuda")
    engines = {cell.variant: cell.options.engine for cell in swept.cells}
    assert engines == {"tiny-medical-base": "hf", "meditron-7b-gptq": "vllm", "gpt-4": "openai"}
    plan = invoke(eval_workspace, db_url, "sweep", "run", str(path), "--plan", "--slurm")
    assert plan.exit_code == 0, plan.output
    assert "2 job(s), 1 GPU(s) each: meditron-7b-gptq, tiny-medical-base" in plan.output
    assert "0 GPU(s) each: gpt-4" in plan.output
    here = invoke(eval_workspace, db_url, "sweep", "run", str(path), "--plan")
    assert here.exit_code == 2 and "--engine vllm on cuda" in here.output
    bad = yaml.safe_load(path.read_text())
    bad["variant_engines"] = {"llama-2-7b": "vllm", "gpt-4": "telepathy"}
    path.write_text(yaml.safe_dump(bad, sort_keys=False))
    refused = invoke(eval_workspace, db_url, "sweep", "run", str(path), "--plan")
    assert refused.exit_code == 2, refused.output
    assert "variant_engines.llama-2-7b: 'llama-2-7b' is not one of the `variants`" in refused.output
    assert "variant_engines.gpt-4: unknown engine 'telepathy'" in refused.output
