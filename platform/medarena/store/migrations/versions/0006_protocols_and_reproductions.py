"""Published results carry their protocol (a preset or one named in words), item count, split
and, for a task that is no benchmark spec, the reason, plus the setting a measured run needs to
stand beside them (filled at sync from the protocol); `reproductions` keeps every
`medarena reproduce` report (published vs measured under the same protocol).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_REFERENCE_COLUMNS = (
    sa.Column("protocol", sa.String(length=100), nullable=True),
    sa.Column("other_protocol", sa.Text(), nullable=True),
    sa.Column("items", sa.Integer(), nullable=True),
    sa.Column("split", sa.String(length=50), nullable=True),
    sa.Column("unmapped", sa.Text(), nullable=True),
    sa.Column("expected_mode", sa.String(length=30), nullable=True),
    sa.Column("expected_shots", sa.Integer(), nullable=True),
)


def upgrade() -> None:
    # ADD COLUMN in place: published results are rewritten from the YAML at the next sync
    for column in NEW_REFERENCE_COLUMNS:
        op.add_column("reference_results", column)
    op.create_table(
        "reproductions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=100), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=50), nullable=False),
        sa.Column("published", sa.Float(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("measured", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("sd", sa.Float(), nullable=True),
        sa.Column("n", sa.Integer(), nullable=True),
        sa.Column("verdict", sa.String(length=20), nullable=False),
        sa.Column("mismatches", sa.JSON(), nullable=False),
        sa.Column("eval_run_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["model_variants.id"],
            name=op.f("fk_reproductions_variant_id_model_variants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reproductions")),
    )
    op.create_index(op.f("ix_reproductions_protocol"), "reproductions", ["protocol"])
    op.create_index(op.f("ix_reproductions_variant_id"), "reproductions", ["variant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_reproductions_variant_id"), table_name="reproductions")
    op.drop_index(op.f("ix_reproductions_protocol"), table_name="reproductions")
    op.drop_table("reproductions")
    for column in reversed(NEW_REFERENCE_COLUMNS):
        op.drop_column("reference_results", column.name)
