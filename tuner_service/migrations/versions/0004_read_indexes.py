"""Indexes for reads in O(page): trial pages, state counts, a page's workers, pending evaluations.

Revision ID: 0004
Revises: 0003

Two of them are on Optuna's own ``trials`` table (``optuna.storages.RDBStorage``), whose schema
has only a single-column index on ``study_id``:

* ``ix_trials_study_id_number`` (study_id, number): a page ``ORDER BY number LIMIT/OFFSET``
  walks the index instead of sorting the study;
* ``ix_trials_study_id_state_number`` (study_id, state, number): ``GROUP BY state`` counts from
  the index alone, and pages of one state walk it in order.

How this stays compatible with Optuna: the indexes are plain, non-unique secondary indexes, so
nothing Optuna writes can violate them and nothing it reads changes (``optuna.load_study``,
``optuna-dashboard`` and Optuna's own queries simply may use them). Optuna's schema check
compares only its ``version_info``/``alembic_version`` rows, never indexes, and its models
declare no index with these names. Optuna's tables are created by Optuna (``tuner-service
migrate`` builds its ``RDBStorage`` first, then runs these migrations, which are versioned in
``tuner_alembic_version``, apart from Optuna's ``alembic_version``). Should a future
``optuna storage upgrade`` rebuild ``trials`` without them, nothing breaks: the service's reads
stay correct, only slower, and ``tuner-service migrate`` after ``downgrade 0003`` restores them.
``downgrade`` drops exactly these indexes. (Tested: tests/service/test_reads.py opens the
migrated database with ``optuna.load_study`` and with optuna-dashboard's API.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPTUNA_INDEXES = {
    "ix_trials_study_id_number": ["study_id", "number"],
    "ix_trials_study_id_state_number": ["study_id", "state", "number"],
}


def upgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("trials"):
        raise RuntimeError(
            "Optuna's tables are missing: run 'tuner-service migrate', which creates them first"
        )
    for name, columns in OPTUNA_INDEXES.items():
        op.create_index(name, "trials", columns)
    op.create_index(
        "ix_tuner_leases_study_trial_number", "tuner_leases", ["study_id", "trial_number"]
    )
    op.create_index("ix_tuner_studies_evaluation_state", "tuner_studies", ["evaluation_state"])


def downgrade() -> None:
    op.drop_index("ix_tuner_studies_evaluation_state", table_name="tuner_studies")
    op.drop_index("ix_tuner_leases_study_trial_number", table_name="tuner_leases")
    for name in OPTUNA_INDEXES:
        op.drop_index(name, table_name="trials")
