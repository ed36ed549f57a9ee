"""A results database with known numbers, shared by the compare and dashboard tests.

Two variants of the tiny family (base, and a pretrained child produced by a training run) on a
QA task (12 items, correctness chosen so the paired counts are known) and on a summarization
task (4 items with per-item ROUGE-L and BERTScore); base has an older, worse QA run too.
`seed_api_database` adds a generated QA run of GPT-4 (the shipped API entry, size undisclosed)
billed per item. Metrics are computed from the predictions here, so every figure a view shows
can be checked against the database.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from medarena.compare import bootstrap_ci
from medarena.registry import add_family, load_registry
from medarena.results import MetricValue, Prediction, Reproduction, TrainingStep
from medarena.schemas import ModelFamily
from medarena.store import Store
from tests.conftest import copy_models
from tests.factories import eval_spec

BASE, PRETRAINED = "tiny-medical-base", "tiny-medical-pretrained"
QA_TASK, SUM_TASK = "medqa_4options", "pubmed_summarization"
GOLD = list("ABCDABCDABCD")
# pretrained wins on items 4-8 (5), loses on 3 and 10 (2), ties on 0, 1, 2, 9, 11 (5)
CORRECT = {
    BASE: [1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0],
    PRETRAINED: [1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 0, 0],
}
OLD_BASE_CORRECT = [1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
# an API run: gpt-4 on the QA task, each item billed (tokens in, out) at the catalogue's prices
API_VARIANT = "gpt-4"
API_CORRECT = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0]
API_TOKENS = [(100 + i, 2 + i % 3) for i in range(12)]
API_PRICES = (30.0, 60.0)  # models/openai.yaml: $ per million tokens in / out
ROUGE_L = {BASE: [0.20, 0.30, 0.25, 0.10], PRETRAINED: [0.40, 0.35, 0.20, 0.30]}
BERTSCORE = {BASE: [0.80, 0.82, 0.81, 0.79], PRETRAINED: [0.85, 0.86, 0.80, 0.84]}
STEPS = [TrainingStep(s, 4.0 / s, lr=1e-3 * s, tokens_per_s=1000.0 + s) for s in range(1, 6)]
# published results of the base model: one under the protocol its measured runs follow
# (lm-eval: letter log-likelihood, 0-shot), one under another (generate); the settings a measured
# run needs, as medarena.evaluate.protocol computes them at sync
PUBLISHED = {
    "fixture-same": {"protocol": "lm-eval", "value": 0.40},
    "fixture-other": {"protocol": "me-llama-zeroshot", "value": 0.60},
}
PUBLISHED_EXPECTATIONS = {
    (BASE, QA_TASK, "lm-eval"): ("loglik", 0),
    (BASE, QA_TASK, "me-llama-zeroshot"): ("generate", 0),
}
# one report of each verdict (what `medarena reproduce` stores)
REPRODUCTIONS = [
    Reproduction(
        "lm-eval",
        BASE,
        QA_TASK,
        "acc",
        0.30,
        "paper A",
        0.25,
        0.05,
        0.5,
        None,
        12,
        "reproduced",
        [],
        [2],
    ),
    Reproduction(
        "lm-eval",
        BASE,
        QA_TASK,
        "acc",
        0.90,
        "paper B",
        0.25,
        0.05,
        0.5,
        None,
        12,
        "not reproduced",
        [],
        [2],
    ),
    Reproduction(
        "lm-eval",
        PRETRAINED,
        QA_TASK,
        "acc",
        0.50,
        "card C",
        0.58,
        0.3,
        0.85,
        None,
        12,
        "not comparable",
        ["items: the test split has 1273, measured on 12"],
        [3],
    ),
]
DATA_MIX = {
    "pubmed": {"documents": 10, "tokens": 3000, "share": 0.75, "target_share": 0.7, "epochs": 1.0},
    "general": {"documents": 4, "tokens": 1000, "share": 0.25, "target_share": 0.3, "epochs": 0.5},
}


def _answer(gold: str, correct: int) -> str:
    return gold if correct else "ABCD"[("ABCD".index(gold) + 1) % 4]


def add_qa_run(store: Store, variant: str, correct: list[int]) -> int:
    run = store.create_eval_run(eval_spec(variant, QA_TASK))
    store.add_predictions(
        run.id,
        [
            Prediction(
                f"q{i:02d}",
                f"h{i}",
                gold,
                prompt=f"Question {i}?",
                raw_output=f" {_answer(gold, ok)}",
                parsed_answer=_answer(gold, ok),
                correct=bool(ok),
            )
            for i, (gold, ok) in enumerate(zip(GOLD[: len(correct)], correct, strict=True))
        ],
    )
    values = [float(ok) for ok in correct]
    low, high = bootstrap_ci(values)
    store.finish_eval_run(
        run.id, [MetricValue("acc", float(np.mean(values)), len(values), low, high)]
    )
    return run.id


def add_api_run(store: Store) -> int:
    """A completed gpt-4 run whose predictions carry what the API billed."""
    spec = eval_spec(
        API_VARIANT, QA_TASK, scoring_mode="generate", engine="openai", engine_version="openai 2"
    )
    run = store.create_eval_run(spec)
    price_in, price_out = API_PRICES
    store.add_predictions(
        run.id,
        [
            Prediction(
                f"q{i:02d}",
                f"h{i}",
                gold,
                prompt=f"Question {i}?",
                raw_output=f"The answer is {_answer(gold, ok)}.",
                parsed_answer=_answer(gold, ok),
                correct=bool(ok),
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=(tokens_in * price_in + tokens_out * price_out) / 1e6,
            )
            for i, (gold, ok, (tokens_in, tokens_out)) in enumerate(
                zip(GOLD, API_CORRECT, API_TOKENS, strict=True)
            )
        ],
    )
    values = [float(ok) for ok in API_CORRECT]
    low, high = bootstrap_ci(values)
    store.finish_eval_run(
        run.id, [MetricValue("acc", float(np.mean(values)), len(values), low, high)]
    )
    return run.id


def api_run_usage() -> tuple[int, int, float]:
    """Tokens in, tokens out and US dollars of the seeded API run."""
    tokens_in = sum(t for t, _ in API_TOKENS)
    tokens_out = sum(t for _, t in API_TOKENS)
    return tokens_in, tokens_out, (tokens_in * API_PRICES[0] + tokens_out * API_PRICES[1]) / 1e6


def add_summary_run(store: Store, variant: str) -> int:
    spec = eval_spec(variant, SUM_TASK, task_kind="summarization", scoring_mode="generate")
    run = store.create_eval_run(spec)
    rouge, bert = ROUGE_L[variant], BERTSCORE[variant]
    store.add_predictions(
        run.id,
        [
            Prediction(
                f"s{i}",
                f"h{i}",
                f"reference summary {i}",
                prompt=f"Summarize article {i}.",
                raw_output=f"summary {i} by {variant}",
                score=r,
                details={"rouge_l": r, "bertscore_f1": b},
            )
            for i, (r, b) in enumerate(zip(rouge, bert, strict=True))
        ],
    )
    metrics = []
    for name, values in (("rouge_l", rouge), ("bertscore_f1", bert)):
        low, high = bootstrap_ci(values)
        metrics.append(MetricValue(name, float(np.mean(values)), len(values), low, high))
    store.finish_eval_run(run.id, metrics)
    return run.id


def seed_database(root: Path) -> str:
    """Workspace (a copy of models/ plus the pretrained child) and database under `root`."""
    # the demo's trained variant (gitignored) is not part of the shipped registry
    copy_models(root)
    child = {
        "name": "tiny-medical-ckpt",
        "display_name": "tiny medical checkpoints",
        "developer": "test",
        "license": "apache-2.0",
        "variants": [
            {
                "name": PRETRAINED,
                "params_b": 0.000213,
                "source": {"kind": "embedded", "builder": "tiny", "seed": 1},
                "context_length": 2048,
                "parent": BASE,
            }
        ],
    }
    add_family(load_registry(root), ModelFamily.model_validate(child))
    for name, result in PUBLISHED.items():
        row = {"variant": BASE, "task": QA_TASK, "metric": "acc", "shots": 0, **result}
        card = {"source": name, "url": "https://example.org", "results": [row | {"setting": name}]}
        (root / "models" / "reference" / f"{name}.yaml").write_text(yaml.safe_dump(card))
    url = f"sqlite:///{root / 'seeded.db'}"
    with Store(url) as store:
        store.sync_registry(load_registry(root), PUBLISHED_EXPECTATIONS)
        training = store.create_training_run(
            kind="pretrain",
            recipe_name="tiny-demo",
            recipe_hash="r" * 64,
            base_variant=BASE,
            config={},
            world_size=1,
            data_mix=DATA_MIX,
        )
        store.add_training_steps(training.id, STEPS)
        store.finish_training_run(training.id, status="completed", output_variant=PRETRAINED)
        add_qa_run(store, BASE, OLD_BASE_CORRECT)
        add_qa_run(store, BASE, CORRECT[BASE])
        add_qa_run(store, PRETRAINED, CORRECT[PRETRAINED])
        add_summary_run(store, BASE)
        add_summary_run(store, PRETRAINED)
        store.add_reproductions(REPRODUCTIONS)
    return url


def seed_api_database(root: Path) -> str:
    """The seeded database plus the GPT-4 run (`add_api_run`)."""
    url = seed_database(root)
    with Store(url, create_if_empty=False) as store:
        add_api_run(store)
    return url
