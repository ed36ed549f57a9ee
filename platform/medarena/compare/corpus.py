"""Corpus-level F1 from per-item counts, with its bootstrap CI and a paired bootstrap.

F1 is not a mean over items, so each prediction stores what F1 is made of: per class, its true
positives, false positives and false negatives (`Counts`). Any resample of items sums those
counts, so the CI of a run's F1 and the paired comparison of two runs resample items exactly as
the mean-based metrics do (pure numpy: the dashboard imports it without torch).

- micro F1: 2 TP / (2 TP + FP + FN) over the counts of every class summed;
- macro F1: the mean over the task's classes of each class's F1, a class with no true positive
  scoring 0 (scikit-learn's `zero_division=0`). A class outside the task's closed set (an
  unknown predicted label) still adds its false positives to micro F1 but is no class of macro F1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medarena.compare.bootstrap import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, bootstrap_ci
from medarena.errors import Refused
from medarena.results import Prediction

# per class: [true positives, false positives, false negatives]
Counts = Mapping[str, Sequence[int]]


def label_counts(gold: Iterable[str], predicted: Iterable[str]) -> dict[str, list[int]]:
    """One item's counts from its gold labels and predicted labels (sets: a label named twice
    counts once)."""
    g, p = set(gold), set(predicted)
    return {
        label: [int(label in g and label in p), int(label in p - g), int(label in g - p)]
        for label in sorted(g | p)
    }


def count_matrix(items: Sequence[Counts], classes: Sequence[str] = ()) -> np.ndarray:
    """The items' counts as an array [item, class, (tp, fp, fn)]: `classes` first, then every
    other class named, in order of appearance."""
    names = list(dict.fromkeys([*classes, *(label for counts in items for label in counts)]))
    column = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(items), len(names), 3), dtype=np.int64)
    for row, counts in enumerate(items):
        for label, values in counts.items():
            matrix[row, column[label]] = values
    return matrix


def _f1(total: np.ndarray, average: str, n_classes: int) -> float:
    """F1 of summed counts [class, (tp, fp, fn)]; macro over the first `n_classes` classes."""
    if average == "micro":
        tp, fp, fn = total.sum(axis=0)
        return 0.0 if tp == 0 else float(2 * tp / (2 * tp + fp + fn))
    if n_classes == 0:
        return 0.0
    tp, fp, fn = total[:n_classes].T
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return float(per_class.mean())


def _checked(average: str) -> str:
    if average not in ("micro", "macro"):
        raise ValueError(f"average must be micro or macro, not {average!r}")
    return average


def f1_score(items: Iterable[Counts], average: str, classes: Sequence[str] = ()) -> float:
    """Micro or macro F1 of the items' summed counts; macro averages over `classes`."""
    matrix = count_matrix(list(items), classes)
    return _f1(matrix.sum(axis=0), _checked(average), len(classes))


def f1_with_ci(
    items: Sequence[Counts], average: str, classes: Sequence[str] = ()
) -> tuple[float, float, float]:
    """F1 over all items and its percentile bootstrap 95% CI over items."""
    matrix = count_matrix(items, classes)
    k = len(classes)
    value = _f1(matrix.sum(axis=0), _checked(average), k)
    low, high = bootstrap_ci(
        np.arange(len(items)),
        lambda rows: _f1(matrix[rows.astype(int)].sum(axis=0), average, k),
    )
    return value, low, high


@dataclass(frozen=True)
class PairedF1:
    f1_a: float
    f1_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float  # two-sided paired bootstrap: how often a resample's difference flips sign


def paired_f1(
    a: Sequence[Counts],
    b: Sequence[Counts],
    average: str,
    classes: Sequence[str] = (),
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> PairedF1:
    """F1(A) - F1(B) on the same items (aligned lists), both resampled with the same rows."""
    if len(a) != len(b):
        raise ValueError("paired counts must be aligned item by item")
    _checked(average)
    k = len(classes)
    # one class list for both runs, so the same rows of both matrices are summed
    both = count_matrix([*a, *b], classes)
    first, second = both[: len(a)], both[len(a) :]
    f1_a, f1_b = _f1(first.sum(axis=0), average, k), _f1(second.sum(axis=0), average, k)
    if len(a) < 2:
        return PairedF1(f1_a, f1_b, f1_a - f1_b, f1_a - f1_b, f1_a - f1_b, 1.0)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(a), size=(resamples, len(a)))
    differences = np.array(
        [
            _f1(first[row].sum(axis=0), average, k) - _f1(second[row].sum(axis=0), average, k)
            for row in rows
        ]
    )
    low, high = np.percentile(differences, [2.5, 97.5])
    flips = min(np.mean(differences <= 0), np.mean(differences >= 0))
    return PairedF1(f1_a, f1_b, f1_a - f1_b, float(low), float(high), float(min(1.0, 2 * flips)))


def prediction_counts(prediction: Prediction, key: str) -> Counts:
    """One prediction's counts: stored by kinds that score sets (`details["f1_counts"][key]`),
    or, for one answer from a closed set (its choices stored, or scored right or wrong), from
    its gold and parsed answers (an unparsed answer predicts no class)."""
    details = prediction.details or {}
    stored = details.get("f1_counts", {}).get(key)
    if stored is not None:
        return stored
    if key == "labels" and ("choices" in details or prediction.correct is not None):
        parsed = [] if prediction.parsed_answer is None else [prediction.parsed_answer]
        return label_counts([prediction.gold], parsed)
    raise Refused(f"item {prediction.item_id!r} stores no {key!r} counts for F1")


def task_classes(predictions: Sequence[Prediction]) -> list[str]:
    """The closed label set of a task (macro F1's classes): every item's `choices`, in order of
    first appearance; the gold answers seen, sorted, where no item stored its choices."""
    choices = [c for p in predictions for c in (p.details or {}).get("choices", ())]
    return list(dict.fromkeys(choices)) if choices else sorted({p.gold for p in predictions})
