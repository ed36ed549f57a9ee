"""The hub, offline: `datasets.load_dataset` answered from tests/assets/hub/ (synthetic rows in
each repository's layout, see its README) with the builder the hub would use for that file
type, so everything after the download is the code `--data hub` runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO

HUB_ASSETS = REPO / "tests" / "assets" / "hub"

# (dataset, config) -> fixture; one file stands for every split of that config
FIXTURES = {
    ("fzkuji/MedQA", "med_qa_en_source"): "fzkuji_MedQA/med_qa_en_source.parquet",
    ("qiaojin/PubMedQA", "pqa_labeled"): "qiaojin_PubMedQA/pqa_labeled.parquet",
    ("GBaker/MedQA-USMLE-4-options", None): "GBaker_MedQA-USMLE-4-options/phrases_no_exclude.jsonl",
    ("openlifescienceai/medmcqa", None): "openlifescienceai_medmcqa/default.parquet",
    ("cais/mmlu", "all"): "cais_mmlu/all.parquet",
}
ROWS = {"medqa_5options": 3, "pubmedqa": 6, "medqa_4options": 2, "medmcqa": 2, "mmlu_medical": 3}


def serve_hub_fixtures(
    monkeypatch: pytest.MonkeyPatch, cache_dir: Path
) -> list[tuple[str, str | None, str | None, str | None]]:
    """Replace `datasets.load_dataset` by the fixtures; returns the calls it receives as
    (dataset, config, split, revision)."""
    import datasets

    load = datasets.load_dataset
    calls: list[tuple[str, str | None, str | None, str | None]] = []

    def from_fixture(
        path: str, name: str | None = None, split: str | None = None, revision: str | None = None
    ) -> datasets.Dataset:
        calls.append((path, name, split, revision))
        file = HUB_ASSETS / FIXTURES[(path, name)]
        builder = "json" if file.suffix == ".jsonl" else "parquet"
        return load(builder, data_files=str(file), split="train", cache_dir=str(cache_dir))

    monkeypatch.setattr(datasets, "load_dataset", from_fixture)
    return calls
