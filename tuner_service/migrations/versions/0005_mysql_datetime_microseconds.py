"""MariaDB/MySQL: the service's timestamps keep microseconds.

MySQL's plain ``DATETIME`` drops fractions of a second, so heartbeats and lease ends would be
up to a second off; PostgreSQL and SQLite already keep microseconds (nothing to do there).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: table -> (column, nullable) of every timestamp.
COLUMNS = {
    "tuner_studies": [("created_at", False), ("updated_at", False), ("started_at", True),
                      ("finished_at", True)],
    "tuner_workers": [("started_at", False), ("last_heartbeat", False), ("stopped_at", True)],
    "tuner_leases": [("created_at", False), ("updated_at", False)],
    "tuner_artifacts": [("created_at", False)],
    "tuner_engine_states": [("updated_at", False)],
}


def _alter(fsp: int | None) -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for table, columns in COLUMNS.items():
        for column, nullable in columns:
            op.alter_column(table, column, type_=mysql.DATETIME(fsp=fsp),
                            existing_type=sa.DateTime(), existing_nullable=nullable)


def upgrade() -> None:
    _alter(6)


def downgrade() -> None:
    _alter(None)
