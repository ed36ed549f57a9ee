"""Every SQL block in docs/queries.md runs read-only on a seeded store and returns what it says."""

import re

import pytest

from medarena.registry import add_family, load_registry
from medarena.results import (
    ContaminationCheck,
    ItemContamination,
    MetricValue,
    Prediction,
    TrainingStep,
)
from medarena.schemas import ModelFamily
from medarena.store import Store
from medarena.store import run_readonly_query as query
from tests.conftest import REPO, copy_models
from tests.factories import eval_spec

DOC = (REPO / "docs" / "queries.md").read_text()
QUERIES = re.findall(r"```sql\n(.*?)```", DOC, flags=re.S)
GOLD = ["A", "B", "C", "D", "A", "B"]
BASE_ANSWERS = ["A", "C", "C", "A", "B", "B"]  # correct on items 0, 2, 5
PRETRAINED_ANSWERS = ["A", "B", "C", "D", "B", "D"]  # correct on items 0-3


def run_on(store: Store, variant: str, answers: list[str]) -> None:
    run = store.create_eval_run(eval_spec(variant))
    store.add_predictions(
        run.id,
        [
            Prediction(f"item-{i}", f"h{i}", gold, parsed_answer=answer, correct=answer == gold)
            for i, (gold, answer) in enumerate(zip(GOLD, answers, strict=True))
        ],
    )
    correct = sum(a == g for a, g in zip(answers, GOLD, strict=True))
    store.finish_eval_run(run.id, [MetricValue("acc", correct / len(GOLD), len(GOLD))])


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("ws")
    copy_models(root)
    add_family(
        load_registry(root),
        ModelFamily.model_validate(
            {
                "name": "tiny-medical-ckpt",
                "display_name": "ckpt",
                "developer": "test",
                "license": "apache-2.0",
                "variants": [
                    {
                        "name": "tiny-medical-pretrained",
                        "params_b": 0.000213,
                        "source": {"kind": "embedded", "builder": "tiny", "seed": 1},
                        "context_length": 2048,
                        "parent": "tiny-medical-base",
                    }
                ],
            }
        ),
    )
    url = f"sqlite:///{root / 'seeded.db'}"
    with Store(url) as store:
        store.sync_registry(load_registry(root))
        training = store.create_training_run(
            kind="pretrain",
            recipe_name="tiny-demo",
            recipe_hash="r" * 64,
            base_variant="tiny-medical-base",
            config={},
            world_size=1,
        )
        store.add_training_steps(training.id, [TrainingStep(s, 4.0 / s) for s in range(1, 4)])
        store.finish_training_run(
            training.id, status="completed", output_variant="tiny-medical-pretrained"
        )
        run_on(store, "tiny-medical-base", BASE_ANSWERS)
        run_on(store, "tiny-medical-pretrained", PRETRAINED_ANSWERS)
        seed_subjects_failures_and_seeds(store)
        seed_contamination(store)
    return url


def seed_subjects_failures_and_seeds(store: Store) -> None:
    """An MMLU run with subjects, a generate run with parse failures, two 3-shot seeds."""
    mmlu = store.create_eval_run(eval_spec(task="mmlu_medical"))
    subjects = ["anatomy", "anatomy", "virology", "virology"]
    store.add_predictions(
        mmlu.id,
        [
            Prediction(f"{s}/{i}", f"m{i}", "A", correct=i != 1, details={"subject": s})
            for i, s in enumerate(subjects)
        ],
    )
    store.finish_eval_run(mmlu.id, [MetricValue("acc", 0.75, 4)])
    generated = store.create_eval_run(eval_spec(scoring_mode="generate"))
    outputs = [("The answer is (A).", "A"), ("I cannot tell.", None), ("B", "B"), ("?", None)]
    store.add_predictions(
        generated.id,
        [
            Prediction(
                f"item-{i}",
                f"g{i}",
                "A",
                raw_output=output,
                parsed_answer=parsed,
                correct=parsed == "A",
                parse_failed=parsed is None,
            )
            for i, (output, parsed) in enumerate(outputs)
        ],
    )
    store.finish_eval_run(generated.id, [MetricValue("acc", 0.25, 4)])
    for seed, acc in ((1, 0.5), (2, 0.75)):
        run = store.create_eval_run(eval_spec(task="pubmedqa", shots=3, seed=seed))
        store.add_predictions(run.id, [Prediction("item-0", "s", "yes", correct=True)])
        store.finish_eval_run(run.id, [MetricValue("acc", acc, 4)])


def seed_contamination(store: Store) -> None:
    """Two checks of the pretrained variant on MedQA: the older flagged item-0, the latest
    flags item-1 and item-3 (the query lists the latest only)."""
    for key, flagged in (("a", {"item-0"}), ("b", {"item-1", "item-3"})):
        check = ContaminationCheck(
            None, key * 64, "tiny-medical-pretrained", ["tiny-medical-pretrained"],
            "medqa_4options", "d" * 64, [], "word-ngram-overlap-1", 13, 0.0, "test", 6,
            len(flagged), 1,
        )  # fmt: skip
        where = [{"corpus": "tiny-demo/key-facts", "document": "doc-7", "matched": 3}]
        store.add_contamination_check(
            check,
            [
                ItemContamination(
                    f"item-{i}", 20, 3 * (f"item-{i}" in flagged), 15, f"item-{i}" in flagged, where
                )
                for i in range(6)
            ],
        )


def test_the_doc_has_its_queries():
    assert len(QUERIES) >= 7


@pytest.mark.parametrize("index", range(len(QUERIES)))
def test_every_documented_query_runs_and_returns_rows(seeded: str, index: int):
    result = query(seeded, QUERIES[index])
    assert result.rows, QUERIES[index]


def test_leaderboard_query_ranks_the_seeded_runs(seeded: str):
    result = query(seeded, QUERIES[0])
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    medqa = [r for r in rows if (r["task"], r["scoring_mode"]) == ("medqa_4options", "loglik")]
    assert [(r["variant"], r["acc"]) for r in medqa] == [
        ("tiny-medical-pretrained", round(4 / 6, 4)),
        ("tiny-medical-base", 0.5),
    ]


def test_disagreement_query_finds_exactly_the_differing_items(seeded: str):
    (sql,) = [q for q in QUERIES if "disagree" in q or "base_answer" in q]
    result = query(seeded, sql)
    assert [row[0] for row in result.rows] == ["item-1", "item-3", "item-5"]


def test_subject_failure_and_seed_queries_return_the_seeded_figures(seeded: str):
    (by_subject,) = [q for q in QUERIES if "'$.subject'" in q]
    assert query(seeded, by_subject).rows == [
        ("tiny-medical-base", "virology", 2, 1.0),
        ("tiny-medical-base", "anatomy", 2, 0.5),
    ]
    (failures,) = [q for q in QUERIES if "parse_failed = 1" in q]
    assert [row[3] for row in query(seeded, failures).rows] == ["item-1", "item-3"]
    (seeds,) = [q for q in QUERIES if "count(DISTINCT r.seed)" in q]
    assert query(seeded, seeds).rows == [("tiny-medical-base", "pubmedqa", 3, 2, 0.625, 0.5, 0.75)]


def test_lineage_query_walks_to_the_pretrained_checkpoint(seeded: str):
    (sql,) = [q for q in QUERIES if "WITH RECURSIVE lineage" in q]
    result = query(seeded, sql)
    rows = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    child = [r for r in rows if r["variant"] == "tiny-medical-pretrained"]
    assert child and child[0]["depth"] == 1 and child[0]["produced_by"] == "pretrain"


def test_contamination_query_lists_the_latest_checks_flags(seeded: str):
    (sql,) = [q for q in QUERIES if "FROM contamination_items" in q]
    assert query(seeded, sql).rows == [
        (
            "tiny-medical-pretrained",
            "medqa_4options",
            item,
            3,
            20,
            15,
            "tiny-demo/key-facts",
            "doc-7",
        )
        for item in ("item-1", "item-3")
    ]
