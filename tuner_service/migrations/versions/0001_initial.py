"""Initial service tables: studies, workers, leases, artifacts.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_Blob = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "tuner_studies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("optuna_study_id", sa.Integer, nullable=False, unique=True),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("engine_kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("status_reason", sa.Text),
        sa.Column("n_trials", sa.Integer, nullable=False),
        sa.Column("max_parallel", sa.Integer, nullable=False),
        sa.Column("timeout_s", sa.Float),
        sa.Column("lease_seq", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("evaluation_state", sa.String(16)),
        sa.Column("evaluation", sa.JSON),
    )
    op.create_table(
        "tuner_workers",
        sa.Column("id", sa.String(120), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("device", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("last_heartbeat", sa.DateTime, nullable=False),
        sa.Column("stopped_at", sa.DateTime),
        sa.Column("info", sa.JSON),
    )
    op.create_table(
        "tuner_leases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "study_id",
            sa.Integer,
            sa.ForeignKey("tuner_studies.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("worker_id", sa.String(120), sa.ForeignKey("tuner_workers.id"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("trial_id", sa.Integer),
        sa.Column("trial_number", sa.Integer),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("reason", sa.Text),
    )
    op.create_index("ix_tuner_leases_study_state", "tuner_leases", ["study_id", "state"])
    op.create_table(
        "tuner_artifacts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("data", _Blob, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tuner_artifacts")
    op.drop_index("ix_tuner_leases_study_state", table_name="tuner_leases")
    op.drop_table("tuner_leases")
    op.drop_table("tuner_workers")
    op.drop_table("tuner_studies")
