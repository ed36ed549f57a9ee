"""Log-likelihood multiple choice equals lm-evaluation-harness: same model, items and prompt
give the same per-choice log-likelihoods and exactly the same acc and acc_norm."""

import json
from pathlib import Path

import pytest

from medarena.evaluate.engines import load_engine
from medarena.evaluate.runner import EvalOptions, evaluate
from medarena.evaluate.spec import load_benchmarks
from medarena.registry import load_registry
from medarena.store import Store
from tests.conftest import REPO

MEDQA_TEXT = (
    "Question: {{question}}\nA. {{options.A}}\nB. {{options.B}}\nC. {{options.C}}\n"
    "D. {{options.D}}\nAnswer:"
)
PUBMEDQA_TEXT = "Abstract: {{CONTEXTS | join('\\n')}}\nQuestion: {{QUESTION}}\nAnswer:"


def lm_eval_task(name: str, data_file: Path, text: str, choices: list[str], target: str) -> str:
    return json.dumps(
        {
            "task": name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(data_file)}},
            "test_split": "test",
            "output_type": "multiple_choice",
            "doc_to_text": text,
            "doc_to_choice": choices,
            "doc_to_target": target,
            "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
        }
    )


def run_lm_eval(model_dir: Path, tmp_path: Path, monkeypatch) -> dict:
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    tasks_dir = tmp_path / "lm_eval_tasks"
    tasks_dir.mkdir()
    pubmedqa = json.loads((REPO / "benchmarks/samples/pubmedqa/test_set.json").read_text())
    pubmedqa_jsonl = tmp_path / "pubmedqa.jsonl"
    pubmedqa_jsonl.write_text("".join(json.dumps(r) + "\n" for r in pubmedqa.values()))
    (tasks_dir / "ma_medqa.yaml").write_text(
        lm_eval_task(
            "ma_medqa",
            REPO / "benchmarks/samples/medqa_4options/test.jsonl",
            MEDQA_TEXT,
            ["A", "B", "C", "D"],
            "{{['A', 'B', 'C', 'D'].index(answer_idx)}}",
        )
    )
    (tasks_dir / "ma_pubmedqa.yaml").write_text(
        lm_eval_task(
            "ma_pubmedqa",
            pubmedqa_jsonl,
            PUBMEDQA_TEXT,
            ["yes", "no", "maybe"],
            "{{['yes', 'no', 'maybe'].index(final_decision)}}",
        )
    )
    return lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={model_dir},dtype=float32",
        tasks=["ma_medqa", "ma_pubmedqa"],
        task_manager=TaskManager(include_path=str(tasks_dir)),
        batch_size=8,
        device="cpu",
        log_samples=True,
    )


def run_medarena(workspace: Path, db_url: str) -> dict[str, list]:
    registry = load_registry(workspace)
    tasks = load_benchmarks(workspace)
    entry = registry.variant("tiny-medical-base")
    results = {}
    with Store(db_url) as store:
        store.sync_registry(registry)
        for name in ("medqa_4options", "pubmedqa"):
            outcome = evaluate(
                store,
                registry,
                entry.variant.name,
                tasks[name],
                EvalOptions(),
                lambda: load_engine("hf", registry, entry, batch_size=5),
            )
            results[name] = (outcome.metrics, store.predictions(outcome.run.id))
    return results


def test_loglik_accuracy_equals_lm_evaluation_harness(
    eval_workspace, db_url, tmp_path, monkeypatch
):
    reference = run_lm_eval(
        eval_workspace / ".medarena/models/tiny-medical-base", tmp_path, monkeypatch
    )
    ours = run_medarena(eval_workspace, db_url)
    for task, theirs_name in (("medqa_4options", "ma_medqa"), ("pubmedqa", "ma_pubmedqa")):
        metrics, predictions = ours[task]
        values = {m.name: m.value for m in metrics}
        theirs = reference["results"][theirs_name]
        assert values["acc"] == theirs["acc,none"]
        assert values["acc_norm"] == theirs["acc_norm,none"]
        # per item and per choice: the same log-likelihoods (both float32 on CPU)
        samples = sorted(reference["samples"][theirs_name], key=lambda s: s["doc_id"])
        assert len(samples) == len(predictions) == 40
        by_position = sorted(predictions, key=lambda p: _position(task, p.item_id))
        for sample, prediction in zip(samples, by_position, strict=True):
            theirs_ll = [resp[0][0] for resp in sample["resps"]]
            assert prediction.logprobs["loglik"] == pytest.approx(theirs_ll, abs=1e-4)
            assert prediction.correct == (max(theirs_ll) == theirs_ll[int(sample["target"])])


def _position(task: str, item_id: str):
    if task == "pubmedqa":
        keys = list(json.loads((REPO / "benchmarks/samples/pubmedqa/test_set.json").read_text()))
        return keys.index(item_id)
    return int(item_id)
