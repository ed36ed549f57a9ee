"""The datatrove preparation: compressed inputs read as they ship, located bad records, shards
identical for the same task count whatever the parallelism, and a preparation SIGKILLed in the
middle of a task that resumes at its first unfinished task."""

import csv
import gzip
import io
import itertools
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zstandard

from medarena.data import steps
from medarena.data.corpus import CORPUS_READERS, Source, read_source
from medarena.data.prepare import prepare, work_dir
from medarena.data.readers import LocatedJsonl, record_reader
from medarena.errors import ProblemsError
from medarena.pretrain.recipe import PretrainRecipe
from tests.conftest import REPO

VOCABULARY = [f"w{i}" for i in range(400)]
MIMIC_COLUMNS = ["note_id", "subject_id", "hadm_id", "note_type", "note_seq", "charttime",
                 "storetime", "text"]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def synthetic(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(VOCABULARY, int(rng.integers(40, 120)))) for _ in range(count)]
    return texts + texts[: count // 10]  # planted exact duplicates


def write_corpus(folder: Path, files: int, per_file: int, seed: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        texts = synthetic(per_file, seed + index)
        rows = [{"id": f"{index}-{i}", "text": text} for i, text in enumerate(texts)]
        (folder / f"part-{index}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def recipe_of(sources: list[dict], near: float | None = 0.8) -> PretrainRecipe:
    return PretrainRecipe.model_validate(
        {
            "name": "pipeline",
            "description": "x",
            "citation": "x",
            "sources": sources,
            "cleaning": {"min_words": 20, "near_dedup_threshold": near},
            "sequence_length": 32,
            "global_batch_sequences": 2,
            "optimizer": {"lr": 1e-3},
        }
    )


def folder_source(name: str, ratio: float, reader: str = "records") -> dict:
    data = {"path": name, "file_format": "jsonl"}
    return {"name": name, "kind": "general", "reader": reader, "data": data, "ratio": ratio}


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_mimic_csv_gz_and_jsonl_zst_are_read_as_they_ship(tmp_path):
    long_note = "Discharge summary.\n" + "stable, afebrile; " * 9000  # over csv's 128 KiB limit
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(MIMIC_COLUMNS)
    writer.writerow(["10-DS-1", "10", "20", "DS", "1", "2180-01-01", "2180-01-02", long_note])
    writer.writerow(["10-DS-2", "10", "21", "DS", "2", "", "", 'Name: ___\n"quoted", text'])
    (tmp_path / "discharge.csv.gz").write_bytes(gzip.compress(buffer.getvalue().encode()))
    rows = "".join(json.dumps({"pmid": str(i), "text": f"abstract {i}"}) + "\n" for i in range(3))
    (tmp_path / "abstracts.jsonl.zst").write_bytes(zstandard.compress(rows.encode()))

    def source(path: str) -> Source:
        return Source(name="s", kind="clinical_notes", data={"path": path}, ratio=1)

    notes = list(read_source(source("discharge.csv.gz"), tmp_path))
    assert [d.id for d in notes] == ["10-DS-1", "10-DS-2"]
    assert notes[0].text == long_note.strip() and notes[1].text == 'Name: ___\n"quoted", text'
    abstracts = list(read_source(source("abstracts.jsonl.zst"), tmp_path))
    assert [(d.id, d.text) for d in abstracts] == [(str(i), f"abstract {i}") for i in range(3)]


def test_malformed_records_are_located_in_compressed_files(tmp_path):
    lines = [json.dumps({"text": "fine"}), "{not json", json.dumps({"body": "no text"})]
    (tmp_path / "bad.jsonl.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["note_id", "body"], ["1", "no text column"]])
    (tmp_path / "notes.csv").write_text(buffer.getvalue())
    with pytest.raises(ProblemsError) as caught:
        list(record_reader("s", tmp_path / "bad.jsonl.gz", None, ["text"]).run(None, 0, 1))
    found = [(p.file, p.line, p.field) for p in caught.value.problems]
    where = str(tmp_path / "bad.jsonl.gz")
    assert found == [(where, 2, ""), (where, 3, "text")]
    assert "malformed JSON line" in caught.value.problems[0].message
    with pytest.raises(ProblemsError) as caught:
        list(record_reader("s", tmp_path / "notes.csv", None, ["text"]).run(None, 0, 1))
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (str(tmp_path / "notes.csv"), 2, "text")


def test_a_bad_record_in_a_worker_fails_the_preparation_before_anything_is_complete(
    tokenizer, tmp_path
):
    write_corpus(tmp_path / "a", files=3, per_file=20)
    with (tmp_path / "a" / "part-2.jsonl").open("a") as handle:
        handle.write('{"id": "x", "text": "cut in hal\n')
    recipe = recipe_of([folder_source("a", 1)])
    with pytest.raises(ProblemsError, match="malformed records") as caught:
        prepare(recipe, tokenizer, tmp_path, tmp_path / "out", workers=2, tasks=3)
    [problem] = caught.value.problems  # raised in a worker process, re-raised whole
    assert (problem.file, problem.line) == (str(tmp_path / "a" / "part-2.jsonl"), 23)
    assert not (tmp_path / "out").exists() and not work_dir(tmp_path / "out").exists()


def test_same_inputs_seed_and_tasks_give_identical_shards_whatever_the_workers(tokenizer, tmp_path):
    write_corpus(tmp_path / "a", files=3, per_file=60)
    write_corpus(tmp_path / "b", files=2, per_file=40, seed=100)
    recipe = recipe_of([folder_source("a", 0.7), folder_source("b", 0.3)])
    one, _ = prepare(recipe, tokenizer, tmp_path, tmp_path / "one", workers=1, tasks=3)
    two, cleaning = prepare(recipe, tokenizer, tmp_path, tmp_path / "two", workers=2, tasks=3)
    assert shard_bytes(tmp_path / "one") == shard_bytes(tmp_path / "two")
    assert one.sequences == two.sequences > 100
    assert cleaning["exact_duplicates"] == {"a": 18, "b": 8}  # every planted copy, no more
    assert json.loads((tmp_path / "two" / "index.json").read_text())["tasks"] == 3
    assert not work_dir(tmp_path / "two").exists()  # intermediate files go once packed


def test_the_cleaned_documents_flushed_and_read_back_in_small_pieces_give_the_same_shards(
    tokenizer, tmp_path, monkeypatch
):
    write_corpus(tmp_path / "a", files=3, per_file=60)
    recipe = recipe_of([folder_source("a", 1)])
    prepare(recipe, tokenizer, tmp_path, tmp_path / "whole", workers=1, tasks=2)
    monkeypatch.setattr(steps, "FLUSH", 7)  # offsets and sources written every 7 documents
    monkeypatch.setattr(steps.CleanedBatches, "BATCH", 5)  # removals and encoding 5 at a time
    _, cleaning = prepare(recipe, tokenizer, tmp_path, tmp_path / "pieces", workers=1, tasks=2)
    assert shard_bytes(tmp_path / "whole") == shard_bytes(tmp_path / "pieces")
    assert cleaning["exact_duplicates"] == {"a": 18}


class KillingJsonl(LocatedJsonl):
    """Reads like `records` and logs which file it reads, but SIGKILLs its own process half-way
    through `part-2.jsonl` while the marker file exists (and removes it: the next run gets
    through)."""

    def read_file(self, filepath: str):
        marker = Path(self.data_folder.path) / "kill-once"
        with (Path(self.data_folder.path) / "reads.log").open("a") as log:
            log.write(filepath + "\n")
        for count, document in enumerate(super().read_file(filepath)):
            if filepath == "part-2.jsonl" and count == 10 and marker.exists():
                marker.unlink()
                os.kill(os.getpid(), signal.SIGKILL)
            yield document


def killing_reader(source: Source, pretrain_dir: Path) -> KillingJsonl:
    reader = KillingJsonl(str(pretrain_dir / source.data.path), glob_pattern="*.jsonl*")
    reader._setup(source.name, source.text_fields)
    return reader


KILLED_RUN = """
import sys
from pathlib import Path
from transformers import AutoTokenizer
from medarena.data.corpus import CORPUS_READERS
from medarena.data.prepare import prepare
from tests.integration.test_data_pipeline import killing_reader, recipe_of, folder_source

root = Path(sys.argv[1])
with CORPUS_READERS.temporarily("killing", killing_reader):
    recipe = recipe_of([folder_source("a", 1, reader="killing")])
    tokenizer = AutoTokenizer.from_pretrained(sys.argv[2])
    prepare(recipe, tokenizer, root, root / "out", workers=1, tasks=4)
"""


@pytest.mark.slow  # a second Python process that imports transformers
def test_a_sigkilled_preparation_resumes_at_its_first_unfinished_task(
    tokenizer, tiny_model_dir, tmp_path
):
    write_corpus(tmp_path / "a", files=4, per_file=40)
    (tmp_path / "a" / "kill-once").touch()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "platform"), str(REPO)])}
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path), str(tiny_model_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    work = work_dir(tmp_path / "out")
    completions = work / "logs" / "clean" / "completions"
    done = sorted(path.name for path in completions.iterdir())
    assert done == ["00000", "00001"]  # task 2 was killed half-way through its file
    assert (work / "cleaned" / "00002.texts").exists()  # its partial output is on disk
    reads = tmp_path / "a" / "reads.log"
    assert reads.read_text().split() == ["part-0.jsonl", "part-1.jsonl", "part-2.jsonl"]
    reads.unlink()
    with CORPUS_READERS.temporarily("killing", killing_reader):
        recipe = recipe_of([folder_source("a", 1, reader="killing")])
        resumed, cleaning = prepare(
            recipe, tokenizer, tmp_path, tmp_path / "out", workers=1, tasks=4
        )
    assert reads.read_text().split() == ["part-2.jsonl", "part-3.jsonl"]  # tasks 0, 1 skipped
    assert cleaning["documents_in"] == {"a": 4 * 44}  # every document counted once
    prepare(recipe_of([folder_source("a", 1)]), tokenizer, tmp_path, tmp_path / "fresh", tasks=4)
    # the partial output of the killed task was not read: the shards are a fresh run's
    # (the indexes differ in the recipe's hash only: the fresh recipe names another reader)
    resumed_shards, fresh_shards = shard_bytes(tmp_path / "out"), shard_bytes(tmp_path / "fresh")
    index, fresh_index = resumed_shards.pop("index.json"), fresh_shards.pop("index.json")
    assert resumed_shards == fresh_shards
    for key in ("mix", "cleaning", "shards", "tokens"):
        assert json.loads(index)[key] == json.loads(fresh_index)[key]
    assert resumed.sequences > 100 and not work.exists()


def test_the_stages_chain_as_slurm_job_arrays_with_the_local_completion_marks(tokenizer, tmp_path):
    """Built, not submitted (tests/integration/test_data_slurm.py submits them): every stage a
    job array of its task count, depending on the stage before, logging where a local run looks
    for completed tasks; a stage of more tasks than the arrays' limit runs several per job."""
    from medarena.data.pipeline import TokenizerSpec, stages
    from medarena.data.slurm import SlurmSettings, executors

    write_corpus(tmp_path / "a", files=2, per_file=5)
    recipe = recipe_of([folder_source("a", 1)])
    spec = TokenizerSpec(tokenizer.backend_tokenizer.to_str(), tokenizer.eos_token_id, "uint16")
    stage_list = stages(
        recipe.sources, recipe.cleaning, tmp_path, tmp_path / "work", spec, tasks=8, seed=0
    )
    chain = executors(stage_list, tmp_path / "work", SlurmSettings(partition="cpu"), arrays=4)
    assert [(s.name, s.tasks) for s in stage_list] == [
        ("clean", 8), ("exact", 1), ("buckets", 9), ("cluster", 1), ("tokenize", 8)
    ]  # fmt: skip
    assert [executor.tasks for executor in chain] == [8, 1, 9, 1, 8]
    assert [executor.tasks_per_job for executor in chain] == [2, 1, 3, 1, 2]
    assert chain[0].depends is None
    assert all(later.depends is earlier for earlier, later in itertools.pairwise(chain))
    assert chain[-1].logging_dir.path == str(tmp_path / "work" / "logs" / "tokenize")
    args = chain[0].get_sbatch_args()
    assert args["partition"] == "cpu" and args["kill-on-invalid-dep"] == "yes"
    assert "qos" not in args
    default = executors(stage_list[:1], tmp_path / "work", SlurmSettings(), arrays=8)[0]
    assert "partition" not in default.get_sbatch_args()  # the cluster's default partition


def test_data_prepare_runs_the_stages_here_for_train_pretrain_to_pack(eval_workspace, db_url):
    from tests.helpers import invoke

    (eval_workspace / "pretrain").symlink_to(REPO / "pretrain")
    command = ["data", "prepare", "-r", "tiny-demo", "-m", "tiny-medical-base", "--tasks", "2"]
    refused = invoke(eval_workspace, db_url, *command, "--wait")
    assert refused.exit_code == 2 and "go with --slurm" in refused.stderr
    done = invoke(eval_workspace, db_url, *command)
    assert done.exit_code == 0, done.output
    assert "2 tasks done: 761 of 774 documents kept" in done.stdout
    assert "medarena train pretrain -r tiny-demo -m tiny-medical-base" in done.stdout
    work = work_dir(eval_workspace / ".medarena/runs/tiny-medical-base-tiny-demo/data")
    for stage in ("clean", "exact", "buckets", "cluster", "tokenize"):
        assert (work / "logs" / stage / "completions").is_dir()
    assert json.loads((work / "inputs.json").read_text())["tasks"] == 2
