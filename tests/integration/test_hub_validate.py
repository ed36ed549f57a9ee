"""`medarena benchmarks validate --hub`, offline: the hub is served from tests/assets/hub/, so
the real reader, source formats and count check run on rows in each repository's layout. A
split whose rows differ from the spec's `expected_items` is named at the spec's line (exit 2);
with the hub switched off or unreachable the command says so."""

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import invoke
from tests.hub_fixtures import ROWS, serve_hub_fixtures


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)


def with_shipped_benchmarks(workspace: Path) -> Path:
    (workspace / "benchmarks").symlink_to(REPO / "benchmarks")
    return workspace


def test_each_split_that_differs_from_its_spec_is_named(
    workspace: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, online: None
):
    serve_hub_fixtures(monkeypatch, tmp_path / "cache")
    result = invoke(with_shipped_benchmarks(workspace), db_url, "benchmarks", "validate", "--hub")
    assert result.exit_code == 2, result.output
    assert (
        "mismatch: medqa_5options hub eval: fzkuji/MedQA@0aa3dcf1c294 (med_qa_en_source, test): "
        "3 items, the spec expects 1273" in result.stdout
    )
    assert (
        "mismatch: pubmedqa hub eval: qiaojin/PubMedQA@0b11dd10b7af (pqa_labeled, train): "
        "3 items, the spec expects 500" in result.stdout
    )
    assert result.stdout.count("mismatch: ") == 2 * len(ROWS)  # eval and few-shot of each
    assert "hub splits differ from their specs (10 problem(s))" in result.stderr
    medqa, pubmedqa = line_numbers("medqa_5options"), line_numbers("pubmedqa")
    assert (
        f"benchmarks/medqa_5options.yaml:{medqa[0]}: hub.eval.expected_items: the hub split has "
        "3 items, the spec expects 1273" in result.stderr
    )
    # the 500 test PMIDs select the 3 fixture rows that carry them, the rest are the pool
    for split, line in zip(("eval", "fewshot"), pubmedqa, strict=True):
        assert (
            f"benchmarks/pubmedqa.yaml:{line}: hub.{split}.expected_items: the hub split has "
            "3 items, the spec expects 500" in result.stderr
        )


def line_numbers(task: str) -> list[int]:
    """Lines of the shipped spec's `expected_items` (eval first, then few-shot)."""
    lines = (REPO / "benchmarks" / f"{task}.yaml").read_text().splitlines()
    return [number for number, line in enumerate(lines, 1) if "expected_items:" in line]


def test_splits_that_hold_what_their_specs_expect_pass(
    workspace: Path, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, online: None
):
    benchmarks = workspace / "benchmarks"
    benchmarks.mkdir()
    shutil.copytree(REPO / "benchmarks/splits", benchmarks / "splits")
    for name in ("pubmedqa", "medqa_5options"):
        shutil.copytree(REPO / "benchmarks/samples" / name, benchmarks / "samples" / name)
        spec = (REPO / "benchmarks" / f"{name}.yaml").read_text()
        for expected in ("1273", "10178", "500"):
            spec = spec.replace(f"expected_items: {expected}\n", "expected_items: 3\n")
        (benchmarks / f"{name}.yaml").write_text(spec)
    calls = serve_hub_fixtures(monkeypatch, tmp_path / "cache")
    result = invoke(workspace, db_url, "benchmarks", "validate", "--hub")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("ok: ") == 2 + 4  # two bundled samples, four hub splits
    assert (
        "ok: pubmedqa hub fewshot: qiaojin/PubMedQA@0b11dd10b7af (pqa_labeled, train): 3 items\n"
        in result.stdout
    )
    assert len(calls) == 4


def test_with_the_hub_switched_off_the_command_says_so(workspace: Path, db_url: str):
    # tests run with HF_HUB_OFFLINE=1 (conftest)
    result = invoke(with_shipped_benchmarks(workspace), db_url, "benchmarks", "validate", "--hub")
    assert result.exit_code == 2
    assert "--hub reads every hub split over the network, but HF_HUB_OFFLINE is set" in (
        result.stderr
    )


def test_without_a_network_the_first_split_fails_with_its_name(
    workspace: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, online: None
):
    import datasets

    tried = []

    def unreachable(path: str, *args: object, **kwargs: object) -> None:
        tried.append(path)
        raise ConnectionError(f"Couldn't reach '{path}' on the Hub (ConnectError)")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    result = invoke(with_shipped_benchmarks(workspace), db_url, "benchmarks", "validate", "--hub")
    assert result.exit_code == 1
    assert (
        "cannot read hub:openlifescienceai/medmcqa:validation from the hub: Couldn't reach "
        "'openlifescienceai/medmcqa' on the Hub" in result.stderr
    )
    assert tried == ["openlifescienceai/medmcqa"]  # stops at the first, no retry per split
