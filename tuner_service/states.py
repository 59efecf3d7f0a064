"""The two state machines of the control plane: studies and work leases.

Trial states are Optuna's own (``optuna.trial.TrialState``); these cover what Optuna has no
place for.
"""

from __future__ import annotations

import enum

from .errors import InvalidTransitionError


class StudyStatus(str, enum.Enum):
    QUEUED = "queued"  # accepted, no trial handed out yet
    RUNNING = "running"  # at least one trial handed out, budget not spent
    PAUSED = "paused"  # hands out no new trial; running trials finish
    CANCELLED = "cancelled"  # hands out nothing; running trials stop at their next epoch
    COMPLETED = "completed"  # budget spent (or timeout reached) and nothing running
    FAILED = "failed"  # cannot go on (e.g. its dataset cannot be loaded); reason recorded

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def hands_out_trials(self) -> bool:
        return self in (StudyStatus.QUEUED, StudyStatus.RUNNING)


_FINAL = frozenset({StudyStatus.CANCELLED, StudyStatus.COMPLETED, StudyStatus.FAILED})

_TRANSITIONS: dict[StudyStatus, frozenset[StudyStatus]] = {
    StudyStatus.QUEUED: frozenset(
        {
            StudyStatus.RUNNING,
            StudyStatus.PAUSED,
            StudyStatus.CANCELLED,
            StudyStatus.FAILED,
            StudyStatus.COMPLETED,
        }
    ),
    StudyStatus.RUNNING: frozenset(
        {StudyStatus.PAUSED, StudyStatus.CANCELLED, StudyStatus.COMPLETED, StudyStatus.FAILED}
    ),
    StudyStatus.PAUSED: frozenset(
        {
            StudyStatus.QUEUED,
            StudyStatus.RUNNING,
            StudyStatus.CANCELLED,
            StudyStatus.FAILED,
            StudyStatus.COMPLETED,
        }
    ),
    StudyStatus.CANCELLED: frozenset(),
    StudyStatus.COMPLETED: frozenset(),
    StudyStatus.FAILED: frozenset(),
}


def check_study_transition(current: StudyStatus, target: StudyStatus) -> None:
    """Raises:
    InvalidTransitionError: ``current`` cannot move to ``target``.
    """
    if target not in _TRANSITIONS[current]:
        raise InvalidTransitionError(f"a {current.value} study cannot become {target.value}")


class LeaseState(str, enum.Enum):
    """A lease is one hand-out of one trial to one worker (one attempt)."""

    ACTIVE = "active"  # the worker is running the trial
    FINISHED = "finished"  # the trial ended COMPLETE, PRUNED or FAIL for good: counts in budget
    LOST = "lost"  # the worker went silent or handed the trial back; trial re-queued
    # Leases that count against a study's budget: ACTIVE and FINISHED.


BUDGET_STATES = (LeaseState.ACTIVE, LeaseState.FINISHED)


class WorkerStatus(str, enum.Enum):
    ALIVE = "alive"  # heartbeating
    STOPPED = "stopped"  # unregistered cleanly
    DEAD = "dead"  # went silent past the grace period (found by the reaper)
