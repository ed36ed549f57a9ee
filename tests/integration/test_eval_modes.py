"""Generation modes on the tiny model: chat templates of instruction-tuned variants,
chain-of-thought with self-consistency, summarization scores, hub data, recomputable metrics."""

import json
from pathlib import Path

import pytest

from medarena.evaluate.runner import compute_metrics, load_task_data
from medarena.evaluate.spec import load_benchmarks
from medarena.store import Store
from tests.conftest import REPO
from tests.helpers import as_json, invoke, sql_rows

EVAL_TINY = ["eval", "-m", "tiny-medical-base"]


def medarena(workspace: Path, db_url: str, *args: str):
    result = invoke(workspace, db_url, *args)
    assert result.exit_code == 0, result.output
    return result


def only_run(db_url: str) -> tuple[int, dict, str]:
    """The latest run: id, config, scoring mode."""
    ((run_id, config, mode),) = sql_rows(
        db_url, "SELECT id, config, scoring_mode FROM eval_runs ORDER BY id DESC LIMIT 1"
    )
    return run_id, as_json(config), mode


def test_instruction_tuned_variant_is_prompted_through_its_chat_template(eval_workspace, db_url):
    card = eval_workspace / "models/tiny-medical.yaml"
    card.write_text(card.read_text() + "    instruction_tuned: true\n    chat_template: chatml\n")
    medarena(eval_workspace, db_url, *EVAL_TINY, "-t", "medmcqa", "--limit", "5")
    run_id, config, _ = only_run(db_url)
    assert config["chat_template"] == "chatml"
    with Store(db_url) as store:
        predictions = store.predictions(run_id)
    assert len(predictions) == 5
    for prediction in predictions:
        assert prediction.prompt.startswith("<|im_start|>user\nQuestion: ")
        assert prediction.prompt.endswith("Answer:<|im_end|>\n<|im_start|>assistant\n")

    medarena(
        eval_workspace, db_url, *EVAL_TINY, "-t", "medmcqa", "--limit", "5", "--no-chat-template"
    )
    plain_id, config, _ = only_run(db_url)
    assert plain_id != run_id and config["chat_template"] is None


def test_chain_of_thought_with_self_consistency_votes(eval_workspace, db_url):
    result = medarena(
        eval_workspace,
        db_url,
        *EVAL_TINY,
        "-t",
        "pubmedqa",
        "--mode",
        "generate",
        "--cot",
        "--samples",
        "3",
        "--temperature",
        "0.8",
        "--limit",
        "6",
    )
    run_id, config, mode = only_run(db_url)
    assert mode == "generate+cot+sc3@0.8" and config["samples"] == 3
    with Store(db_url) as store:
        predictions = store.predictions(run_id)
        metrics = {m.name: m.value for m in store.metrics(run_id)}
    assert len(predictions) == 6
    for prediction in predictions:
        assert prediction.prompt.endswith("Answer: Let's think step by step.")
        assert len(prediction.details["samples"]) == 3
        votes = [v for v in prediction.details["votes"] if v is not None]
        if votes:  # the majority of parsed votes, ties to the earliest
            best = max(votes.count(v) for v in votes)
            assert prediction.parsed_answer == next(v for v in votes if votes.count(v) == best)
        else:
            assert prediction.parse_failed and prediction.parsed_answer is None
        assert prediction.correct == (prediction.parsed_answer == prediction.gold)
    failures = sum(p.parse_failed for p in predictions) / 6
    assert metrics["parse_failure_rate"] == pytest.approx(failures)
    assert metrics["acc"] == pytest.approx(sum(bool(p.correct) for p in predictions) / 6)
    assert "pubmedqa" in result.stdout


def test_summaries_are_scored_per_item_and_metrics_recompute_from_storage(eval_workspace, db_url):
    medarena(eval_workspace, db_url, *EVAL_TINY, "-t", "mimic_cxr_summarization", "--limit", "6")
    run_id, _, mode = only_run(db_url)
    assert mode == "generate"
    task = load_benchmarks(eval_workspace)["mimic_cxr_summarization"]
    with Store(db_url) as store:
        stored = {m.name: m for m in store.metrics(run_id)}
        recomputed = {m.name: m for m in compute_metrics(store, run_id, task, "generate")}
        predictions = store.predictions(run_id)
    assert set(stored) == {"rouge_1", "rouge_2", "rouge_l", "rouge_lsum", "bertscore_f1"}
    assert stored == recomputed
    for prediction in predictions:
        assert 0.0 <= prediction.details["rouge_l"] <= 1.0
        assert 0.0 < prediction.details["bertscore_f1"] < 1.0
        assert prediction.score == prediction.details["rouge_l"]
    mean_rouge = sum(p.details["rouge_l"] for p in predictions) / len(predictions)
    assert stored["rouge_l"].value == pytest.approx(mean_rouge)


def test_hub_source_reads_the_same_fields(eval_workspace, db_url, monkeypatch):
    """The hub is outside the code under test: `datasets.load_dataset` is replaced by the
    bundled sample, served as a real `datasets.Dataset` with the hub's field layout."""
    import datasets

    rows = [
        json.loads(line)
        for line in (REPO / "benchmarks/samples/medqa_4options/test.jsonl").read_text().splitlines()
    ]
    asked = []

    def from_hub(path, name=None, split=None, revision=None):
        asked.append((path, name, split))
        return datasets.Dataset.from_list(rows[:7])

    monkeypatch.setattr(datasets, "load_dataset", from_hub)
    result = medarena(eval_workspace, db_url, *EVAL_TINY, "-t", "medqa_4options", "--data", "hub")
    assert asked == [("GBaker/MedQA-USMLE-4-options", None, "test")]
    run_id, config, _ = only_run(db_url)
    assert config["data"] == "hub"
    with Store(db_url) as store:
        assert len(store.predictions(run_id)) == 7
    assert "medqa_4options" in result.stdout


def test_cloze_mode_scores_the_option_texts(eval_workspace, db_url):
    medarena(eval_workspace, db_url, *EVAL_TINY, "-t", "medmcqa", "--mode", "cloze", "--limit", "4")
    run_id, _, mode = only_run(db_url)
    assert mode == "cloze"
    with Store(db_url) as store:
        predictions = store.predictions(run_id)
        names = {m.name for m in store.metrics(run_id)}
    assert names >= {"acc", "acc_norm"} and "parse_failure_rate" not in names
    task = load_benchmarks(REPO)["medmcqa"]
    items = {item.id: item for item in load_task_data(task, REPO).items}
    for prediction in predictions:
        item = items[prediction.item_id]
        assert prediction.prompt == f"Question: {item.fields['question']}\nAnswer:"
        # acc_norm divides by the option text's length, not the letter's
        assert prediction.logprobs["char_len"] == [len(text) for text in item.option_texts]
        best = max(range(4), key=prediction.logprobs["loglik"].__getitem__)
        assert prediction.correct == (best == item.gold)
