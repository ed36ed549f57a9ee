from pathlib import Path

import pytest

from medarena.schemas import ModelFamily
from medarena.yaml_source import parse_yaml, read_yaml, write_atomic

CARD = """\
name: demo
display_name: Demo
developer: someone
license: mit
variants:
  - name: demo-7b
    params_b: 7
    source: {kind: hub, repo_id: org/demo-7b}
    context_length: 4096
"""


def test_valid_card_parses_and_validates():
    document, problems = parse_yaml(CARD, "demo.yaml")
    assert problems == []
    family, problems = document.validate(ModelFamily)
    assert problems == []
    assert family.variants[0].source.repo_id == "org/demo-7b"


def test_malformed_yaml_reports_line():
    text = "name: demo\nvariants:\n  - name: [unclosed\n    params_b: 7\n"
    document, problems = parse_yaml(text, "bad.yaml")
    assert document is None
    assert len(problems) == 1
    assert problems[0].file == "bad.yaml"
    assert problems[0].line in (3, 4, 5)
    assert "malformed YAML" in str(problems[0])


def test_validation_errors_carry_line_and_field_path():
    text = CARD.replace("params_b: 7", "params_b: -7").replace("license: mit", "licence: mit")
    document, _ = parse_yaml(text, "demo.yaml")
    _, problems = document.validate(ModelFamily)
    by_field = {problem.field: problem for problem in problems}
    assert by_field["variants[0].params_b"].line == 7
    assert "greater than 0" in by_field["variants[0].params_b"].message
    assert by_field["licence"].line == 4
    assert "unknown key" in by_field["licence"].message
    assert by_field["license"].message == "Field required"


def test_nested_union_error_points_into_the_source():
    text = CARD.replace("repo_id: org/demo-7b", "repo: org/demo-7b")
    document, _ = parse_yaml(text, "demo.yaml")
    _, problems = document.validate(ModelFamily)
    fields = {problem.field for problem in problems}
    assert "variants[0].source.repo_id" in fields
    assert "variants[0].source.repo" in fields
    assert all(problem.line == 8 for problem in problems)


def test_duplicate_keys_are_reported():
    document, problems = parse_yaml(CARD + "license: apache-2.0\n", "demo.yaml")
    assert document is None
    assert [(p.field, p.line) for p in problems] == [("license", 10)]


def test_non_utf8_file_is_a_problem(tmp_path: Path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    document, problems = read_yaml(path)
    assert document is None
    assert "not UTF-8" in problems[0].message


@pytest.mark.parametrize("text", ["", "- a\n- b\n"])
def test_empty_or_non_mapping_documents(text: str):
    document, problems = parse_yaml(text, "x.yaml")
    assert document is None and problems


def test_write_atomic_exclusive_refuses_existing(tmp_path: Path):
    target = tmp_path / "card.yaml"
    write_atomic(target, "one\n", exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomic(target, "two\n", exclusive=True)
    assert target.read_text() == "one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.yaml"]  # no temp files left


def test_write_atomic_failure_leaves_the_old_file_and_no_temp(tmp_path: Path, monkeypatch):
    target = tmp_path / "card.yaml"
    target.write_text("old\n")

    def disk_full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("medarena.yaml_source.os.fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.yaml"]
