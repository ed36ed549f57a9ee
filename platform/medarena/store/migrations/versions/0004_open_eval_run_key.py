"""At most one unfinished evaluation run per run key: `eval_runs.open_key` holds the key's hash
while a run is open (NULL once completed) under a unique index, so two processes that
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
    # a unique index, not a table constraint: SQLite adds it in place, where a constraint would
    # make batch mode copy eval_runs and drop the original, which with foreign keys on deletes
    # (cascades to) every prediction and metric
    with op.batch_alter_table("eval_runs") as batch:
        batch.add_column(sa.Column("open_key", sa.String(length=64), nullable=True))
    op.create_index(op.f("ix_eval_runs_open_key"), "eval_runs", ["open_key"], unique=True)


def downgrade() -> None:
    op.drop_index(op.f("ix_eval_runs_open_key"), table_name="eval_runs")
    # ALTER TABLE ... DROP COLUMN in place (SQLite >= 3.35), not batch mode's copy-and-drop
    op.drop_column("eval_runs", "open_key")
