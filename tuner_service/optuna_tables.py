"""Optuna's trial tables (``optuna.storages.RDBStorage``, schema ``v3.2.0.a``) as SQLAlchemy
Core ``sa.table()`` declarations: only the columns the service reads or the benchmarks write,
typed as Optuna types them (its enums are native enum types on PostgreSQL). And
:func:`frozen_trials`: whole trials by id, built exactly as ``RDBStorage`` builds a
``FrozenTrial`` (values from their stored form, parameters in their external form, datetimes
in local time). The queries that choose which trials are in :mod:`tuner_service.reads`.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import Connection

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


def frozen_trials(conn: Connection, trial_ids: Sequence[int]) -> list[FrozenTrial]:
    """Whole trials for ``trial_ids`` (five indexed ``IN`` queries), ordered by number."""
    if not trial_ids:
        return []
    ids = list(trial_ids)
    t = TRIALS.c
    rows = conn.execute(
        sa.select(
            t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete
        ).where(t.trial_id.in_(ids))
    ).all()
    values: dict[int, dict[int, float]] = {i: {} for i in ids}
    v = TRIAL_VALUES.c
    for tid, objective, value, vtype in conn.execute(
        sa.select(v.trial_id, v.objective, v.value, v.value_type).where(v.trial_id.in_(ids))
    ).all():
        values[tid][objective] = stored_value(value, vtype)
    params: dict[int, dict[str, Any]] = {i: {} for i in ids}
    dists: dict[int, dict[str, Any]] = {i: {} for i in ids}
    p = TRIAL_PARAMS.c
    for tid, name, value, dist_json in conn.execute(
        sa.select(p.trial_id, p.param_name, p.param_value, p.distribution_json)
        .where(p.trial_id.in_(ids))
        .order_by(p.param_id)
    ).all():
        dist = _distribution(dist_json)
        dists[tid][name] = dist
        params[tid][name] = dist.to_external_repr(value)
    inter: dict[int, dict[int, float]] = {i: {} for i in ids}
    iv = TRIAL_INTERMEDIATE_VALUES.c
    for tid, step, value, vtype in conn.execute(
        sa.select(iv.trial_id, iv.step, iv.intermediate_value, iv.intermediate_value_type).where(
            iv.trial_id.in_(ids)
        )
    ).all():
        inter[tid][step] = stored_value(value, vtype)
    user = _attrs(conn, TRIAL_USER_ATTRS, ids)
    system = _attrs(conn, TRIAL_SYSTEM_ATTRS, ids)
    out = [
        FrozenTrial(
            number=int(number),
            state=state_of(state),
            value=None,
            values=[values[tid][k] for k in sorted(values[tid])] if values[tid] else None,
            datetime_start=local_time(start),
            datetime_complete=local_time(complete),
            params=params[tid],
            distributions=dists[tid],
            user_attrs=user[tid],
            system_attrs=system[tid],
            intermediate_values=inter[tid],
            trial_id=int(tid),
        )
        for tid, number, state, start, complete in rows
    ]
    return sorted(out, key=lambda ft: ft.number)


@functools.lru_cache(maxsize=4096)
def _distribution(dist_json: str) -> BaseDistribution:
    """Distributions are immutable and repeat across trials: parse each JSON text once."""
    return json_to_distribution(dist_json)


def _attrs(conn: Connection, table: sa.TableClause, ids: list[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {i: {} for i in ids}
    c = table.c
    for tid, key, raw in conn.execute(
        sa.select(c.trial_id, c.key, c.value_json).where(c.trial_id.in_(ids))
    ).all():  # fetchall: one call for the page's rows
        out[tid][key] = json.loads(raw)
    return out
