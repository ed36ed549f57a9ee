"""Data preparation on SLURM for real (`medarena data prepare --slurm`, tests/slurm_cluster.py):
the stages as dependent job arrays of several tasks give the local run's shards and counts byte
for byte; a bad record fails its task, cancels the later stages and is reported whole, leaving
nothing; a cancelled preparation, submitted again, runs its unfinished tasks only."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from medarena.data.corpus import CORPUS_READERS, Source
from medarena.data.pipeline import LeanLocalExecutor
from medarena.data.prepare import prepare, work_dir
from medarena.data.readers import LocatedJsonl
from medarena.data.slurm import active
from medarena.pretrain.recipe import get_recipe, load_recipes
from tests.conftest import REPO
from tests.helpers import invoke
from tests.integration.test_data_pipeline import shard_bytes, write_corpus

pytestmark = pytest.mark.slow

MODEL = "tiny-medical-base"


@pytest.fixture
def on_cluster(slurm, monkeypatch) -> object:
    """sbatch exports this environment: the jobs find the cluster, medarena and these tests."""
    monkeypatch.setenv("SLURM_CONF", str(slurm.conf))
    paths = [str(REPO / "platform"), str(REPO), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path for path in paths if path))
    return slurm


@pytest.fixture
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def data_prepare(workspace: Path, db_url: str, recipe: str, *options: str):
    return invoke(
        workspace, db_url, "data", "prepare", "-r", recipe, "-m", MODEL, *options,
        "--mem-per-cpu-gb", "1",
    )  # fmt: skip


def job_ids(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"stage (\w+) \(\d+ tasks\): SLURM job (\d+)", stdout))


def our_jobs(slurm) -> list[str]:
    shown = subprocess.run(
        ["squeue", "-h", "-o", "%F", "-u", getpass.getuser()],
        env=slurm.env(),
        capture_output=True,
        text=True,
    )
    return shown.stdout.split()


def no_local_task(self, rank: int, *args) -> None:
    raise AssertionError(f"task {rank} ran here: the SLURM jobs had completed it")


def test_the_demo_mix_on_slurm_packs_the_local_runs_shards(
    eval_workspace, db_url, on_cluster, tokenizer, tmp_path, monkeypatch
):
    (eval_workspace / "pretrain").symlink_to(REPO / "pretrain")
    done = data_prepare(eval_workspace, db_url, "tiny-demo", "--slurm", "--tasks", "2", "--wait")
    assert done.exit_code == 0, done.output
    jobs = job_ids(done.stdout)
    assert list(jobs) == ["clean", "exact", "buckets", "cluster", "tokenize"]
    assert "2 tasks done" in done.stdout
    out_dir = eval_workspace / ".medarena/runs/tiny-medical-base-tiny-demo/data"
    logs = work_dir(out_dir) / "logs"
    # two array tasks of the clean and tokenize stages; the bands share two jobs
    for stage in ("clean", "buckets", "tokenize"):
        ran = sorted(path.name for path in (logs / stage / "slurm_logs").iterdir())
        assert ran == [f"{jobs[stage]}_0.out", f"{jobs[stage]}_1.out"]
    assert sorted(path.name for path in (logs / "clean" / "completions").iterdir()) == [
        "00000",
        "00001",
    ]

    # `train pretrain` packs what the cluster prepared, running no task here (the work
    # folder keeps its task count); a local run of the same task count gives the same bytes
    recipe = get_recipe(load_recipes(REPO), "tiny-demo")
    with monkeypatch.context() as patched:
        patched.setattr(LeanLocalExecutor, "_run_for_rank", no_local_task)
        _, on_slurm = prepare(recipe, tokenizer, REPO / "pretrain", out_dir)
    _, here = prepare(recipe, tokenizer, REPO / "pretrain", tmp_path / "local", tasks=2)
    assert shard_bytes(out_dir) == shard_bytes(tmp_path / "local")  # index.json included
    assert on_slurm == here
    assert on_slurm["exact_duplicates"] and on_slurm["near_duplicates"]  # both dedups at work
    assert json.loads((out_dir / "index.json").read_text())["tasks"] == 2


def write_recipe(workspace: Path, reader: str = "records") -> None:
    recipe = {
        "name": "synthetic",
        "description": "x",
        "citation": "x",
        "sources": [
            {
                "name": "a",
                "kind": "general",
                "reader": reader,
                "ratio": 1,
                "data": {"path": "a", "file_format": "jsonl"},
            },
        ],
        "cleaning": {"min_words": 20, "near_dedup_threshold": 0.8},
        "sequence_length": 32,
        "global_batch_sequences": 2,
        "optimizer": {"lr": 1e-3},
    }
    (workspace / "pretrain" / "synthetic.yaml").write_text(yaml.safe_dump(recipe))


def test_a_bad_record_fails_on_slurm_with_its_place_and_leaves_nothing(
    eval_workspace, db_url, on_cluster
):
    corpus = eval_workspace / "pretrain" / "a"
    write_corpus(corpus, files=3, per_file=20)
    with (corpus / "part-2.jsonl").open("a") as handle:
        handle.write('{"id": "x", "text": "cut in hal\n')
    write_recipe(eval_workspace)
    options = ("--slurm", "--tasks", "2", "--wait")
    refused = data_prepare(eval_workspace, db_url, "synthetic", *options, "--partition", "nosuch")
    assert refused.exit_code == 1 and "sbatch failed (exit 1" in refused.stderr
    failed = data_prepare(eval_workspace, db_url, "synthetic", "--slurm", "--tasks", "2", "--wait")
    assert failed.exit_code == 2, failed.output
    assert f"{corpus / 'part-2.jsonl'}:23" in failed.stderr and "malformed" in failed.stderr
    run_dir = eval_workspace / ".medarena/runs/tiny-medical-base-synthetic"
    assert list(run_dir.iterdir()) == []  # nothing half-written (the folder: the sbatch failure)
    assert our_jobs(on_cluster) == []  # the later stages were cancelled, not left pending


class PausingJsonl(LocatedJsonl):
    """Reads like `records` and logs which file it reads, but sleeps before `part-1.jsonl`
    while `pause-once` exists (removing it and leaving `paused`: the next run gets through)."""

    def read_file(self, filepath: str):
        folder = Path(self.data_folder.path)
        with (folder / "reads.log").open("a") as log:
            log.write(filepath + "\n")
        if filepath == "part-1.jsonl" and (folder / "pause-once").exists():
            (folder / "pause-once").unlink()
            (folder / "paused").touch()
            time.sleep(3600)
        yield from super().read_file(filepath)


def pausing_reader(source: Source, pretrain_dir: Path) -> PausingJsonl:
    reader = PausingJsonl(str(pretrain_dir / source.data.path), glob_pattern="*.jsonl*")
    reader._setup(source.name, source.text_fields)
    return reader


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_a_cancelled_preparation_resubmitted_runs_its_unfinished_tasks_only(
    eval_workspace, db_url, on_cluster, tokenizer, tmp_path
):
    corpus = eval_workspace / "pretrain" / "a"
    write_corpus(corpus, files=2, per_file=40)
    (corpus / "pause-once").touch()
    write_recipe(eval_workspace, reader="pausing")
    out_dir = eval_workspace / ".medarena/runs/tiny-medical-base-synthetic/data"
    completions = work_dir(out_dir) / "logs" / "clean" / "completions"
    with CORPUS_READERS.temporarily("pausing", pausing_reader):
        first = data_prepare(eval_workspace, db_url, "synthetic", "--slurm", "--tasks", "2")
        assert first.exit_code == 0, first.output
        assert "submitted" in first.stdout
        jobs = job_ids(first.stdout)
        wait_until(lambda: (corpus / "paused").exists(), 120, "task 1 paused")
        wait_until(lambda: (completions / "00000").exists(), 120, "task 0 complete")

        # a local run of the same work folder is refused while the jobs run
        clash = data_prepare(eval_workspace, db_url, "synthetic", "--tasks", "2")
        assert clash.exit_code == 2 and "running on SLURM" in clash.stderr

        subprocess.run(["scancel", jobs["clean"]], env=on_cluster.env(), check=True)
        wait_until(lambda: not active(list(jobs.values())), 60, "the chain cancelled")
        assert sorted(path.name for path in completions.iterdir()) == ["00000"]
        reads = corpus / "reads.log"
        assert sorted(reads.read_text().split()) == ["part-0.jsonl", "part-1.jsonl"]
        reads.unlink()

        again = data_prepare(
            eval_workspace, db_url, "synthetic", "--slurm", "--tasks", "2", "--wait"
        )
        assert again.exit_code == 0, again.output
        assert reads.read_text().split() == ["part-1.jsonl"]  # task 0 was not run again
        # once complete, a resubmission submits nothing
        complete = data_prepare(
            eval_workspace, db_url, "synthetic", "--slurm", "--tasks", "2", "--wait"
        )
        assert complete.exit_code == 0, complete.output
        assert complete.stdout.count("already complete") == 5 and not job_ids(complete.stdout)
        recipe = get_recipe(load_recipes(eval_workspace), "synthetic")
        resumed, cleaning = prepare(recipe, tokenizer, eval_workspace / "pretrain", out_dir)

    # the shards of an uninterrupted local run (the indexes differ in the recipe's hash only:
    # the fresh recipe names another reader)
    write_recipe(eval_workspace)
    fresh = get_recipe(load_recipes(eval_workspace), "synthetic")
    prepare(fresh, tokenizer, eval_workspace / "pretrain", tmp_path / "fresh", tasks=2)
    resumed_shards, fresh_shards = shard_bytes(out_dir), shard_bytes(tmp_path / "fresh")
    index, fresh_index = resumed_shards.pop("index.json"), fresh_shards.pop("index.json")
    assert resumed_shards == fresh_shards
    for key in ("mix", "cleaning", "shards", "tokens"):
        assert json.loads(index)[key] == json.loads(fresh_index)[key]
    assert cleaning["documents_in"] == {"a": 2 * 44} and resumed.sequences > 100
