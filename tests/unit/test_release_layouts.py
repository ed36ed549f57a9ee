"""Readers of the datasets' original release layouts: they read the bundled samples into the
same items as the Me-LLaMA layout of the same content, and name file, line and field of a bad
record."""

from pathlib import Path

import pytest

from medarena.errors import ProblemsError
from medarena.evaluate.runner import load_task_data
from medarena.evaluate.spec import load_benchmarks
from tests.conftest import REPO
from tests.unit.test_benchmark_data import load, problems_of

DDI = REPO / "benchmarks" / "samples" / "ddi2013"


def test_ddi_xml_sample_gives_the_me_llama_items():
    from_xml = load("ddi2013_xml", DDI / "test.xml")
    from_me_llama = load("me_llama_labels", DDI / "test.jsonl")
    assert [item.id for item in from_xml] == [f"synthetic-DDI-d0.s{i}.p0" for i in range(6)]
    for xml_item, me_llama_item in zip(from_xml, from_me_llama, strict=True):
        assert xml_item.fields == me_llama_item.fields
        assert (xml_item.choices, xml_item.gold) == (me_llama_item.choices, me_llama_item.gold)


def _ddi_file(path: Path, pairs: str, entity_offset: str = "0-6") -> Path:
    path.write_text(
        '<?xml version="1.0"?>\n'
        '<document id="d">\n'
        '  <sentence id="d.s0" text="aspirin and warfarin bleed; heparin too.">\n'
        f'    <entity id="d.s0.e0" charOffset="{entity_offset}" type="drug" text="aspirin"/>\n'
        '    <entity id="d.s0.e1" charOffset="12-19" type="drug" text="warfarin"/>\n'
        '    <entity id="d.s0.e2" charOffset="28-34" type="drug" text="heparin"/>\n'
        f"{pairs}"
        "  </sentence>\n"
        "</document>\n"
    )
    return path


def test_ddi_xml_one_item_per_pair_with_that_pair_masked(tmp_path: Path):
    pairs = (
        '    <pair id="d.s0.p0" e1="d.s0.e0" e2="d.s0.e1" ddi="true" type="effect"/>\n'
        '    <pair id="d.s0.p1" e1="d.s0.e1" e2="d.s0.e3" ddi="false"/>\n'
        '    <entity id="d.s0.e3" charOffset="28-34" type="drug" text="heparin"/>\n'
    )
    items = load("ddi2013_xml", _ddi_file(tmp_path / "d.xml", pairs))
    assert [item.gold_text for item in items] == ["DDI-effect", "DDI-false"]
    assert items[0].fields["query"].endswith("\nSentence: @DRUG$ and @DRUG$ bleed; heparin too.")
    assert items[1].fields["query"].endswith("\nSentence: aspirin and @DRUG$ bleed; @DRUG$ too.")


def test_ddi_xml_bad_pairs_name_file_line_and_field(tmp_path: Path):
    pairs = (
        '    <pair id="d.s0.p0" e1="d.s0.e0" e2="d.s0.e1" ddi="true" type="synergy"/>\n'
        '    <pair id="d.s0.p1" e1="d.s0.e0" e2="d.s0.e9" ddi="false"/>\n'
        '    <pair id="d.s0.p2" e1="d.s0.e1" e2="d.s0.e2" ddi="maybe"/>\n'
    )
    path = _ddi_file(tmp_path / "d.xml", pairs)
    problems = problems_of("ddi2013_xml", path)
    assert [(p.file, p.line, p.field) for p in problems] == [
        (str(path), 7, "pair.type"),
        (str(path), 8, "pair.e2"),
        (str(path), 9, "pair.ddi"),
    ]
    assert "'synergy'" in str(problems[0])


def test_ddi_xml_offsets_must_cover_the_entity(tmp_path: Path):
    pairs = '    <pair id="d.s0.p0" e1="d.s0.e0" e2="d.s0.e1" ddi="false"/>\n'
    path = _ddi_file(tmp_path / "d.xml", pairs, entity_offset="1-7")
    [problem] = problems_of("ddi2013_xml", path)
    assert (problem.line, problem.field) == (7, "entity[d.s0.e0].charOffset")
    assert "covers 'spirin '" in str(problem)


def test_malformed_xml_names_its_line(tmp_path: Path):
    path = tmp_path / "d.xml"
    path.write_text('<document id="d">\n  <sentence id="s" text="x">\n</document>\n')
    with pytest.raises(ProblemsError) as info:
        load("ddi2013_xml", path)
    [problem] = info.value.problems
    assert (problem.file, problem.line) == (str(path), 3)
    assert "mismatched tag" in str(problem)


@pytest.mark.parametrize(
    ("task", "source_format", "path", "first_gold"),
    [
        ("ddi2013", "ddi2013_xml", "samples/ddi2013/test.xml", "DDI-mechanism"),
        (
            "hoc",
            "hoc_blue",
            "samples/hoc/test.tsv",
            "sustaining proliferative signaling, resisting cell death",
        ),
    ],
)
def test_a_spec_reads_the_release_layout_when_switched(task, source_format, path, first_gold):
    """What the specs' comments document for the original releases: source_format and path."""
    spec = load_benchmarks(REPO)[task]
    eval_data = spec.data.eval.model_copy(update={"path": path})
    data = spec.data.model_copy(update={"eval": eval_data})
    switched = spec.model_copy(update={"source_format": source_format, "data": data})
    items = load_task_data(switched, REPO).items
    assert len(items) == 6 and items[0].gold_text == first_gold


HOC = REPO / "benchmarks" / "samples" / "hoc"


def test_hoc_blue_sample_gives_the_me_llama_items():
    from_blue = load("hoc_blue", HOC / "test.tsv")
    from_me_llama = load("me_llama_multilabel", HOC / "test.jsonl")
    assert [item.id for item in from_blue] == [f"synthetic-hoc-{i:03d}" for i in range(6)]
    for blue_item, me_llama_item in zip(from_blue, from_me_llama, strict=True):
        assert blue_item.fields == me_llama_item.fields
        assert blue_item.choices == me_llama_item.choices
        assert set(blue_item.answers) == set(me_llama_item.answers)
    assert from_blue[4].answers == () and from_blue[4].reference == "none"


def _tsv(path: Path, *rows: str) -> Path:
    path.write_text("index\tsentence\tlabels\n" + "".join(f"{row}\n" for row in rows))
    return path


def test_hoc_blue_joins_an_abstracts_sentences_and_their_labels(tmp_path: Path):
    path = _tsv(
        tmp_path / "hoc.tsv",
        "111_s1\tSecond sentence.\tinducing angiogenesis",
        "111_s0\tFirst sentence.\tcellular energetics,inducing angiogenesis",
        "222_s0\tOther abstract.\t",
    )
    first, second = load("hoc_blue", path)
    assert first.id == "111" and first.fields["query"].endswith(
        "\nAbstract: First sentence. Second sentence."
    )
    assert first.answers == ("inducing angiogenesis", "cellular energetics")
    assert (second.id, second.answers, second.reference) == ("222", (), "none")


def test_hoc_blue_bad_rows_name_file_line_and_field(tmp_path: Path):
    path = _tsv(
        tmp_path / "hoc.tsv",
        "111_s0\tFine.\tcellular energetics",
        "111\tNo sentence number.\t",
        "222_s0\tA sentence.\tmetastasis",
        "333_s0\t\tcellular energetics",
        "111_s0\tRepeated.\t",
    )
    problems = problems_of("hoc_blue", path)
    assert [(p.file, p.line, p.field) for p in problems] == [
        (str(path), 3, "index"),
        (str(path), 4, "labels"),
        (str(path), 5, "sentence"),
        (str(path), 6, "index"),
    ]
    assert "['metastasis']" in str(problems[1])
