"""Result entities: what the store returns and what evaluation and comparison hand to it.

Plain frozen dataclasses without SQLAlchemy, so evaluation, comparison and the dashboard use
results without importing the SQL layer. The store (`medarena.store`) maps them to its tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class SyncReport:
    """What `Store.sync_registry` mirrored into SQL."""

    families: int
    variants: int
    reference_results: int
    retired_variants: list[str]


@dataclass(frozen=True)
class FamilyInfo:
    """A model family as synced into the store."""

    name: str
    display_name: str
    developer: str
    license: str
    paper: str | None
    continued_from: str | None


# how a size the provider never published is shown (GPT-3.5, GPT-4: params_b None)
UNDISCLOSED = "undisclosed"


@dataclass(frozen=True)
class VariantInfo:
    """A variant as synced into the store, with its lineage links (`parent_id` and
    `produced_by_run_id` are store ids)."""

    id: int
    name: str
    family: str
    params_b: float | None  # None: undisclosed (a model behind an API)
    parent_id: int | None
    produced_by_run_id: int | None
    instruction_tuned: bool
    chat_template: str | None
    quant_method: str | None
    quant_bits: int | None
    gated: bool
    context_length: int
    in_registry: bool
    recipes: tuple[str, ...]


# ------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class EvalRunSpec:
    """What identifies an evaluation and makes it reproducible (its run key:
    `medarena.store.queries.RUN_KEY`)."""

    variant: str
    task: str
    task_kind: str
    dataset_hash: str
    prompt_template_hash: str
    scoring_mode: str
    shots: int
    seed: int
    engine: str
    engine_version: str
    code_version: str
    variant_revision: str | None = None
    weights_hash: str | None = None
    # sampling, generation length and stops, metric settings, extraction rule
    # (medarena.evaluate.identity); None only on runs stored before it was in the key
    settings_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    task_spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvalRun:
    id: int
    run_uuid: str
    variant: str
    task: str
    scoring_mode: str
    shots: int
    seed: int
    engine: str
    status: str
    n_items: int | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Prediction:
    item_id: str
    prompt_hash: str
    gold: str
    prompt: str | None = None
    raw_output: str | None = None
    parsed_answer: str | None = None
    correct: bool | None = None
    score: float | None = None
    parse_failed: bool = False
    logprobs: dict[str, Any] | None = None
    details: dict[str, Any] | None = None
    # what an API billed for the item (None for local engines; cost None without prices)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


# Corpus-level F1 metrics (medarena.compare.corpus): metric name -> (the per-item counts it sums,
# stored in a prediction's details["f1_counts"] under that key, or derived from its one answer
# for "labels"; micro or macro average)
F1_METRICS: dict[str, tuple[str, str]] = {
    "macro_f1": ("labels", "macro"),
    "micro_f1": ("labels", "micro"),
    "strict_f1": ("strict", "micro"),
    "lenient_f1": ("lenient", "micro"),
}


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float
    n: int
    ci_low: float | None = None
    ci_high: float | None = None


@dataclass(frozen=True)
class LeaderboardRow:
    variant: str
    family: str
    task: str
    metric: str
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int
    scoring_mode: str
    shots: int | None  # None: a published result whose source does not state it
    source: str  # "measured" or the citation of a published result
    run_id: int | None = None  # the measured run; None for published results
    # published results: the preset protocol, or how it was obtained in words
    protocol: str | None = None
    unmapped: str | None = None  # why the published task is no benchmark spec
    # the setting a measured run needs to stand beside this published one (None: unknown)
    expected_mode: str | None = None
    expected_shots: int | None = None
    # measured results: the share of the task's items the variant's latest contamination check
    # flagged (None: never checked)
    contaminated: float | None = None
    # the variant's quantization (`GGUF Q4_0 (4-bit)`), None at full precision
    quantization: str | None = None


@dataclass(frozen=True)
class RunMetric:
    """One metric of one completed run, with the run's setting (a point of a history)."""

    run_id: int
    created_at: datetime
    scoring_mode: str
    shots: int
    seed: int
    engine: str
    code_version: str
    value: float
    ci_low: float | None
    ci_high: float | None
    n: int


@dataclass(frozen=True)
class ApiUsage:
    """What an API billed for the latest completed run of a variant on a task (cost None: the
    variant declares no prices)."""

    run_id: int
    variant: str
    task: str
    scoring_mode: str
    shots: int
    n_items: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


# --------------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainingRun:
    id: int
    run_uuid: str
    kind: str
    recipe_name: str
    base_variant: str
    output_variant: str | None
    status: str
    tokens_seen: int
    started_at: datetime
    ended_at: datetime | None
    world_size: int
    hardware: str | None
    wall_seconds: float | None


@dataclass(frozen=True)
class TrainingStep:
    step: int
    loss: float
    lr: float | None = None
    grad_norm: float | None = None
    tokens_per_s: float | None = None
    mfu: float | None = None
    tokens_seen: int | None = None


# ---------------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class QueryResult:
    """The rows of a read-only SQL query (at most the row limit; `truncated` when more)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


VERDICTS = ("reproduced", "not reproduced", "not comparable")


@dataclass(frozen=True)
class Reproduction:
    """A published result set against a measurement under the same protocol."""

    protocol: str
    variant: str
    task: str
    metric: str
    published: float
    source: str
    measured: float | None  # the mean over seeds for mean_sd protocols
    ci_low: float | None
    ci_high: float | None
    sd: float | None  # across seeds
    n: int | None
    verdict: str  # one of VERDICTS
    mismatches: list[str]  # every known difference between the two numbers' settings
    eval_run_ids: list[int]
    created_at: datetime | None = None

    @property
    def difference(self) -> float | None:
        return None if self.measured is None else self.measured - self.published


# (variant, task, protocol) -> (scoring-mode key, shots) a measured run needs to stand beside a
# published result obtained under that protocol (computed by medarena.evaluate.protocol)
Expectations = Mapping[tuple[str, str, str | None], tuple[str, int]]


# ------------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class ContaminationCheck:
    """An n-gram overlap check of a task's items against a variant's training corpora;
    `key` hashes what decides its outcome (medarena.analysis.contamination.check_key)."""

    id: int | None
    key: str
    variant: str
    lineage: list[str]
    task: str
    dataset_hash: str
    corpora: list[dict[str, str]]  # name, origin, sha256
    method: str
    n: int
    threshold: float
    code_version: str
    n_items: int
    n_contaminated: int
    documents_read: int
    created_at: datetime | None = None


@dataclass(frozen=True)
class ItemContamination:
    """One item's overlap: its distinct n-grams, those found, the longest run of its words
    found, and where (the documents with the most n-grams first)."""

    item_id: str
    ngrams: int
    matched: int
    longest: int
    contaminated: bool
    sources: list[dict[str, Any]]


METHOD_NAMES = {"gguf": "GGUF", "gptq": "GPTQ", "awq": "AWQ", "bitsandbytes": "bitsandbytes"}


def quantization_label(
    method: str | None, bits: int | None, group_size: int | None, scheme: str | None
) -> str | None:
    """`GGUF Q4_K_M (4-bit)`, `AWQ 4-bit g128`; None without a method (full precision)."""
    if method is None:
        return None
    name = METHOD_NAMES.get(method, method)
    if scheme:
        return f"{name} {scheme} ({bits}-bit)"
    return f"{name} {bits}-bit" + (f" g{group_size}" if group_size else "")
