"""The run key covers every setting that can change a stored output: `eval_runs.settings_hash`
(sampling, generation length and stops, metric settings and encoders, the extraction rule;
medarena.evaluate.identity).

Runs stored before keep NULL: they stay readable (leaderboard, compare, queries) but no new
evaluation's key matches them, since their settings were not recorded in the key. Runs left
unfinished by older versions are not resumed; the same command starts a new run.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ADD COLUMN in place (no batch copy: with foreign keys on, a copy-and-drop of eval_runs
    # would cascade to every prediction and metric)
    op.add_column("eval_runs", sa.Column("settings_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("eval_runs", "settings_hash")
