"""Handing out work: the claim across studies, ending a lease, and completing a study.

Workers call these; the policy of *which parameters* a trial gets belongs to the engines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .models import StudyRow
from .repository import Lease, Repository
from .states import LeaseState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    lease: Lease
    study: StudyRow


def claim(repo: Repository, worker_id: str) -> Claim | None:
    """Hand one trial to ``worker_id``, from the oldest study that has budget and room.

    A worker that asks again after losing the answer (e.g. a dropped connection) gets its own
    pending lease back. Returns None when there is nothing to do (not an error).
    """
    got, completed = repo.claim_next(worker_id)  # one transaction
    for study_id, reason in completed:
        log.info("study %s completed (%s)", study_id, reason)
    return None if got is None else Claim(*got)


def end_lease(
    repo: Repository, lease: Lease, target: LeaseState, reason: str | None = None
) -> bool:
    """End a lease and complete its study when that was the last piece of its budget.

    Returns False when the lease had already been taken back (by the reaper).
    """
    ok, completed = repo.finish_lease(lease.id, lease.study_id, target, reason=reason)
    if completed is not None:
        log.info("study %s completed (%s)", lease.study_id, completed)
    return ok


def maybe_complete(repo: Repository, study_id: int) -> bool:
    """Mark a study completed when its budget is spent (or its timeout passed) and nothing
    runs; its final evaluation is then pending (a worker evaluates the best model)."""
    reason = repo.complete_if_done(study_id)
    if reason is not None:
        log.info("study %s completed (%s)", study_id, reason)
    return reason is not None
