"""Initial schema: the synced registry, benchmark tasks, eval runs, metrics, per-item
predictions and published reference results.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_families",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("developer", sa.String(length=200), nullable=False),
        sa.Column("license", sa.String(length=100), nullable=False),
        sa.Column("paper", sa.String(length=300), nullable=True),
        sa.Column("continued_from", sa.String(length=200), nullable=True),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("synced_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_families")),
        sa.UniqueConstraint("name", name=op.f("uq_model_families_name")),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("name", name=op.f("uq_tasks_name")),
    )
    op.create_table(
        "model_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("family_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("params_b", sa.Float(), nullable=False),
        sa.Column("source_kind", sa.String(length=20), nullable=False),
        sa.Column("location", sa.String(length=500), nullable=False),
        sa.Column("revision", sa.String(length=100), nullable=True),
        sa.Column("context_length", sa.Integer(), nullable=False),
        sa.Column("architecture", sa.String(length=50), nullable=False),
        sa.Column("dtype", sa.String(length=20), nullable=False),
        sa.Column("quant_method", sa.String(length=20), nullable=True),
        sa.Column("quant_bits", sa.Integer(), nullable=True),
        sa.Column("quant_group_size", sa.Integer(), nullable=True),
        sa.Column("quant_scheme", sa.String(length=50), nullable=True),
        sa.Column("chat_template", sa.String(length=100), nullable=True),
        sa.Column("instruction_tuned", sa.Boolean(), nullable=False),
        sa.Column("gated", sa.Boolean(), nullable=False),
        sa.Column("tensor_parallel", sa.Integer(), nullable=False),
        sa.Column("in_registry", sa.Boolean(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("synced_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["model_families.id"],
            name=op.f("fk_model_variants_family_id_model_families"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["model_variants.id"],
            name=op.f("fk_model_variants_parent_id_model_variants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_variants")),
        sa.UniqueConstraint("name", name=op.f("uq_model_variants_name")),
    )
    with op.batch_alter_table("model_variants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_variants_family_id"), ["family_id"], unique=False
        )

    op.create_table(
        "eval_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_uuid", sa.String(length=36), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("variant_revision", sa.String(length=100), nullable=True),
        sa.Column("weights_hash", sa.String(length=64), nullable=True),
        sa.Column("dataset_hash", sa.String(length=64), nullable=False),
        sa.Column("prompt_template_hash", sa.String(length=64), nullable=False),
        sa.Column("scoring_mode", sa.String(length=30), nullable=False),
        sa.Column("shots", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("engine", sa.String(length=30), nullable=False),
        sa.Column("engine_version", sa.String(length=50), nullable=False),
        sa.Column("code_version", sa.String(length=80), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=True),
        sa.Column("items_per_s", sa.Float(), nullable=True),
        sa.Column("tokens_per_s", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_eval_runs_task_id_tasks")),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["model_variants.id"],
            name=op.f("fk_eval_runs_variant_id_model_variants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_runs")),
        sa.UniqueConstraint("run_uuid", name=op.f("uq_eval_runs_run_uuid")),
    )
    with op.batch_alter_table("eval_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_eval_runs_task_id"), ["task_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_eval_runs_variant_id_task_id_created_at"),
            ["variant_id", "task_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "reference_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=50), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("shots", sa.Integer(), nullable=True),
        sa.Column("setting", sa.Text(), nullable=False),
        sa.Column("source_key", sa.String(length=100), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("table_ref", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["model_variants.id"],
            name=op.f("fk_reference_results_variant_id_model_variants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_results")),
        sa.UniqueConstraint(
            "variant_id",
            "task",
            "metric",
            "source_key",
            name=op.f("uq_reference_results_variant_id_task_metric_source_key"),
        ),
    )
    with op.batch_alter_table("reference_results", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_reference_results_variant_id"), ["variant_id"], unique=False
        )

    op.create_table(
        "metrics",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("eval_run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_run_id"],
            ["eval_runs.id"],
            name=op.f("fk_metrics_eval_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metrics")),
        sa.UniqueConstraint("eval_run_id", "name", name=op.f("uq_metrics_eval_run_id_name")),
    )
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_metrics_name_eval_run_id_value"),
            ["name", "eval_run_id", "value"],
            unique=False,
        )

    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("eval_run_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("prompt_hash", sa.String(length=64), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("raw_output", sa.Text(), nullable=True),
        sa.Column("parsed_answer", sa.String(length=500), nullable=True),
        sa.Column("gold", sa.Text(), nullable=False),
        sa.Column("correct", sa.Boolean(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("parse_failed", sa.Boolean(), nullable=False),
        sa.Column("logprobs", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_run_id"],
            ["eval_runs.id"],
            name=op.f("fk_predictions_eval_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.UniqueConstraint(
            "eval_run_id", "item_id", name=op.f("uq_predictions_eval_run_id_item_id")
        ),
    )


def downgrade() -> None:
    for table in (
        "predictions",
        "metrics",
        "reference_results",
        "eval_runs",
        "model_variants",
        "tasks",
        "model_families",
    ):
        op.drop_table(table)
