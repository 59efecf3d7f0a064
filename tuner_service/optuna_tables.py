"""Optuna's trial tables (``optuna.storages.RDBStorage``, schema ``v3.2.0.a``) as SQLAlchemy
Core ``sa.table()`` declarations: only the columns the service reads or the benchmarks write,
typed as Optuna types them (its enums are native enum types on PostgreSQL). Plus the
conversions ``RDBStorage`` applies when it builds a ``FrozenTrial`` from these rows. The
queries themselves are in :mod:`tuner_service.reads`.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from optuna.study import StudyDirection
from optuna.trial import TrialState

_STATE = sa.Enum(TrialState, name="trialstate", create_constraint=False)

TRIALS = sa.table(
    "trials",
    sa.column("trial_id", sa.Integer),
    sa.column("number", sa.Integer),
    sa.column("study_id", sa.Integer),
    sa.column("state", _STATE),
    sa.column("datetime_start", sa.DateTime),
    sa.column("datetime_complete", sa.DateTime),
)
STUDY_DIRECTIONS = sa.table(
    "study_directions",
    sa.column("study_id", sa.Integer),
    sa.column("objective", sa.Integer),
    sa.column("direction", sa.Enum(StudyDirection, name="studydirection", create_constraint=False)),
)
TRIAL_VALUES = sa.table(
    "trial_values",
    sa.column("trial_id", sa.Integer),
    sa.column("objective", sa.Integer),
    sa.column("value", sa.Float),
    sa.column(
        "value_type",
        sa.Enum("FINITE", "INF_POS", "INF_NEG", name="trialvaluetype", create_constraint=False),
    ),
)
TRIAL_PARAMS = sa.table(
    "trial_params",
    sa.column("param_id", sa.Integer),
    sa.column("trial_id", sa.Integer),
    sa.column("param_name", sa.String),
    sa.column("param_value", sa.Float),
    sa.column("distribution_json", sa.Text),
)
TRIAL_INTERMEDIATE_VALUES = sa.table(
    "trial_intermediate_values",
    sa.column("trial_id", sa.Integer),
    sa.column("step", sa.Integer),
    sa.column("intermediate_value", sa.Float),
    sa.column(
        "intermediate_value_type",
        sa.Enum(
            "FINITE",
            "INF_POS",
            "INF_NEG",
            "NAN",
            name="trialintermediatevaluetype",
            create_constraint=False,
        ),
    ),
)
TRIAL_USER_ATTRS = sa.table(
    "trial_user_attributes",
    sa.column("trial_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("value_json", sa.Text),
)
TRIAL_SYSTEM_ATTRS = sa.table(
    "trial_system_attributes",
    sa.column("trial_id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("value_json", sa.Text),
)

_STORED = {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}



def state_of(value: Any) -> TrialState:
    """A ``state`` column's value (an enum, or its name where the driver gives text)."""
    return value if isinstance(value, TrialState) else TrialState[str(value)]


def stored_value(value: float | None, value_type: Any) -> float:
    """A value from its stored form (``±inf`` and NaN are a type with a NULL value)."""
    kind = getattr(value_type, "name", value_type)
    return _STORED[kind] if kind in _STORED else float(value)  # type: ignore[arg-type]


def local_time(dt: datetime | None) -> datetime | None:
    """Optuna stores naive UTC and shows naive local time (as ``RDBStorage`` does)."""
    if dt is None:
        return None
    return dt.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)
