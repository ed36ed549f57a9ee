"""SQLAlchemy 2 tables of the results store. Every constraint is named (portable migrations)."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# ------------------------------------------------------------------------ registry (synced)


class ModelFamilyRow(Base):
    __tablename__ = "model_families"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    developer: Mapped[str] = mapped_column(String(200))
    license: Mapped[str] = mapped_column(String(100))
    paper: Mapped[str | None] = mapped_column(String(300))
    continued_from: Mapped[str | None] = mapped_column(String(200))
    card: Mapped[dict] = mapped_column(JSON)
    synced_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ModelVariantRow(Base):
    __tablename__ = "model_variants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("model_families.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_variants.id"))
    params_b: Mapped[float | None] = mapped_column(Float)  # None: undisclosed (an API model)
    source_kind: Mapped[str] = mapped_column(String(20))
    location: Mapped[str] = mapped_column(String(500))
    revision: Mapped[str | None] = mapped_column(String(100))
    context_length: Mapped[int] = mapped_column(Integer)
    architecture: Mapped[str] = mapped_column(String(50))
    dtype: Mapped[str] = mapped_column(String(20))
    quant_method: Mapped[str | None] = mapped_column(String(20))
    quant_bits: Mapped[int | None] = mapped_column(Integer)
    quant_group_size: Mapped[int | None] = mapped_column(Integer)
    quant_scheme: Mapped[str | None] = mapped_column(String(50))
    chat_template: Mapped[str | None] = mapped_column(String(100))
    instruction_tuned: Mapped[bool] = mapped_column(Boolean)
    gated: Mapped[bool] = mapped_column(Boolean)
    tensor_parallel: Mapped[int] = mapped_column(Integer)
    in_registry: Mapped[bool] = mapped_column(Boolean, default=True)
    produced_by_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_runs.id", use_alter=True)
    )
    spec: Mapped[dict] = mapped_column(JSON)
    synced_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ReferenceResultRow(Base):
    """A published number, kept apart from measured metrics (its own table, never joined in
    by default)."""

    __tablename__ = "reference_results"
    __table_args__ = (UniqueConstraint("variant_id", "task", "metric", "source_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("model_variants.id"), index=True)
    task: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(50))
    value: Mapped[float] = mapped_column(Float)
    shots: Mapped[int | None] = mapped_column(Integer)
    setting: Mapped[str] = mapped_column(Text)
    source_key: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(500))
    table_ref: Mapped[str | None] = mapped_column(String(100))
    # how the number was obtained: a preset under benchmarks/protocols/, or in words
    protocol: Mapped[str | None] = mapped_column(String(100))
    other_protocol: Mapped[str | None] = mapped_column(Text)
    items: Mapped[int | None] = mapped_column(Integer)
    split: Mapped[str | None] = mapped_column(String(50))
    unmapped: Mapped[str | None] = mapped_column(Text)  # why `task` is no benchmark spec
    # the setting a measured run needs to stand beside it (its preset protocol's scoring-mode
    # key and shots for this variant), filled at sync; NULL when no preset applies
    expected_mode: Mapped[str | None] = mapped_column(String(30))
    expected_shots: Mapped[int | None] = mapped_column(Integer)


class ReproductionRow(Base):
    """A published result checked against a measurement under the same protocol
    (`medarena reproduce`)."""

    __tablename__ = "reproductions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    protocol: Mapped[str] = mapped_column(String(100), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("model_variants.id"), index=True)
    task: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(50))
    published: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text)
    measured: Mapped[float | None] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    sd: Mapped[float | None] = mapped_column(Float)  # across seeds, for mean_sd protocols
    n: Mapped[int | None] = mapped_column(Integer)
    # reproduced | not reproduced | not comparable
    verdict: Mapped[str] = mapped_column(String(20))
    mismatches: Mapped[list] = mapped_column(JSON)
    eval_run_ids: Mapped[list] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# ------------------------------------------------------------------------------- evaluation


class TaskRow(Base):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    spec: Mapped[dict] = mapped_column(JSON)


class EvalRunRow(Base):
    __tablename__ = "eval_runs"
    __table_args__ = (Index(None, "variant_id", "task_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("model_variants.id"))
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id"), index=True)
    # reproducibility: everything that changes the numbers
    variant_revision: Mapped[str | None] = mapped_column(String(100))
    weights_hash: Mapped[str | None] = mapped_column(String(64))
    # sampling, generation, metric settings, extraction rule (NULL: stored before 0005)
    settings_hash: Mapped[str | None] = mapped_column(String(64))
    dataset_hash: Mapped[str] = mapped_column(String(64))
    prompt_template_hash: Mapped[str] = mapped_column(String(64))
    scoring_mode: Mapped[str] = mapped_column(String(30))
    shots: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    engine: Mapped[str] = mapped_column(String(30))
    engine_version: Mapped[str] = mapped_column(String(50))
    code_version: Mapped[str] = mapped_column(String(80))
    config: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    n_items: Mapped[int | None] = mapped_column(Integer)
    items_per_s: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    # what an API billed, summed over the run's predictions (NULL: a local engine)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    # the run key's hash while the run is unfinished, NULL once completed: at most one open run
    # per key, so two processes that start the same evaluation share one run
    open_key: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)


class MetricRow(Base):
    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("eval_run_id", "name"),
        Index(None, "name", "eval_run_id", "value"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    eval_run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(50))
    value: Mapped[float] = mapped_column(Float)
    ci_low: Mapped[float | None] = mapped_column(Float)
    ci_high: Mapped[float | None] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (UniqueConstraint("eval_run_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    eval_run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(200))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str | None] = mapped_column(Text)
    raw_output: Mapped[str | None] = mapped_column(Text)
    parsed_answer: Mapped[str | None] = mapped_column(String(500))
    gold: Mapped[str] = mapped_column(Text)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    score: Mapped[float | None] = mapped_column(Float)
    parse_failed: Mapped[bool] = mapped_column(Boolean, default=False)
    logprobs: Mapped[dict | None] = mapped_column(JSON)
    details: Mapped[dict | None] = mapped_column(JSON)
    # what an API billed for the item (NULL: a local engine; cost NULL: no prices known)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# --------------------------------------------------------------------------------- training


class TrainingRunRow(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_uuid: Mapped[str] = mapped_column(String(36), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # pretrain | instruct
    recipe_name: Mapped[str] = mapped_column(String(100))
    recipe_hash: Mapped[str] = mapped_column(String(64))
    base_variant_id: Mapped[int] = mapped_column(ForeignKey("model_variants.id"), index=True)
    output_variant_id: Mapped[int | None] = mapped_column(ForeignKey("model_variants.id"))
    status: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict] = mapped_column(JSON)
    hardware: Mapped[str | None] = mapped_column(String(100))
    world_size: Mapped[int] = mapped_column(Integer)
    tokens_seen: Mapped[int] = mapped_column(Integer, default=0)
    data_mix: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    wall_seconds: Mapped[float | None] = mapped_column(Float)


class TrainingStepRow(Base):
    __tablename__ = "training_steps"
    __table_args__ = (UniqueConstraint("training_run_id", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    grad_norm: Mapped[float | None] = mapped_column(Float)
    tokens_per_s: Mapped[float | None] = mapped_column(Float)
    mfu: Mapped[float | None] = mapped_column(Float)
    tokens_seen: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# --------------------------------------------------------------------------------- analysis


class RescoredRunRow(Base):
    """An evaluation run made by parsing a source run's stored outputs again with another
    extraction rule (`medarena rescore`): no model was called."""

    __tablename__ = "rescored_runs"

    eval_run_id: Mapped[int] = mapped_column(
        ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True
    )
    source_run_id: Mapped[int] = mapped_column(
        ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True
    )
    extraction: Mapped[str] = mapped_column(String(50))  # the rule's registered name
    extraction_version: Mapped[str] = mapped_column(String(50))


class ContaminationCheckRow(Base):
    """One n-gram overlap check of a task's items against a variant's training corpora
    (`medarena contamination`); `check_key` hashes every input, so a rerun reuses it."""

    __tablename__ = "contamination_checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_key: Mapped[str] = mapped_column(String(64), unique=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("model_variants.id"), index=True)
    lineage: Mapped[list] = mapped_column(JSON)  # variant names, the variant first
    task: Mapped[str] = mapped_column(String(100), index=True)
    dataset_hash: Mapped[str] = mapped_column(String(64))
    corpora: Mapped[list] = mapped_column(JSON)  # [{name, origin, path, sha256}]
    method: Mapped[str] = mapped_column(String(50))
    n: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float] = mapped_column(Float)
    code_version: Mapped[str] = mapped_column(String(80))
    n_items: Mapped[int] = mapped_column(Integer)
    n_contaminated: Mapped[int] = mapped_column(Integer)
    documents_read: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ContaminatedItemRow(Base):
    """One item's overlap in a contamination check (every item has a row, clean ones too)."""

    __tablename__ = "contamination_items"
    __table_args__ = (UniqueConstraint("check_id", "item_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_id: Mapped[int] = mapped_column(ForeignKey("contamination_checks.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(200))
    ngrams: Mapped[int] = mapped_column(Integer)  # the item's distinct n-grams
    matched: Mapped[int] = mapped_column(Integer)  # of them found in a corpus
    longest: Mapped[int] = mapped_column(Integer)  # longest run of matched words
    contaminated: Mapped[bool] = mapped_column(Boolean)
    sources: Mapped[list] = mapped_column(JSON)  # [{corpus, document, matched}], most first


# ----------------------------------------------------------------------------------- sweeps


class SweepClaimRow(Base):
    """A worker's claim on one cell of an evaluation sweep (`medarena sweep`), keyed by the
    cell's run key: the primary key makes claiming atomic, so no cell runs twice. A claim
    lives while its holder renews it; a failed cell keeps its row with the error, expired."""

    __tablename__ = "sweep_claims"

    run_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # run_key_hash
    sweep: Mapped[str] = mapped_column(String(100))
    cell: Mapped[str] = mapped_column(String(300))  # variant / task / setting / seed
    holder: Mapped[str] = mapped_column(String(36))  # the worker's uuid
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    slurm_job: Mapped[str | None] = mapped_column(String(50))  # <array job>_<task>
    claimed_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    error: Mapped[str | None] = mapped_column(Text)  # why the cell failed (then expired)
