"""Analysis of stored results: `rescored_runs` links a run made by parsing another run's stored
outputs again (`medarena rescore`) to its source; `contamination_checks` and
`contamination_items` keep n-gram overlap checks of a task's items against a variant's training
corpora (`medarena contamination`).

New tables only: eval_runs is not copied (a batch copy would cascade to its predictions).

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rescored_runs",
        sa.Column("eval_run_id", sa.Integer(), nullable=False),
        sa.Column("source_run_id", sa.Integer(), nullable=False),
        sa.Column("extraction", sa.String(length=50), nullable=False),
        sa.Column("extraction_version", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["eval_run_id"],
            ["eval_runs.id"],
            name=op.f("fk_rescored_runs_eval_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_run_id"],
            ["eval_runs.id"],
            name=op.f("fk_rescored_runs_source_run_id_eval_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("eval_run_id", name=op.f("pk_rescored_runs")),
    )
    op.create_index(
        op.f("ix_rescored_runs_source_run_id"), "rescored_runs", ["source_run_id"], unique=False
    )
    op.create_table(
        "contamination_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("check_key", sa.String(length=64), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("lineage", sa.JSON(), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("dataset_hash", sa.String(length=64), nullable=False),
        sa.Column("corpora", sa.JSON(), nullable=False),
        sa.Column("method", sa.String(length=50), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("code_version", sa.String(length=80), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("n_contaminated", sa.Integer(), nullable=False),
        sa.Column("documents_read", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["model_variants.id"],
            name=op.f("fk_contamination_checks_variant_id_model_variants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contamination_checks")),
        sa.UniqueConstraint("check_key", name=op.f("uq_contamination_checks_check_key")),
    )
    op.create_index(
        op.f("ix_contamination_checks_variant_id"),
        "contamination_checks",
        ["variant_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_contamination_checks_task"), "contamination_checks", ["task"], unique=False
    )
    op.create_table(
        "contamination_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(length=200), nullable=False),
        sa.Column("ngrams", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("longest", sa.Integer(), nullable=False),
        sa.Column("contaminated", sa.Boolean(), nullable=False),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["check_id"],
            ["contamination_checks.id"],
            name=op.f("fk_contamination_items_check_id_contamination_checks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contamination_items")),
        sa.UniqueConstraint(
            "check_id", "item_id", name=op.f("uq_contamination_items_check_id_item_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("contamination_items")
    op.drop_index(op.f("ix_contamination_checks_task"), table_name="contamination_checks")
    op.drop_index(op.f("ix_contamination_checks_variant_id"), table_name="contamination_checks")
    op.drop_table("contamination_checks")
    op.drop_index(op.f("ix_rescored_runs_source_run_id"), table_name="rescored_runs")
    op.drop_table("rescored_runs")
