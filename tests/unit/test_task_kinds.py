"""The task kinds' own rules (hand-computed), their readers' located problems, their bundled
samples, the credentialed data's refusal and the run key's kind rule."""

from pathlib import Path

import pytest

from medarena.errors import Refused
from medarena.evaluate.extract import extract_choice
from medarena.evaluate.formats import Item
from medarena.evaluate.identity import settings
from medarena.evaluate.runner import EvalOptions, data_splits, load_task_data
from medarena.evaluate.spec import load_benchmarks
from medarena.evaluate.tasks import extractive_qa, multilabel, ner
from tests.conftest import REPO
from tests.unit.test_benchmark_data import KIND_TASKS, problems_of, write_jsonl

HALLMARKS = ("resisting cell death", "inducing angiogenesis", "cellular energetics")


# ------------------------------------------------------------------------------ multilabel


def _hoc_item(*gold: str) -> Item:
    return Item("h", {"query": "q"}, choices=HALLMARKS, answers=gold)


def test_set_parsing_normalises_and_counts_a_label_once():
    known, unknown, failed = multilabel.parse_set(
        "- Resisting cell death,\n2. inducing angiogenesis.; resisting cell death", HALLMARKS
    )
    assert (known, unknown, failed) == (
        ["resisting cell death", "inducing angiogenesis"],
        [],
        False,
    )


def test_none_is_the_empty_set_and_text_without_a_label_a_failure():
    assert multilabel.parse_set("None.", HALLMARKS) == ([], [], False)
    assert multilabel.parse_set("", HALLMARKS) == ([], [], True)
    assert multilabel.parse_set("cancer", HALLMARKS) == ([], ["cancer"], True)


def test_multilabel_counts_an_unknown_label_as_a_false_positive():
    scored = multilabel.score_output(
        _hoc_item("resisting cell death", "cellular energetics"),
        "resisting cell death, metastasis",
    )
    counts = scored.details["f1_counts"]["labels"]
    assert counts == {
        "resisting cell death": [1, 0, 0],
        "cellular energetics": [0, 0, 1],
        "unknown:metastasis": [0, 1, 0],
    }
    assert scored.correct is False and not scored.parse_failed
    assert scored.details["unknown_labels"] == ["metastasis"]


def test_multilabel_failure_predicts_nothing_and_exact_set_is_correct():
    failed = multilabel.score_output(_hoc_item("cellular energetics"), "zzz")
    assert failed.parse_failed and failed.parsed_answer is None
    assert failed.details["f1_counts"]["labels"] == {"cellular energetics": [0, 0, 1]}
    right = multilabel.score_output(_hoc_item("cellular energetics"), "Cellular energetics")
    assert right.correct is True and right.parsed_answer == "cellular energetics"
    empty = multilabel.score_output(_hoc_item(), "none")
    assert empty.correct is True and empty.details["f1_counts"]["labels"] == {}


# --------------------------------------------------------------------------- extractive QA


def test_squad_normalisation():
    assert extractive_qa.normalize_answer("The  Aspirin, 81 mg!") == "aspirin 81 mg"


@pytest.mark.parametrize(
    ("prediction", "gold", "em", "f1"),
    [
        ("aspirin 81 mg daily", "81 mg aspirin", 0.0, 2 * 0.75 * 1.0 / 1.75),
        ("the apixaban", "Apixaban.", 1.0, 1.0),
        ("", "apixaban", 0.0, 0.0),  # an empty prediction
        ("", "the", 1.0, 1.0),  # both empty after normalisation (SQuAD 2.0's rule)
        ("warfarin", "apixaban", 0.0, 0.0),
        ("mg mg mg", "mg", 0.0, 2 * (1 / 3) * 1.0 / (1 / 3 + 1.0)),  # repeated tokens
    ],
)
def test_exact_match_and_token_f1_hand_computed(prediction, gold, em, f1):
    assert extractive_qa.exact_match(prediction, gold) == em
    assert extractive_qa.token_f1(prediction, gold) == pytest.approx(f1)


def test_extractive_qa_takes_the_best_accepted_answer_of_the_first_line():
    item = Item("q", {"query": "q"}, reference="40 mg", answers=("40 mg", "40 mg nightly"))
    scored = extractive_qa.score_output(item, " 40 mg nightly\nQuestion: next")
    assert scored.parsed_answer == "40 mg nightly"
    assert scored.details == {"exact_match": 1.0, "token_f1": 1.0}
    blank = extractive_qa.score_output(item, "\n")
    assert blank.parse_failed and blank.details == {"exact_match": 0.0, "token_f1": 0.0}


# ------------------------------------------------------------------------------------- NER

GOLD = [
    ("problem", "chest pain"),
    ("test", "an elevated troponin"),
    ("treatment", "a cardiac catheterization"),
]


def test_entities_are_read_one_a_line_and_listed_once():
    text = "- Chest  pain, problem\nchest pain, Problem\nno comma here\n5, 6, test.\n"
    entities, malformed, failed = ner.parse_entities(text)
    assert entities == [("problem", "chest pain"), ("test", "5, 6")]
    assert (malformed, failed) == (1, False)
    assert ner.parse_entities("None") == ([], 0, False)
    assert ner.parse_entities("gibberish\nmore") == ([], 2, True)


def test_strict_and_lenient_counts_hand_computed():
    predicted = [
        ("problem", "chest pain"),
        ("test", "elevated troponin level"),
        ("drug", "aspirin"),
    ]
    strict = ner.match_counts(GOLD, predicted, lenient=False)
    lenient = ner.match_counts(GOLD, predicted, lenient=True)
    assert strict == {
        "problem": [1, 0, 0],
        "test": [0, 1, 1],
        "treatment": [0, 0, 1],
        "drug": [0, 1, 0],
    }
    assert lenient == {
        "problem": [1, 0, 0],
        "test": [1, 0, 0],
        "treatment": [0, 0, 1],
        "drug": [0, 1, 0],
    }


def test_lenient_matching_is_one_to_one():
    gold = [("problem", "chest pain"), ("problem", "back pain")]
    counts = ner.match_counts(gold, [("problem", "pain")], lenient=True)
    assert counts == {"problem": [1, 0, 1]}


def test_ner_output_keeps_entities_and_counts_a_failure():
    item = Item("n", {"query": "q"}, reference="x", answers=tuple(f"{t}|{e}" for t, e in GOLD))
    scored = ner.score_output(item, "chest pain, problem\nan elevated troponin, test")
    assert scored.details["f1_counts"]["strict"] == {
        "problem": [1, 0, 0],
        "test": [1, 0, 0],
        "treatment": [0, 0, 1],
    }
    assert scored.parsed_answer == "chest pain, problem\nan elevated troponin, test"
    failed = ner.score_output(item, "I cannot tell")
    assert failed.parse_failed and failed.parsed_answer is None
    assert failed.details["malformed_lines"] == 1


# ----------------------------------------------------------------------------------- readers


def test_label_answer_outside_choices_names_file_line_and_field(tmp_path: Path):
    rows = [
        {"id": "1", "query": "q", "answer": "yes", "choices": ["yes", "no"]},
        {"id": "2", "query": "q", "answer": "maybe", "choices": ["yes", "no"]},
        {"id": "3", "query": "q", "answer": "no", "choices": ["yes", "no"], "gold": 0},
        {"id": "4", "query": "q", "answer": "no", "choices": "yes"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    problems = problems_of("me_llama_labels", path)
    assert [(p.file, p.line, p.field) for p in problems] == [
        (str(path), 2, "answer"),
        (str(path), 3, "gold"),
        (str(path), 4, "choices"),
    ]
    assert "label 'maybe' is not one of ['yes', 'no']" in str(problems[0])


def test_mednli_release_layout_and_a_bad_label(tmp_path: Path):
    rows = [
        {"sentence1": "a", "sentence2": "b", "gold_label": "neutral", "pairID": "p1"},
        {"sentence1": "a", "sentence2": "b", "gold_label": "unsure", "pairID": "p2"},
        {"sentence1": "a", "gold_label": "neutral", "pairID": "p3"},
    ]
    path = write_jsonl(tmp_path / "mli.jsonl", rows)
    problems = problems_of("mednli", path)
    assert [(p.line, p.field) for p in problems] == [(2, "gold_label"), (3, "sentence2")]


def test_multilabel_and_ner_answers_are_checked(tmp_path: Path):
    hoc = write_jsonl(
        tmp_path / "hoc.jsonl",
        [
            {"id": "1", "query": "q", "answer": "cellular energetics", "choices": list(HALLMARKS)},
            {"id": "2", "query": "q", "answer": "metastasis", "choices": list(HALLMARKS)},
        ],
    )
    [problem] = problems_of("me_llama_multilabel", hoc)
    assert (problem.line, problem.field) == (2, "answer")
    i2b2 = write_jsonl(
        tmp_path / "ner.jsonl",
        [{"id": "1", "query": "q", "answer": "chest pain, problem\nno type"}],
    )
    [problem] = problems_of("me_llama_ner", i2b2)
    assert (problem.line, problem.field) == (1, "answer")
    assert "1 line(s) are not 'entity, type'" in str(problem)


# ---------------------------------------------------------------------- samples and access


@pytest.mark.parametrize("name", sorted(KIND_TASKS))
def test_kind_samples_load(name: str):
    task = load_benchmarks(REPO)[name]
    data = load_task_data(task, REPO, need_pool=True)
    assert len(data.items) == 6 and len(data.pool) >= 2
    assert len({item.id for item in data.items}) == 6
    for item in [*data.items, *data.pool]:
        assert item.id.startswith("synthetic-")  # written for medarena, marked so
        if task.kind in ("classification", "nli", "relation"):
            assert item.gold is not None and item.choices[item.gold] == item.gold_text
        elif task.kind == "multilabel":
            assert set(item.answers) <= set(item.choices)
        else:
            assert item.reference


def test_credentialed_data_is_refused_naming_where_it_comes_from(tmp_path: Path):
    task = load_benchmarks(REPO)["mednli"]
    local = task.model_copy(
        update={"local": task.local.model_copy(update={"eval": task.local.eval.model_copy(
            update={"path": str(tmp_path / "missing.jsonl")})})}
    )  # fmt: skip
    with pytest.raises(Refused) as info:
        data_splits(local, REPO, "local")
    message = str(info.value)
    assert str(tmp_path / "missing.jsonl") in message
    assert "https://physionet.org/content/mednli/1.0.0/" in message
    (tmp_path / "missing.jsonl").write_text("")
    with pytest.raises(Refused, match=r"mli_train_v1\.jsonl is missing"):
        data_splits(local, REPO, "local")


def test_a_task_without_local_data_refuses_data_local():
    task = load_benchmarks(REPO)["medqa_4options"]
    with pytest.raises(Refused, match="declares no local dataset"):
        EvalOptions(data="local").check(task)


def test_the_run_key_holds_the_rule_of_kinds_that_have_one():
    tasks = load_benchmarks(REPO)
    assert settings(tasks["hoc"], EvalOptions())["kind_rule"] == "multilabel-1"
    assert settings(tasks["i2b2_ner"], EvalOptions())["kind_rule"] == "ner-1"
    # older kinds keep the settings (and run keys) they had
    assert "kind_rule" not in settings(tasks["medqa_4options"], EvalOptions())
    assert "kind_rule" not in settings(tasks["mednli"], EvalOptions())


def test_self_consistency_is_refused_on_sets_and_spans():
    task = load_benchmarks(REPO)["hoc"]
    with pytest.raises(Refused, match="closed set; not on multilabel"):
        EvalOptions(mode="generate", samples=3, temperature=0.7).check(task)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("The answer is DDI-effect.", "DDI-effect"),
        ("DDI-advise: patients should not", "DDI-advise"),
        ("answer: ddi-false", "DDI-false"),
        ("mechanism", None),  # not a label of the set
    ],
)
def test_generated_labels_are_read_from_the_closed_set(text, label):
    labels = ["DDI-mechanism", "DDI-effect", "DDI-advise", "DDI-int", "DDI-false"]
    found = extract_choice(text, labels, labels)
    assert (None if found is None else labels[found]) == label
