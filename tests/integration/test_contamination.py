"""`medarena contamination`: planted overlaps in a small corpus are flagged exactly (verbatim,
options reordered, a 12-gram just below n), the check is stored and reused, bad input is refused
with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medarena.analysis.ngrams import ngrams, words
from medarena.evaluate.runner import load_task_data
from medarena.evaluate.spec import load_benchmarks
from tests.helpers import as_json, invoke, sql_rows

TASK = "medqa_4options"


def items(workspace: Path):
    return load_task_data(load_benchmarks(workspace)[TASK], workspace).items


def question_ngrams(item, n: int = 13) -> int:
    return len(set(ngrams(words(item.fields["question"]), n)))


@pytest.fixture
def planted(eval_workspace: Path, tmp_path: Path) -> tuple[Path, list]:
    """A corpus with item 0's question verbatim, item 1's question with its options reversed,
    and 12 consecutive words of item 2's question, among unrelated text."""
    first, second, third = items(eval_workspace)[:3]
    reordered = " ".join([second.fields["question"], *reversed(second.option_texts)])
    documents = [
        {"id": "unrelated", "text": "A guideline about hand hygiene in the ward. " * 5},
        {"id": "verbatim", "text": f"Case of the week. {first.fields['question']} Discuss."},
        {"id": "reordered", "text": reordered},
        {"id": "near", "text": "Quoted: " + " ".join(words(third.fields["question"])[3:15])},
    ]
    path = tmp_path / "planted.jsonl"
    path.write_text("".join(json.dumps(document) + "\n" for document in documents))
    return path, [first, second, third]


def run(workspace: Path, db_url: str, *args: str):
    return invoke(workspace, db_url, "contamination", "-m", "tiny-medical-base", "-t", TASK, *args)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_planted_overlaps_are_flagged_exactly(eval_workspace, db_url, planted, workers):
    path, (first, second, third) = planted
    result = run(eval_workspace, db_url, "--corpus", str(path), "--workers", workers, "--json")
    assert result.exit_code == 0, result.output
    data = as_json(result.stdout)
    by_id = {item["item_id"]: item for item in data["items"]}
    assert len(by_id) == len(items(eval_workspace)) == data["n_items"]
    assert {i for i, item in by_id.items() if item["contaminated"]} == {first.id, second.id}
    assert data["n_contaminated"] == 2 and data["documents_read"] == 4
    verbatim = by_id[first.id]
    assert verbatim["matched"] == question_ngrams(first)
    assert verbatim["longest"] == len(words(first.fields["question"]))
    assert verbatim["sources"] == [
        {"corpus": str(path.resolve()), "document": "verbatim", "matched": verbatim["matched"]}
    ]
    # the options in another order hide nothing: the question is found, the options' n-grams not
    reordered = by_id[second.id]
    assert reordered["matched"] == question_ngrams(second) < reordered["ngrams"]
    assert reordered["sources"][0]["document"] == "reordered"
    # 12 words in a row: no 13-gram, not flagged
    assert by_id[third.id] == {**by_id[third.id], "matched": 0, "longest": 0, "contaminated": False}
    assert data["lineage"] == ["tiny-medical-base"] and data["n"] == 13


def test_a_smaller_n_catches_the_12_words(eval_workspace, db_url, planted):
    path, (_, _, third) = planted
    data = as_json(run(eval_workspace, db_url, "--corpus", str(path), "-n", "12", "--json").stdout)
    near = next(item for item in data["items"] if item["item_id"] == third.id)
    assert near["contaminated"] and near["matched"] == 1 and near["longest"] == 12


def test_the_threshold_is_a_share_of_the_items_ngrams(eval_workspace, db_url, planted):
    path, (first, _, _) = planted
    data = as_json(
        run(eval_workspace, db_url, "--corpus", str(path), "--threshold", "0.99", "--json").stdout
    )
    verbatim = next(item for item in data["items"] if item["item_id"] == first.id)
    # its question is found whole, its options and answer are not: under the share asked for
    assert 0 < verbatim["matched"] < 0.99 * verbatim["ngrams"]
    assert data["n_contaminated"] == 0 and data["threshold"] == 0.99


def test_the_check_is_stored_and_reused(eval_workspace, db_url, planted):
    path, _ = planted
    first = run(eval_workspace, db_url, "--corpus", str(path))
    assert first.exit_code == 0 and "(stored)" not in first.stdout
    assert "2 of" in first.stdout and "contaminated items" in first.stdout
    again = run(eval_workspace, db_url, "--corpus", str(path))
    assert "(stored)" in again.stdout
    n_items = len(items(eval_workspace))
    assert sql_rows(
        db_url,
        "SELECT (SELECT COUNT(*) FROM contamination_checks),"
        " (SELECT COUNT(*) FROM contamination_items)",
    ) == [(1, n_items)]
    # another corpus content is another check
    path.write_text(path.read_text() + json.dumps({"id": "more", "text": "more text"}) + "\n")
    third = run(eval_workspace, db_url, "--corpus", str(path))
    assert "(stored)" not in third.stdout
    assert sql_rows(db_url, "SELECT COUNT(*) FROM contamination_checks") == [(2,)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--corpus", "{missing}"), "not found"),
        (("-m", "no-such-model", "--corpus", "{corpus}"), "no-such-model"),
        (("-t", "no-such-task", "--corpus", "{corpus}"), "no-such-task"),
        ((), "no training run recorded here"),
    ],
)
def test_bad_input_is_refused_and_nothing_written(eval_workspace, db_url, planted, args, message):
    path, _ = planted
    filled = [a.format(missing=path.parent / "missing.jsonl", corpus=path) for a in args]
    result = run(eval_workspace, db_url, *filled)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert sql_rows(db_url, "SELECT COUNT(*) FROM contamination_checks") == [(0,)]
