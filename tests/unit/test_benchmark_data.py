import csv
import json
from pathlib import Path

import pytest

from medarena.data.records import read_records
from medarena.errors import ProblemsError, UnknownName
from medarena.evaluate.formats import to_items
from medarena.evaluate.runner import load_task_data
from medarena.evaluate.spec import FileData, load_benchmarks, select_tasks
from tests.conftest import REPO

# the kinds of Me-LLaMA's other tasks (their samples: tests/unit/test_task_kinds.py)
KIND_TASKS = {"mednli", "bionli", "ddi2013", "mtsample", "hoc", "emrqa", "i2b2_ner"}
QA_AND_SUMMARY_TASKS = {
    "medqa_4options",
    "medqa_5options",
    "medmcqa",
    "pubmedqa",
    "mmlu_medical",
    "pubmed_summarization",
    "mimic_cxr_summarization",
}
SHIPPED_TASKS = QA_AND_SUMMARY_TASKS | KIND_TASKS


def medqa_row(question: str, answer_idx: str = "B", **extra) -> dict:
    options = {"A": "Aspirin", "B": "Metformin", "C": "Insulin", "D": "Warfarin"}
    return {"question": question, "options": options, "answer_idx": answer_idx, **extra}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def load(source_format: str, path: Path, **source) -> list:
    records = read_records(FileData(path=path.name, **source), path.parent)
    return to_items(source_format, records)


def problems_of(source_format: str, path: Path, **source) -> list:
    with pytest.raises(ProblemsError) as info:
        load(source_format, path, **source)
    return info.value.problems


# --------------------------------------------------------------------------- records


def test_jsonl_loads_with_line_numbers(tmp_path: Path):
    write_jsonl(tmp_path / "d.jsonl", [medqa_row("q1"), medqa_row("q2", "D")])
    records = read_records(FileData(path="d.jsonl"), tmp_path)
    assert [(r.line, r.index) for r in records] == [(1, 0), (2, 1)]
    items = to_items("medqa_4options", records)
    assert [(i.id, i.gold, i.gold_text) for i in items] == [("00000", 1, "B"), ("00001", 3, "D")]
    assert items[0].choices == ("A", "B", "C", "D")
    assert items[0].option_texts == ("Aspirin", "Metformin", "Insulin", "Warfarin")


def test_malformed_jsonl_line_is_located(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps(medqa_row("q1")) + "\n" + json.dumps(medqa_row("q2")) + "\n"
        '{"question": "q3", "options": \n' + json.dumps(medqa_row("q4")) + "\n"
    )
    problems = problems_of("medqa_4options", path)
    assert len(problems) == 1
    assert problems[0].file == str(path)
    assert problems[0].line == 3
    assert problems[0].message.startswith("malformed JSON line")


def test_jsonl_line_that_is_not_an_object_is_located(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(medqa_row("q1")) + "\n[1, 2]\n")
    [problem] = problems_of("medqa_4options", path)
    assert (problem.line, problem.message) == (2, "expected a JSON object")


def test_empty_file_has_no_items(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n\n")
    with pytest.raises(ProblemsError) as info:
        read_records(FileData(path="d.jsonl"), tmp_path)
    assert "no items" in str(info.value)
    assert info.value.problems[0].file == str(path)


def test_missing_file_is_a_problem(tmp_path: Path):
    with pytest.raises(ProblemsError) as info:
        read_records(FileData(path="absent.jsonl"), tmp_path)
    assert info.value.problems[0].message == "file not found"


# --------------------------------------------------------------------------- formats


def test_missing_answer_idx_names_field_file_and_line(tmp_path: Path):
    rows = [medqa_row("q1"), medqa_row("q2")]
    del rows[1]["answer_idx"]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    [problem] = problems_of("medqa_4options", path)
    assert (problem.file, problem.line, problem.field) == (str(path), 2, "answer_idx")
    assert str(problem) == f"{path}:2: answer_idx: missing field"


def test_all_record_problems_are_reported_together(tmp_path: Path):
    rows = [
        {**medqa_row("q1"), "options": ["Aspirin", "Metformin"]},
        medqa_row("q2"),
        {"options": {"A": "x"}, "answer_idx": "A"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    problems = problems_of("medqa_4options", path)
    assert [(p.line, p.field) for p in problems] == [(1, "options"), (3, "question")]


def test_medmcqa_cop_out_of_range(tmp_path: Path):
    row = {"id": "m1", "question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d"}
    path = write_jsonl(tmp_path / "d.jsonl", [{**row, "cop": 1}, {**row, "id": "m2", "cop": 4}])
    [problem] = problems_of("medmcqa", path)
    assert (problem.line, problem.field) == (2, "cop")
    assert problem.message == "expected an integer 0-3, got 4"


def test_medmcqa_cop_picks_the_letter(tmp_path: Path):
    row = {"id": "m1", "question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d"}
    path = write_jsonl(tmp_path / "d.jsonl", [{**row, "cop": 2, "subject_name": "Anatomy"}])
    [item] = load("medmcqa", path)
    assert (item.gold, item.gold_text, item.subject) == (2, "C", "Anatomy")


def test_duplicate_ids_are_a_problem(tmp_path: Path):
    rows = [medqa_row("q1", id="x"), medqa_row("q2", id="y"), medqa_row("q3", id="x")]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    [problem] = problems_of("medqa_4options", path)
    assert (problem.line, problem.field) == (3, "id")
    assert "duplicate item id 'x'" in problem.message


def test_csv_with_options_as_json_text_loads(tmp_path: Path):
    path = tmp_path / "d.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "question", "options", "answer_idx"])
        writer.writeheader()
        for number, answer in [(1, "A"), (2, "C")]:
            options = json.dumps({"A": "Aspirin, low dose", "B": "Metformin", "C": "Insulin"})
            writer.writerow(
                {
                    "id": f"c{number}",
                    "question": f"q{number}",
                    "options": options,
                    "answer_idx": answer,
                }
            )
    items = load("medqa_4options", path)
    assert [(i.id, i.gold) for i in items] == [("c1", 0), ("c2", 2)]
    assert items[0].option_texts == ("Aspirin, low dose", "Metformin", "Insulin")


def test_csv_problem_is_located_on_its_line(tmp_path: Path):
    path = tmp_path / "d.csv"
    path.write_text(
        'question,options,answer_idx\nq1,"{""A"": ""x"", ""B"": ""y""}",A\nq2,not json,A\n'
    )
    [problem] = problems_of("medqa_4options", path)
    assert (problem.line, problem.field) == (3, "options")


def test_pubmedqa_dict_keyed_by_pmid(tmp_path: Path):
    data = {
        "21645374": {
            "QUESTION": "Do statins help?",
            "CONTEXTS": ["First passage.", "Second passage."],
            "final_decision": "yes",
        },
        "12345678": {"QUESTION": "Is it safe?", "CONTEXTS": ["Only."], "final_decision": "maybe"},
        "87654321": {"QUESTION": "Does it work?", "CONTEXTS": ["One."], "final_decision": "No"},
    }
    path = tmp_path / "set.json"
    path.write_text(json.dumps(data))
    items = load("pubmedqa", path)
    assert [i.id for i in items] == ["21645374", "12345678", "87654321"]
    assert [i.gold for i in items] == [0, 2, 1]
    assert items[0].choices == ("yes", "no", "maybe")
    assert items[0].fields["context"] == "First passage.\nSecond passage."


def test_pubmedqa_bad_decision_is_a_problem(tmp_path: Path):
    path = tmp_path / "set.json"
    data = {"1": {"QUESTION": "q", "CONTEXTS": ["c"], "final_decision": "probably"}}
    path.write_text(json.dumps(data))
    [problem] = problems_of("pubmedqa", path)
    # JSON files have no lines per record: the row index stands in
    assert (problem.file, problem.line, problem.field) == (
        f"{path} (row 0)",
        None,
        "final_decision",
    )


def test_parquet_round_trip_for_mmlu(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"question": "q1", "subject": "anatomy", "choices": ["a", "b", "c", "d"], "answer": 3},
        {"question": "q2", "subject": "virology", "choices": ["e", "f", "g", "h"], "answer": 0},
    ]
    path = tmp_path / "mmlu.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    items = load("mmlu", path)
    assert [(i.id, i.subject, i.gold, i.gold_text) for i in items] == [
        ("anatomy/00000", "anatomy", 3, "D"),
        ("virology/00001", "virology", 0, "A"),
    ]
    assert items[1].option_texts == ("e", "f", "g", "h")


def test_file_format_overrides_the_suffix(tmp_path: Path):
    path = write_jsonl(tmp_path / "d.txt", [medqa_row("q1")])
    [item] = load("medqa_4options", path, file_format="jsonl")
    assert item.gold == 1


# --------------------------------------------------------------------------- specs


def test_shipped_benchmarks_load():
    tasks = load_benchmarks(REPO)
    assert set(tasks) == SHIPPED_TASKS
    assert tasks["pubmedqa"].metrics == ["acc", "acc_norm", "macro_f1"]
    assert tasks["pubmed_summarization"].kind == "summarization"


SPEC = """\
name: {name}
display_name: Broken
kind: multiple_choice
citation: "nobody"
source_format: medqa_4options
data:
  eval: {{path: samples/x.jsonl}}
prompt: "Question: {{{{ question }}}}"
scoring_modes: [loglik]
metrics: [acc]
"""


def spec_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "models").mkdir(parents=True)
    (root / "benchmarks").mkdir()
    return root


def test_valid_spec_in_a_workspace_loads(tmp_path: Path):
    root = spec_workspace(tmp_path)
    (root / "benchmarks" / "good.yaml").write_text(SPEC.format(name="good"))
    task = load_benchmarks(root)["good"]
    assert task.prompt == "Question: {{ question }}"
    assert task.target_delimiter == " "


def test_all_spec_problems_reported_at_once(tmp_path: Path):
    root = spec_workspace(tmp_path)
    broken = SPEC.format(name="broken").replace(
        'prompt: "Question: {{ question }}"', 'prompt: "Question: {{ question }"'
    )
    (root / "benchmarks" / "broken.yaml").write_text(broken + "colour: blue\n")
    (root / "benchmarks" / "misfit.yaml").write_text(
        SPEC.format(name="misfit").replace("metrics: [acc]", "metrics: [acc, rouge_l]")
    )
    (root / "benchmarks" / "renamed.yaml").write_text(SPEC.format(name="other"))
    with pytest.raises(ProblemsError) as info:
        load_benchmarks(root)
    found = [(p.file, p.line, p.field) for p in info.value.problems]
    assert found == [
        ("benchmarks/broken.yaml", 8, "prompt"),
        ("benchmarks/broken.yaml", 11, "colour"),
        ("benchmarks/misfit.yaml", 10, "metrics"),
        ("benchmarks/renamed.yaml", 1, "name"),
    ]
    messages = [p.message for p in info.value.problems]
    assert "Jinja syntax error on template line 1" in messages[0]
    assert messages[1].startswith("unknown key")
    assert "metrics ['rouge_l'] do not apply to multiple_choice" in messages[2]
    assert messages[3] == "'other' must match the file name 'renamed'"


def test_summarization_must_be_generate_only(tmp_path: Path):
    root = spec_workspace(tmp_path)
    spec = (
        SPEC.format(name="summ")
        .replace("kind: multiple_choice", "kind: summarization")
        .replace("metrics: [acc]", "metrics: [rouge_l]")
    )
    (root / "benchmarks" / "summ.yaml").write_text(spec)
    with pytest.raises(ProblemsError) as info:
        load_benchmarks(root)
    assert "summarization is scored in generate mode only" in str(info.value)


def test_select_tasks_keeps_the_order():
    tasks = load_benchmarks(REPO)
    chosen = select_tasks(tasks, ["pubmedqa", "medmcqa"])
    assert [task.name for task in chosen] == ["pubmedqa", "medmcqa"]


def test_select_unknown_task_lists_the_known_ones():
    tasks = load_benchmarks(REPO)
    with pytest.raises(UnknownName) as info:
        select_tasks(tasks, ["medqa_4options", "medqa_9options"])
    message = str(info.value)
    assert message.startswith("unknown benchmark task 'medqa_9options'; known: ")
    for name in SHIPPED_TASKS:
        assert name in message


@pytest.mark.parametrize("name", sorted(QA_AND_SUMMARY_TASKS))
def test_bundled_samples_load(name: str):
    task = load_benchmarks(REPO)[name]
    data = load_task_data(task, REPO, need_pool=True)
    if task.kind == "multiple_choice":
        assert len(data.items) >= 40
        for item in [*data.items, *data.pool]:
            assert item.gold is not None and 0 <= item.gold < len(item.choices)
            assert len(item.option_texts) == len(item.choices)
    else:
        assert len(data.items) >= 20
        assert all(item.reference and item.gold is None for item in data.items)
    assert len(data.pool) >= 3
    assert len({item.id for item in data.items}) == len(data.items)
    assert len(data.hash) == 64


def test_task_data_hash_and_limit():
    task = load_benchmarks(REPO)["medqa_4options"]
    full = load_task_data(task, REPO)
    limited = load_task_data(task, REPO, limit=5)
    assert full.pool == [] and len(limited.items) == 5
    assert limited.items == full.items[:5]
    assert limited.hash != full.hash
    assert load_task_data(task, REPO).hash == full.hash


def test_mmlu_subject_filter_keeps_listed_subjects_only():
    task = load_benchmarks(REPO)["mmlu_medical"]
    data = load_task_data(task, REPO, need_pool=True)
    assert {item.subject for item in data.items} <= set(task.subjects)
    assert {item.subject for item in data.pool} <= set(task.subjects)


def test_subject_filter_that_keeps_nothing_is_an_error():
    task = load_benchmarks(REPO)["mmlu_medical"].model_copy(update={"subjects": ["astronomy"]})
    with pytest.raises(ProblemsError) as info:
        load_task_data(task, REPO)
    [problem] = info.value.problems
    assert (problem.file, problem.field) == ("benchmarks/mmlu_medical.yaml", "subjects")
    assert problem.message == "no item of subjects ['astronomy'] in the data"
