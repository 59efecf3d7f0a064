"""The SQL that sizes the worker fleet, written once.

``TRIALS_WAITING_TO_BE_CLAIMED`` feeds the ``tuner_trials_waiting_to_be_claimed`` metric
(``Repository.metrics_snapshot``) and, as the same text, the KEDA ``postgresql`` trigger
that scales the Kubernetes worker Deployment (``deploy/kubernetes/base/worker-scaledobject.yaml``;
a test checks that the manifest holds exactly these queries). Plain SQL that SQLite,
PostgreSQL and MySQL/MariaDB all run; one row, one number.
"""

from __future__ import annotations

from .states import BUDGET_STATES, HANDS_OUT_TRIALS, LeaseState


def _quoted(values: list[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_HANDS_OUT = _quoted([s.value for s in HANDS_OUT_TRIALS])
_COUNTED = _quoted([s.value for s in BUDGET_STATES])

#: Budget left in the studies that hand out trials (queued, running): ``n_trials`` less their
#: active and finished leases, summed over studies (never below 0 for one study). Optuna's
#: WAITING trials (warm starts, re-queued trials) are handed out within this budget.
TRIALS_WAITING_TO_BE_CLAIMED = (
    "SELECT COALESCE(SUM(CASE WHEN b.budget_left > 0 THEN b.budget_left ELSE 0 END), 0) "
    "FROM (SELECT s.n_trials - (SELECT COUNT(*) FROM tuner_leases l "
    f"WHERE l.study_id = s.id AND l.state IN ({_COUNTED})) AS budget_left "
    f"FROM tuner_studies s WHERE s.status IN ({_HANDS_OUT})) b"
)

#: Trials running now (active leases): the workers that are busy. The autoscaler keeps at
#: least this many, so that scaling down does not stop trials in the middle.
TRIALS_RUNNING = (
    f"SELECT COUNT(*) FROM tuner_leases WHERE state = '{LeaseState.ACTIVE.value}'"
)
