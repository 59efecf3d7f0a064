"""Leases record how many of their study's leases were active when they were handed out.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tuner_leases") as batch:
        batch.add_column(sa.Column("active_at_claim", sa.Integer, nullable=True))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ has it): batch mode would copy the
    # table, and SQLite's DROP TABLE of the old copy cascades to the rows that reference it.
    op.drop_column("tuner_leases", "active_at_claim")
