"""At most one unfinished evaluation run per run key: `eval_runs.open_key` holds the key's hash
while a run is open (NULL once completed) under a unique constraint, so two processes that
start the same evaluation at once end with one run instead of two.

Runs left unfinished by older versions keep a NULL key; they are still found and resumed by
their key columns.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("eval_runs") as batch:
        batch.add_column(sa.Column("open_key", sa.String(length=64), nullable=True))
        batch.create_unique_constraint(batch.f("uq_eval_runs_open_key"), ["open_key"])


def downgrade() -> None:
    with op.batch_alter_table("eval_runs") as batch:
        batch.drop_constraint(batch.f("uq_eval_runs_open_key"), type_="unique")
        batch.drop_column("open_key")
