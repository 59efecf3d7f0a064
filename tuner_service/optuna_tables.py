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


#: A trial's own row, as :func:`trials_from_rows` takes it.
TRIAL_ROWS = sa.select(
    TRIALS.c.trial_id,
    TRIALS.c.number,
    TRIALS.c.state,
    TRIALS.c.datetime_start,
    TRIALS.c.datetime_complete,
)


def frozen_trials(conn: Connection, trial_ids: Sequence[int]) -> list[FrozenTrial]:
    """Whole trials for ``trial_ids``, ordered by number (two queries)."""
    if not trial_ids:
        return []
    rows = conn.execute(TRIAL_ROWS.where(TRIALS.c.trial_id.in_(list(trial_ids)))).all()
    return trials_from_rows(conn, rows)


def trials_from_rows(conn: Connection, rows: Sequence[Any]) -> list[FrozenTrial]:
    """Whole trials for :data:`TRIAL_ROWS` rows, ordered by number: their parameters,
    values, intermediate values and attributes come in one ``UNION ALL`` query (one round
    trip, whatever the page size)."""
    if not rows:
        return []
    ids = [int(r[0]) for r in rows]
    values: dict[int, dict[int, float]] = {i: {} for i in ids}
    inter: dict[int, dict[int, float]] = {i: {} for i in ids}
    params: dict[int, list[tuple[int, str, float, str]]] = {i: [] for i in ids}
    user: dict[int, dict[str, Any]] = {i: {} for i in ids}
    system: dict[int, dict[str, Any]] = {i: {} for i in ids}
    for kind, tid, key, order, num, text in conn.execute(_children(ids)).all():
        if kind == "p":
            params[tid].append((order, key, num, text))
        elif kind == "v":
            values[tid][order] = stored_value(num, text)
        elif kind == "i":
            inter[tid][order] = stored_value(num, text)
        else:
            (user if kind == "u" else system)[tid][key] = json.loads(text)
    out = []
    for tid, number, state, start, complete in rows:
        dists = {name: _distribution(d) for _, name, _, d in sorted(params[tid])}
        out.append(
            FrozenTrial(
                number=int(number),
                state=state_of(state),
                value=None,
                values=[values[tid][k] for k in sorted(values[tid])] if values[tid] else None,
                datetime_start=local_time(start),
                datetime_complete=local_time(complete),
                params={
                    name: dists[name].to_external_repr(v) for _, name, v, _ in params[tid]
                },
                distributions=dists,
                user_attrs=user[tid],
                system_attrs=system[tid],
                intermediate_values=inter[tid],
                trial_id=int(tid),
            )
        )
    return sorted(out, key=lambda ft: ft.number)


def _children(ids: list[int]) -> sa.CompoundSelect:
    """``(kind, trial_id, key, order, number, text)`` rows of the five per-trial tables."""
    p, v, i = TRIAL_PARAMS.c, TRIAL_VALUES.c, TRIAL_INTERMEDIATE_VALUES.c
    u, s = TRIAL_USER_ATTRS.c, TRIAL_SYSTEM_ATTRS.c
    no_key, no_order, no_num = sa.null(), sa.null(), sa.null()

    def kind(k: str) -> Any:
        return sa.literal_column(f"'{k}'")

    return sa.union_all(
        sa.select(
            kind("p").label("kind"),
            p.trial_id,
            p.param_name.label("key"),
            p.param_id.label("ord"),
            p.param_value.label("num"),
            p.distribution_json.label("text"),
        ).where(p.trial_id.in_(ids)),
        sa.select(
            kind("v"), v.trial_id, no_key, v.objective, v.value, sa.cast(v.value_type, sa.Text)
        ).where(v.trial_id.in_(ids)),
        sa.select(
            kind("i"),
            i.trial_id,
            no_key,
            i.step,
            i.intermediate_value,
            sa.cast(i.intermediate_value_type, sa.Text),
        ).where(i.trial_id.in_(ids)),
        sa.select(kind("u"), u.trial_id, u.key, no_order, no_num, u.value_json).where(
            u.trial_id.in_(ids)
        ),
        sa.select(kind("s"), s.trial_id, s.key, no_order, no_num, s.value_json).where(
            s.trial_id.in_(ids)
        ),
    )


@functools.lru_cache(maxsize=4096)
def _distribution(dist_json: str) -> BaseDistribution:
    """Distributions are immutable and repeat across trials: parse each JSON text once."""
    return json_to_distribution(dist_json)
