"""The final evaluation runs under a lease: its holder and how many times it was taken.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tuner_studies") as batch:
        batch.add_column(sa.Column("evaluation_worker_id", sa.String(120), nullable=True))
        batch.add_column(
            sa.Column("evaluation_attempts", sa.Integer, nullable=False, server_default="0")
        )


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ has it): batch mode would copy the
    # table, and SQLite's DROP TABLE of the old copy cascades to the rows that reference it.
    op.drop_column("tuner_studies", "evaluation_attempts")
    op.drop_column("tuner_studies", "evaluation_worker_id")
