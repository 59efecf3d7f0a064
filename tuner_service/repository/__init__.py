"""All SQL of the control plane, one named method per query or unit of work, grouped by concern:
studies, leases (claim, end, budget), workers, the final evaluation's lease, engine state,
artifacts, metrics.

:class:`Repository` is the one object callers hold; each concern lives in its own module.
Every method runs in its own short transaction, retried on transient errors (see
:mod:`.base`).
"""

from __future__ import annotations

from ..states import BUDGET_STATES
from .artifact_rows import ArtifactsMixin
from .base import Lease, LeaseCounts, utcnow
from .engine_state import EngineStateFn, EngineStateMixin
from .evaluations import EvaluationsMixin
from .leases import LeasesMixin
from .metrics import MetricsMixin, MetricsSnapshot
from .studies import StudiesMixin
from .worker_rows import WorkersMixin


class Repository(
    StudiesMixin,
    LeasesMixin,
    WorkersMixin,
    EvaluationsMixin,
    EngineStateMixin,
    ArtifactsMixin,
    MetricsMixin,
):
    """The control plane's database access (one facade over the concern modules)."""


__all__ = [
    "BUDGET_STATES",
    "EngineStateFn",
    "Lease",
    "LeaseCounts",
    "MetricsSnapshot",
    "Repository",
    "utcnow",
]
