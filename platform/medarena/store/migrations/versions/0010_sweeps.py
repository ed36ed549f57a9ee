"""Evaluation sweeps: `sweep_claims` holds one row per cell a worker is running (or failed),
keyed by the cell's run key, so two workers or two sweeps never run a cell twice.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sweep_claims",
        sa.Column("run_key", sa.String(length=64), nullable=False),
        sa.Column("sweep", sa.String(length=100), nullable=False),
        sa.Column("cell", sa.String(length=300), nullable=False),
        sa.Column("holder", sa.String(length=36), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("slurm_job", sa.String(length=50), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_key", name=op.f("pk_sweep_claims")),
    )
    op.create_index(
        op.f("ix_sweep_claims_expires_at"), "sweep_claims", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sweep_claims_expires_at"), table_name="sweep_claims")
    op.drop_table("sweep_claims")
