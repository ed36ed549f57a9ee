"""Hub sources that load with the pinned `datasets`: no shipped YAML names a repository that
needs a loading script (and a spec that does is refused at its line), every shipped benchmark's
hub split is pinned and counted, and rows in each chosen repository's layout come out of the
reader and source format that `--data hub` uses, with the right fields, choices and gold."""

import json
import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from medarena.data.corpus import Source
from medarena.data.records import read_records
from medarena.errors import ProblemsError
from medarena.evaluate.hub_check import hub_splits
from medarena.evaluate.runner import load_task_data
from medarena.evaluate.spec import load_benchmarks
from medarena.schemas import SCRIPT_ONLY_DATASETS, HubData
from tests.conftest import REPO
from tests.hub_fixtures import serve_hub_fixtures
from tests.unit.test_benchmark_data import SPEC, spec_workspace

SHIPPED_YAML = sorted(
    path
    for folder in ("benchmarks", "pretrain", "instruct")
    for path in (REPO / folder).glob("*.yaml")
)


def hub_sources_in(value: object) -> list[dict]:
    """Every `{kind: hub, dataset: ...}` mapping anywhere in a parsed YAML document."""
    if isinstance(value, dict):
        found = [value] if value.get("kind") == "hub" and "dataset" in value else []
        return found + [source for child in value.values() for source in hub_sources_in(child)]
    if isinstance(value, list):
        return [source for child in value for source in hub_sources_in(child)]
    return []


@pytest.mark.parametrize("path", SHIPPED_YAML, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_shipped_hub_sources_load_without_a_script(path: Path):
    sources = hub_sources_in(yaml.safe_load(path.read_text()))
    script_only = [s["dataset"] for s in sources if s["dataset"] in SCRIPT_ONLY_DATASETS]
    assert script_only == [], f"{path.relative_to(REPO)} names script-only datasets"


def test_every_shipped_benchmark_hub_split_is_pinned_and_counted():
    tasks = load_benchmarks(REPO)
    splits = {
        (task.name, key): source for task in tasks.values() for key, source in hub_splits(task)
    }
    assert {name for name, _ in splits} == {
        "medqa_4options",
        "medqa_5options",
        "medmcqa",
        "pubmedqa",
        "mmlu_medical",
    }
    for (name, key), source in splits.items():
        assert re.fullmatch(r"[0-9a-f]{40}", source.revision or ""), (name, key)
        assert source.expected_items is not None, (name, key)
    # the two the issue names: MedQA's 1,273 US test items, PubMedQA's 500-item test set
    assert splits["medqa_5options", "eval"].expected_items == 1273
    assert splits["pubmedqa", "eval"].expected_items == 500
    assert splits["pubmedqa", "fewshot"].rows.keep == "unlisted"  # the other 500, no overlap


def test_the_pubmedqa_id_list_is_the_authors_500_test_pmids():
    listed = json.loads((REPO / "benchmarks/splits/pubmedqa_test_ground_truth.json").read_text())
    assert len(listed) == 500
    assert sorted(set(listed.values())) == ["maybe", "no", "yes"]
    assert sum(label == "yes" for label in listed.values()) == 276


def test_a_spec_naming_a_script_only_dataset_is_refused_at_its_line(tmp_path: Path):
    root = spec_workspace(tmp_path)
    spec = SPEC.format(name="pqa") + (
        "hub:\n"
        "  eval: {kind: hub, dataset: bigbio/pubmed_qa, config: pubmed_qa_labeled_fold0_source,"
        " split: test}\n"
    )
    (root / "benchmarks" / "pqa.yaml").write_text(spec)
    with pytest.raises(ProblemsError) as caught:
        load_benchmarks(root)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (
        "benchmarks/pqa.yaml",
        12,
        "hub.eval.dataset",
    )
    assert "loads only through a dataset script" in problem.message
    assert "use qiaojin/PubMedQA" in problem.message


def test_a_corpus_source_naming_a_script_only_dataset_is_refused():
    hub = {"kind": "hub", "dataset": "togethercomputer/RedPajama-Data-1T-Sample", "split": "train"}
    with pytest.raises(ValidationError, match="loads only through a dataset script"):
        Source(name="replay", kind="general", data=hub, ratio=1)


def test_expected_items_is_a_positive_count():
    with pytest.raises(ValidationError, match="greater than 0"):
        HubData(kind="hub", dataset="org/x", split="test", expected_items=0)


def test_unset_hub_fields_stay_out_of_dumps():
    # a recipe that sets neither keeps the content hash its runs were recorded under
    hub = HubData(kind="hub", dataset="epfl-llm/guidelines", split="train")
    assert hub.model_dump() == {
        "kind": "hub",
        "dataset": "epfl-llm/guidelines",
        "config": None,
        "split": "train",
        "revision": None,
    }


# ------------------------------------------------------------- fixtures through the hub reader

# task -> (eval item ids, gold indices, option texts of the gold answers, choices per item)
EXPECTED = {
    "medqa_5options": (
        ["00000", "00001", "00002"],
        [2, 4, 0],
        ["Borrelia burgdorferi", "Prothrombin complex concentrate", "Cobalamin"],
        ("A", "B", "C", "D", "E"),
    ),
    "pubmedqa": (
        ["12377809", "26163474", "18537964"],
        [0, 0, 0],
        ["yes", "yes", "yes"],
        ("yes", "no", "maybe"),
    ),
    "medqa_4options": (
        ["00000", "00001"],
        [0, 3],
        ["Parainfluenza virus", "Hyperkalemia"],
        ("A", "B", "C", "D"),
    ),
    "medmcqa": (
        ["fx-medmcqa-1", "fx-medmcqa-2"],
        [1, 3],
        ["Axillary nerve", "Ethosuximide"],
        ("A", "B", "C", "D"),
    ),
    "mmlu_medical": (  # astronomy is not one of the nine subjects
        ["anatomy/00000", "virology/00002"],
        [1, 1],
        ["Ulna", "Orthomyxoviridae"],
        ("A", "B", "C", "D"),
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hub_rows_become_items_through_the_hub_reader(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    calls = serve_hub_fixtures(monkeypatch, tmp_path / "cache")
    task = load_benchmarks(REPO)[name]
    data = load_task_data(task, REPO, data="hub", need_pool=True)
    ids, golds, gold_texts, choices = EXPECTED[name]
    assert [item.id for item in data.items] == ids
    assert [item.gold for item in data.items] == golds
    assert [item.option_texts[item.gold] for item in data.items] == gold_texts
    assert {item.choices for item in data.items} == {choices}
    assert all(item.fields["question"] for item in data.items)
    # every split asked for at the spec's pinned revision
    assert {call[:3] for call in calls} == {
        (source.dataset, source.config, source.split) for _, source in hub_splits(task)
    }
    assert {call[3] for call in calls} == {task.hub.eval.revision}


def test_pubmedqa_test_rows_and_few_shot_pool_are_split_by_the_id_list(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    serve_hub_fixtures(monkeypatch, tmp_path / "cache")
    data = load_task_data(load_benchmarks(REPO)["pubmedqa"], REPO, data="hub", need_pool=True)
    assert [item.id for item in data.pool] == ["90000001", "90000002", "90000003"]
    assert [item.gold_text for item in data.pool] == ["no", "maybe", "no"]
    first = data.items[0]
    assert first.fields["context"] == "Background of study 12377809.\nResults of study 12377809."
    assert first.explanation == "Study 12377809 concludes: yes."


def test_rows_keep_the_hub_row_index_and_need_their_id_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    serve_hub_fixtures(monkeypatch, tmp_path / "cache")
    (tmp_path / "ids.json").write_text('["90000002", "12377809"]')
    rows = {"field": "pubid", "ids": "ids.json"}
    hub = {"kind": "hub", "dataset": "qiaojin/PubMedQA", "config": "pqa_labeled", "split": "train"}
    records = read_records(HubData(**hub, rows=rows), tmp_path)
    assert [(r.data["pubid"], r.index) for r in records] == [(12377809, 0), (90000002, 4)]
    unlisted = read_records(HubData(**hub, rows={**rows, "keep": "unlisted"}), tmp_path)
    assert [r.index for r in unlisted] == [1, 2, 3, 5]

    (tmp_path / "ids.json").write_text('{"12377809": "yes",\n "90000002" "no"}')
    with pytest.raises(ProblemsError) as caught:
        read_records(HubData(**hub, rows=rows), tmp_path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line) == (str(tmp_path / "ids.json"), 2)
    assert problem.message.startswith("malformed JSON")

    with pytest.raises(ProblemsError, match="file not found"):
        read_records(HubData(**hub, rows={**rows, "ids": "absent.json"}), tmp_path)
