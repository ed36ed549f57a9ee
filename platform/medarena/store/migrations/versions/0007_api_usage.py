"""What an API billed: tokens in and out and their cost per prediction and, summed, per
evaluation run (NULL on runs of local engines, and on runs stored before).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("predictions", "eval_runs")


def _columns() -> tuple[sa.Column, ...]:
    return (
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
    )


def upgrade() -> None:
    # ADD COLUMN in place (a batch copy of eval_runs would cascade to its predictions)
    for table in TABLES:
        for column in _columns():
            op.add_column(table, column)


def downgrade() -> None:
    for table in TABLES:
        for column in reversed(_columns()):
            op.drop_column(table, column.name)
