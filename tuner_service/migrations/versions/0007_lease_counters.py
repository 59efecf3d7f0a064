"""Each study row counts its leases by state (active, finished, lost).

The claim, a study's summary and its completion check read these three numbers instead of
counting the study's lease rows (``GROUP BY state``: a walk of every lease the study ever had,
100,000 rows for a long study). Every change of a lease's state updates them in the same
transaction (``tuner_service.repository.leases``); the upgrade fills them from the rows.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = {"leases_active": "active", "leases_finished": "finished", "leases_lost": "lost"}


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column(
            "tuner_studies", sa.Column(column, sa.Integer, nullable=False, server_default="0")
        )
    studies = sa.table(
        "tuner_studies", sa.column("id", sa.Integer), *(sa.column(c, sa.Integer) for c in COLUMNS)
    )
    leases = sa.table(
        "tuner_leases", sa.column("study_id", sa.Integer), sa.column("state", sa.String)
    )
    for column, state in COLUMNS.items():
        count = (
            sa.select(sa.func.count())
            .select_from(leases)
            .where(leases.c.study_id == studies.c.id, leases.c.state == state)
            .scalar_subquery()
        )
        op.execute(sa.update(studies).values({column: count}))


def downgrade() -> None:
    # A plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ has it): batch mode would copy the
    # table, and SQLite's DROP TABLE of the old copy cascades to the leases that reference it.
    for column in reversed(COLUMNS):
        op.drop_column("tuner_studies", column)
