"""BARTScore on the tiny BART: the batched, padded scorer gives what one plain forward pass per
pair gives, computed here by hand."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from medarena.evaluate.bartscore import TINY, BartScorer, tiny_bart
from medarena.evaluate.runner import compute_metrics
from medarena.evaluate.spec import load_benchmarks
from medarena.store import Store
from tests.conftest import REPO
from tests.helpers import invoke, sql_rows

PAIRS = [
    ("The patient has a cough.", "A cough was reported by the patient on admission."),
    ("Vitamin D lowered infections in older adults.", "Supplements reduced infections."),
    ("", "Chest radiograph shows no acute disease."),  # empty generated summary
    ("No acute cardiopulmonary process.", ""),  # empty reference
]


def plain_score(source: str, target: str) -> float:
    """Mean log p(target token | source, earlier target tokens), one pair, no padding."""
    model, tokenizer = tiny_bart()
    src = [tokenizer.bos_token_id, *tokenizer.encode(source, add_special_tokens=False)]
    src.append(tokenizer.eos_token_id)
    tgt = [tokenizer.bos_token_id, *tokenizer.encode(target, add_special_tokens=False)]
    tgt.append(tokenizer.eos_token_id)
    decoder = [tokenizer.eos_token_id, *tgt[:-1]]  # BART starts decoding with </s>
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor([src]), decoder_input_ids=torch.tensor([decoder])
        ).logits[0]
    total = 0.0
    for position, token in enumerate(tgt):
        row = logits[position]
        total += float(row[token] - torch.logsumexp(row, dim=0))
    return total / len(tgt)


def test_batched_scores_equal_plain_forward_passes() -> None:
    sources = [source for source, _ in PAIRS]
    targets = [target for _, target in PAIRS]
    scores = BartScorer(TINY, batch_size=3).score(sources, targets)
    expected = [plain_score(source, target) for source, target in PAIRS]
    assert scores == pytest.approx(expected, abs=1e-5)
    assert all(score < 0 for score in scores)
    # the pairs differ, so do their scores (padding did not blur the rows together)
    assert len({round(score, 6) for score in scores}) == len(PAIRS)


def test_empty_texts_score_their_end_of_sequence_tokens() -> None:
    _, tokenizer = tiny_bart()
    [empty] = BartScorer(TINY).score(["Findings: clear lungs."], [""])
    # the target is <s> </s> alone: two tokens, log-probs averaged
    assert math.isfinite(empty)
    assert empty == pytest.approx(plain_score("Findings: clear lungs.", ""), abs=1e-6)
    assert tokenizer.decode([tokenizer.bos_token_id, tokenizer.eos_token_id]) == "<s></s>"


def test_direction_matters_and_batch_size_does_not() -> None:
    source, target = PAIRS[0]
    one = BartScorer(TINY, batch_size=1).score([source, target], [target, source])
    many = BartScorer(TINY, batch_size=8).score([source, target], [target, source])
    assert one == pytest.approx(many, abs=1e-5)
    assert one[0] != pytest.approx(one[1], abs=1e-4)


def test_long_texts_are_cut_to_the_model_positions() -> None:
    model, _ = tiny_bart()
    long = "cough " * (2 * model.config.max_position_embeddings)
    [score] = BartScorer(TINY).score([long], [long])
    assert math.isfinite(score)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="2 sources for 1 targets"):
        BartScorer(TINY).score(["a", "b"], ["a"])


PROTOCOL = """\
name: bart-test
description: summaries with BARTScore on the tiny BART
source: a fixture written by the test
tasks:
  - task: mimic_cxr_summarization
    mode: generate
    metrics: [rouge_l, bartscore]
    bartscore_model: tiny-bart
"""


def protocol_workspace(eval_workspace: Path, text: str) -> Path:
    """The workspace with its own copy of the benchmarks and one more protocol."""
    (eval_workspace / "benchmarks").unlink()
    shutil.copytree(REPO / "benchmarks", eval_workspace / "benchmarks")
    (eval_workspace / "benchmarks" / "protocols" / "bart-test.yaml").write_text(text)
    return eval_workspace


def test_protocol_run_stores_bartscore_per_item_with_a_ci(eval_workspace: Path, db_url: str):
    workspace = protocol_workspace(eval_workspace, PROTOCOL)
    result = invoke(
        workspace, db_url, "eval", "-m", "tiny-medical-base", "-p", "bart-test", "--limit", "5"
    )
    assert result.exit_code == 0, result.output
    ((run_id,),) = sql_rows(db_url, "SELECT id FROM eval_runs")
    task = load_benchmarks(workspace)["mimic_cxr_summarization"].model_copy(
        update={"metrics": ["rouge_l", "bartscore"]}
    )
    with Store(db_url) as store:
        stored = {m.name: m for m in store.metrics(run_id)}
        predictions = store.predictions(run_id)
        recomputed = {m.name: m for m in compute_metrics(store, run_id, task, "generate")}
    assert set(stored) == {"rouge_l", "bartscore"} and stored == recomputed
    # each stored score is the reference's log-prob given the stored summary
    expected = BartScorer(TINY).score(
        [p.raw_output or "" for p in predictions], [p.gold for p in predictions]
    )
    assert [p.details["bartscore"] for p in predictions] == pytest.approx(expected, abs=1e-5)
    mean = stored["bartscore"]
    assert mean.value == pytest.approx(sum(expected) / len(expected), abs=1e-5)
    assert mean.ci_low is not None and mean.ci_low <= mean.value <= mean.ci_high


def test_a_metric_the_kind_lacks_is_refused_naming_the_field(eval_workspace: Path, db_url: str):
    workspace = protocol_workspace(eval_workspace, PROTOCOL.replace("[rouge_l,", "[acc,"))
    result = invoke(
        workspace, db_url, "eval", "-m", "tiny-medical-base", "-p", "bart-test", "--limit", "2"
    )
    assert result.exit_code == 2
    assert "tasks[0].metrics" in result.stderr and "'acc' is no summarization metric" in (
        result.stderr
    )
