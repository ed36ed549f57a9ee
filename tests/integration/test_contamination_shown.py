"""A stored contamination check shows where results are read: `results` carries the flagged
share per cell, `compare` splits accuracy into clean / contaminated items with CIs and runs the
paired test on the clean items alone (hand-computed on the seeded runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from medarena.compare import bootstrap_ci
from medarena.results import ContaminationCheck, ItemContamination
from medarena.store import Store
from tests.helpers import as_json, invoke
from tests.seeded import BASE, CORRECT, PRETRAINED, QA_TASK, seed_database

FLAGGED = {"q04", "q05", "q06", "q07"}  # items the pretrained variant saw, as if checked


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("shown")
    url = seed_database(root)
    check = ContaminationCheck(
        None, "k" * 64, PRETRAINED, [PRETRAINED, BASE], QA_TASK, "d" * 64,
        [{"name": "planted", "origin": "--corpus", "sha256": "0" * 64}],
        "word-ngram-overlap-1", 13, 0.0, "test", 12, len(FLAGGED), 1,
    )  # fmt: skip
    items = [
        ItemContamination(f"q{i:02d}", 20, 5 if f"q{i:02d}" in FLAGGED else 0, 17, False, [])
        for i in range(12)
    ]
    items = [ItemContamination(**{**vars(i), "contaminated": i.item_id in FLAGGED}) for i in items]
    with Store(url) as store:
        store.add_contamination_check(check, items)
    return root, url


def test_results_carry_the_contaminated_share(seeded):
    root, url = seeded
    rows = as_json(invoke(root, url, "results", "--task", QA_TASK, "--json").stdout)
    shares = {row["variant"]: row["contaminated"] for row in rows if row["source"] == "measured"}
    assert shares == {PRETRAINED: pytest.approx(4 / 12), BASE: None}
    table = invoke(root, url, "results", "--task", QA_TASK).stdout
    assert "contaminated" in table and "33%" in table


def test_compare_splits_clean_and_contaminated_items(seeded):
    root, url = seeded
    result = invoke(root, url, "compare", PRETRAINED, BASE, "-t", QA_TASK, "--json")
    assert result.exit_code == 0, result.output
    split = as_json(result.stdout)["contamination"]
    assert split["checks"] == {PRETRAINED: 1, BASE: None}
    clean_ids = [i for i in range(12) if f"q{i:02d}" not in FLAGGED]
    clean_a = [CORRECT[PRETRAINED][i] for i in clean_ids]
    clean_b = [CORRECT[BASE][i] for i in clean_ids]
    clean, flagged = split["subsets"]
    assert (clean["name"], clean["n"], flagged["name"], flagged["n"]) == (
        "clean", 8, "contaminated", 4,
    )  # fmt: skip
    assert clean["mean_a"] == pytest.approx(4 / 8) and clean["mean_b"] == pytest.approx(5 / 8)
    assert clean["ci_a"] == pytest.approx(list(bootstrap_ci(clean_a)))
    assert clean["ci_b"] == pytest.approx(list(bootstrap_ci(clean_b)))
    assert flagged["mean_a"] == 1.0 and flagged["mean_b"] == 0.0
    # on the clean items the pretrained variant wins 1 (q08) and loses 2 (q03, q10)
    paired = split["clean"]
    assert (paired["n"], paired["wins"], paired["losses"]) == (8, 1, 2)
    assert paired["p_value"] == pytest.approx(1.0)  # 2 * (1 + 3) / 2^3, capped at 1
    text = invoke(root, url, "compare", PRETRAINED, BASE, "-t", QA_TASK).stdout
    assert "by contamination" in text and f"{PRETRAINED} check 1" in text


def test_compare_without_checks_has_no_split(seeded):
    root, url = seeded
    data = as_json(invoke(root, url, "compare", BASE, PRETRAINED, "-t", "pubmed_summarization",
                          "--json").stdout)  # fmt: skip
    assert data["contamination"] is None
