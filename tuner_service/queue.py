"""Handing out work: the claim across studies, ending a lease, and completing a study.

Workers call these; the policy of *which parameters* a trial gets belongs to the engines.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from .models import StudyRow
from .repository import Lease, Repository
from .states import LeaseState, StudyStatus

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
    own = repo.own_unattached_lease(worker_id)
    if own is not None:
        study = repo.get_study(own.study_id)
        if study is not None:
            return Claim(own, study)
    for study in repo.studies_with_status((StudyStatus.QUEUED, StudyStatus.RUNNING)):
        got = repo.try_claim(study.id, worker_id)
        if got is not None:
            return Claim(*got)
        maybe_complete(repo, study.id)
    return None


def end_lease(
    repo: Repository, lease: Lease, target: LeaseState, reason: str | None = None
) -> bool:
    """End a lease and complete its study when that was the last piece of its budget.

    Returns False when the lease had already been taken back (by the reaper).
    """
    ok = repo.end_lease(lease.id, target, reason=reason)
    maybe_complete(repo, lease.study_id)
    return ok


def maybe_complete(repo: Repository, study_id: int) -> bool:
    """Mark a study completed when its budget is spent (or its timeout passed) and nothing
    runs; its final evaluation is then pending (a worker evaluates the best model)."""
    reason = repo.complete_if_done(study_id)
    if reason is not None:
        log.info("study %s completed (%s)", study_id, reason)
    return reason is not None
