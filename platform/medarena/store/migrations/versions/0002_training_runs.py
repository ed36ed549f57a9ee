"""Training runs and their step metrics; variants learn which run produced them.

Adding `model_variants.produced_by_run_id` with a foreign key is an ALTER that SQLite cannot
do in place: the batch mode of Alembic rebuilds the table (render_as_batch in env.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_uuid", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("recipe_name", sa.String(length=100), nullable=False),
        sa.Column("recipe_hash", sa.String(length=64), nullable=False),
        sa.Column("base_variant_id", sa.Integer(), nullable=False),
        sa.Column("output_variant_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("hardware", sa.String(length=100), nullable=True),
        sa.Column("world_size", sa.Integer(), nullable=False),
        sa.Column("tokens_seen", sa.Integer(), nullable=False),
        sa.Column("data_mix", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("wall_seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["base_variant_id"],
            ["model_variants.id"],
            name=op.f("fk_training_runs_base_variant_id_model_variants"),
        ),
        sa.ForeignKeyConstraint(
            ["output_variant_id"],
            ["model_variants.id"],
            name=op.f("fk_training_runs_output_variant_id_model_variants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
        sa.UniqueConstraint("run_uuid", name=op.f("uq_training_runs_run_uuid")),
    )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_training_runs_base_variant_id"), ["base_variant_id"], unique=False
        )

    op.create_table(
        "training_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("training_run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=False),
        sa.Column("lr", sa.Float(), nullable=True),
        sa.Column("grad_norm", sa.Float(), nullable=True),
        sa.Column("tokens_per_s", sa.Float(), nullable=True),
        sa.Column("mfu", sa.Float(), nullable=True),
        sa.Column("tokens_seen", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["training_run_id"],
            ["training_runs.id"],
            name=op.f("fk_training_steps_training_run_id_training_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_steps")),
        sa.UniqueConstraint(
            "training_run_id", "step", name=op.f("uq_training_steps_training_run_id_step")
        ),
    )
    with op.batch_alter_table("model_variants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("produced_by_run_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_model_variants_produced_by_run_id_training_runs"),
            "training_runs",
            ["produced_by_run_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("model_variants", schema=None) as batch_op:
        batch_op.drop_constraint(
            op.f("fk_model_variants_produced_by_run_id_training_runs"), type_="foreignkey"
        )
        batch_op.drop_column("produced_by_run_id")
    op.drop_table("training_steps")
    op.drop_table("training_runs")
