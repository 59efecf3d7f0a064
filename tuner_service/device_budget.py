"""``budget.max_device_hours``: once a study's trials have recorded that much device time
(the ``device_seconds`` user attributes, summed), no new trial is handed out; the running ones
finish and the study completes with :data:`DEVICE_BUDGET_REASON`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .optuna_bridge import ATTR_DEVICE_SECONDS

if TYPE_CHECKING:
    from .models import StudyRow
    from .service import Services
    from .spec import StudySpec

log = logging.getLogger(__name__)

DEVICE_BUDGET_REASON = "device-hour budget reached"


def device_hours_used(services: Services, row: StudyRow) -> float:
    """The device time the study's trials have recorded, in hours."""
    seconds = services.reads.overview(row.optuna_study_id).sums[ATTR_DEVICE_SECONDS]
    return float(seconds) / 3600.0


def close_if_device_budget_spent(services: Services, row: StudyRow, spec: StudySpec) -> bool:
    """Close the study's budget (no more hand-outs) when its device hours are used up.
    Call after a trial's device seconds are recorded. Returns True when it closed it."""
    limit = spec.budget.max_device_hours
    if limit is None:
        return False
    used = device_hours_used(services, row)
    if used < limit:
        return False
    n = services.repo.close_budget(row.id, reason=DEVICE_BUDGET_REASON)
    log.info("study %s: %.4f of %.4f device hours used: n_trials closed at %d",
             row.id, used, limit, n)
    return True
