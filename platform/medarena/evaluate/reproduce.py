"""Reproduction reports: a variant's published results set against what medarena measures under
the same protocol, with every known mismatch named (`medarena reproduce`).

A published result is compared only when it was obtained under this protocol and its task is a
benchmark spec. The verdict is "not comparable" when anything known differs (item count, split,
shots, a metric not measured), "reproduced" when the published value lies in the measured 95%
CI, "not reproduced" otherwise.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from medarena.evaluate.formats import Item
from medarena.evaluate.protocol import Protocol
from medarena.evaluate.runner import EvalOptions
from medarena.evaluate.spec import BenchmarkTask
from medarena.registry import Registry
from medarena.results import EvalRun, MetricValue, Reproduction
from medarena.schemas import ApiPrices, HardwareProfile, ReferenceResult

# from docs/PERFORMANCE.md, Baselines (one H100, 1.1B shape): multiple-choice scoring forward at
# 40% MFU, greedy decoding (static cache) at ~2% MFU (7,941 new tokens/s x 2 x 1.1e9 FLOP /
# 989e12 FLOP/s); medarena's assumptions for estimates, stated in the plan output
PREFILL_MFU = 0.40
DECODE_MFU = 0.02
CHARS_PER_TOKEN = 4.0  # medarena's rule of thumb for English text with a Llama tokenizer


@dataclass(frozen=True)
class Published:
    result: ReferenceResult
    source: str


def published_results(registry: Registry, variant: str, protocol: str) -> list[Published]:
    """The variant's published results obtained under `protocol` (a preset name)."""
    return [
        Published(result, reference.source)
        for reference in registry.references.values()
        for result in reference.results
        if result.variant == variant and result.protocol == protocol
    ]


@dataclass(frozen=True)
class Measured:
    """What the protocol's runs of one task measured (one run per seed)."""

    runs: list[EvalRun]
    metrics: list[list[MetricValue]]


def compare_published(
    protocol: Protocol, published: Published, measured: Measured | None
) -> Reproduction:
    """One report: the published value against the measured one, mismatches named."""
    result = published.result
    entry = protocol.entry(result.task)
    mismatches: list[str] = []
    values: list[MetricValue] = []
    if result.unmapped:
        mismatches.append(f"task {result.task!r} maps onto no benchmark spec: {result.unmapped}")
    elif entry is None or measured is None:
        mismatches.append(f"the protocol {protocol.name!r} has no run of task {result.task!r}")
    else:
        values = [m for metrics in measured.metrics for m in metrics if m.name == result.metric]
        if not values:
            mismatches.append(f"metric {result.metric!r} is not measured on {result.task}")
        mismatches += _setting_mismatches(result, entry, measured)
    run_ids = [run.id for run in measured.runs] if measured else []
    if not values:
        return _report(protocol, published, None, None, None, None, None, mismatches, run_ids)
    mean = statistics.fmean(v.value for v in values)
    sd = statistics.stdev(v.value for v in values) if len(values) > 1 else None
    lows = [v.ci_low for v in values if v.ci_low is not None]
    highs = [v.ci_high for v in values if v.ci_high is not None]
    # over seeds: the mean of the per-seed bootstrap bounds (medarena's choice)
    low = statistics.fmean(lows) if len(lows) == len(values) else None
    high = statistics.fmean(highs) if len(highs) == len(values) else None
    return _report(protocol, published, mean, low, high, sd, values[0].n, mismatches, run_ids)


def _setting_mismatches(result: ReferenceResult, entry, measured: Measured) -> list[str]:
    found = []
    n = measured.runs[0].n_items
    expected = result.items or entry.expected_items
    if expected is not None and n != expected:
        where = "published on" if result.items else f"the {entry.split} split has"
        found.append(f"items: {where} {expected}, measured on {n}")
    if result.split is not None and result.split != entry.split:
        found.append(f"split: published on {result.split}, the protocol runs {entry.split}")
    shots = {run.shots for run in measured.runs}
    if result.shots == "unknown":
        found.append(f"shots: the source does not state them; measured {sorted(shots)}")
    elif shots != {result.shots}:
        found.append(f"shots: published {result.shots}, measured {sorted(shots)}")
    return found


def _report(
    protocol: Protocol,
    published: Published,
    measured: float | None,
    low: float | None,
    high: float | None,
    sd: float | None,
    n: int | None,
    mismatches: list[str],
    run_ids: list[int],
) -> Reproduction:
    result = published.result
    if mismatches or measured is None:
        verdict = "not comparable"
    elif low is not None and high is not None and low <= result.value <= high:
        verdict = "reproduced"
    else:
        verdict = "not reproduced"
    return Reproduction(
        protocol.name,
        result.variant,
        result.task,
        result.metric,
        result.value,
        published.source,
        measured,
        low,
        high,
        sd,
        n,
        verdict,
        mismatches,
        run_ids,
    )


def estimate(
    task: BenchmarkTask,
    options: EvalOptions,
    items: int,
    prompt_chars: float,
    params: float,
    hardware: HardwareProfile,
) -> tuple[float, float]:
    """(tokens, GPU-hours) of one run: prompts (with their demonstrations) scored at
    PREFILL_MFU, generated tokens at DECODE_MFU, 2 x params FLOP per token."""
    prompt_tokens, new_tokens = item_tokens(task, options, prompt_chars)
    peak = hardware.bf16_tflops * 1e12
    per_item = prompt_tokens / (peak * PREFILL_MFU) + new_tokens / (peak * DECODE_MFU)
    return items * (prompt_tokens + new_tokens), items * 2 * params * per_item / 3600


def mean_item_chars(items: Sequence[Item]) -> float:
    """The mean length of an item written out (question, choices, reference): what `estimate`
    and `api_cost` take as `prompt_chars`."""
    return statistics.fmean(len(json.dumps(item.canonical(), default=list)) for item in items)


def item_tokens(
    task: BenchmarkTask, options: EvalOptions, prompt_chars: float
) -> tuple[float, float]:
    """(prompt, generated) tokens of one item: the prompt with its demonstrations at
    CHARS_PER_TOKEN, the generation budget in full (an upper bound) times the samples."""
    prompt_tokens = prompt_chars / CHARS_PER_TOKEN * (options.shots + 1)
    new_tokens = 0.0
    if options.mode == "generate":
        generation = task.generation
        budget = generation.cot_max_new_tokens if options.cot else generation.max_new_tokens
        new_tokens = float(budget * options.samples)
    return prompt_tokens, new_tokens


def api_cost(
    task: BenchmarkTask, options: EvalOptions, items: int, prompt_chars: float, prices: ApiPrices
) -> float:
    """US dollars one run costs at the variant's prices, by the same token estimate."""
    prompt_tokens, new_tokens = item_tokens(task, options, prompt_chars)
    per_item = prompt_tokens * prices.input_per_million + new_tokens * prices.output_per_million
    return items * per_item / 1e6
