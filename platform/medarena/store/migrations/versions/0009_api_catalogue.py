"""`model_variants.params_b` may be NULL: the size of a model behind an API that its provider
never published (GPT-3.5, GPT-4), shown as undisclosed.

SQLite cannot drop a NOT NULL in place: batch mode copies model_variants and drops the
original, which medarena.store.database runs with foreign keys off (and checks them before it
commits), so the rows that refer to variants are kept as they are.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_variants") as batch:
        batch.alter_column("params_b", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    undisclosed = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM model_variants WHERE params_b IS NULL")
    )
    if undisclosed:
        raise RuntimeError(
            f"{undisclosed} variant(s) have no params_b (API models of undisclosed size): "
            "revision 0008 requires one; remove them before downgrading"
        )
    with op.batch_alter_table("model_variants") as batch:
        batch.alter_column("params_b", existing_type=sa.Float(), nullable=False)
