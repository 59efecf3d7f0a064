"""Every state machine of the control plane, written down once: an enum and its allowed moves.

Trial states are Optuna's own (``optuna.trial.TrialState``); these cover what Optuna has no
place for: studies, work leases, workers, and a study's final evaluation. Compare-and-set
writes (:mod:`tuner_service.repository`) take their ``expected`` states from these tables
(:meth:`StateMachine.sources`), so a move is allowed in exactly one place.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar

from .errors import InvalidTransitionError

S = TypeVar("S", bound=enum.Enum)


class StateMachine(Generic[S]):
    """An enum's allowed moves: ``moves[a]`` is every state ``a`` may become."""

    def __init__(self, name: str, initial: S, moves: Mapping[S, frozenset[S]]) -> None:
        self.name = name
        self.initial = initial
        self.moves: Mapping[S, frozenset[S]] = dict(moves)

    def can(self, current: S, target: S) -> bool:
        return target in self.moves[current]

    def check(self, current: S, target: S) -> None:
        """Raises:
        InvalidTransitionError: ``current`` cannot move to ``target``.
        """
        if not self.can(current, target):
            raise InvalidTransitionError(
                f"a {current.value} {self.name} cannot become {target.value}"
            )

    def sources(self, target: S) -> frozenset[S]:
        """Every state that may move to ``target`` (the ``expected`` of a compare-and-set)."""
        return frozenset(s for s, to in self.moves.items() if target in to)

    def transitions(self) -> list[tuple[S, S]]:
        return [(a, b) for a, to in self.moves.items() for b in sorted(to, key=str)]

    def is_final(self, state: S) -> bool:
        return not self.moves[state]


class StudyStatus(str, enum.Enum):
    QUEUED = "queued"  # accepted, no trial handed out yet
    RUNNING = "running"  # at least one trial handed out, budget not spent
    PAUSED = "paused"  # hands out no new trial; running trials finish
    CANCELLED = "cancelled"  # hands out nothing; running trials stop at their next epoch
    COMPLETED = "completed"  # budget spent (or timeout reached) and nothing running
    FAILED = "failed"  # cannot go on (e.g. its dataset cannot be loaded); reason recorded

    @property
    def is_final(self) -> bool:
        return STUDIES.is_final(self)

    @property
    def hands_out_trials(self) -> bool:
        return self in HANDS_OUT_TRIALS


#: Studies a worker may claim a trial of (and that complete once their budget is spent).
HANDS_OUT_TRIALS = (StudyStatus.QUEUED, StudyStatus.RUNNING)

STUDIES: StateMachine[StudyStatus] = StateMachine(
    "study",
    StudyStatus.QUEUED,
    {
        StudyStatus.QUEUED: frozenset(
            {
                StudyStatus.RUNNING,  # first claim
                StudyStatus.PAUSED,
                StudyStatus.CANCELLED,
                StudyStatus.FAILED,
                StudyStatus.COMPLETED,  # timeout reached before any claim
            }
        ),
        StudyStatus.RUNNING: frozenset(
            {StudyStatus.PAUSED, StudyStatus.CANCELLED, StudyStatus.COMPLETED, StudyStatus.FAILED}
        ),
        StudyStatus.PAUSED: frozenset(
            {
                StudyStatus.QUEUED,  # resumed before any claim
                StudyStatus.RUNNING,  # resumed
                StudyStatus.CANCELLED,
                StudyStatus.FAILED,
                StudyStatus.COMPLETED,
            }
        ),
        StudyStatus.CANCELLED: frozenset(),
        StudyStatus.COMPLETED: frozenset(),
        StudyStatus.FAILED: frozenset(),
    },
)


def check_study_transition(current: StudyStatus, target: StudyStatus) -> None:
    """Raises:
    InvalidTransitionError: ``current`` cannot move to ``target``.
    """
    STUDIES.check(current, target)


class LeaseState(str, enum.Enum):
    """A lease is one hand-out of one trial to one worker (one attempt)."""

    ACTIVE = "active"  # the worker is running the trial
    FINISHED = "finished"  # the trial ended COMPLETE, PRUNED or FAIL for good: counts in budget
    LOST = "lost"  # the worker went silent or handed the trial back; trial re-queued


LEASES: StateMachine[LeaseState] = StateMachine(
    "lease",
    LeaseState.ACTIVE,
    {
        LeaseState.ACTIVE: frozenset({LeaseState.FINISHED, LeaseState.LOST}),
        # A lost trial that fails for good (retries spent, or its worker finished it just
        # before the reaper took it back) uses its piece of the budget after all.
        LeaseState.LOST: frozenset({LeaseState.FINISHED}),
        LeaseState.FINISHED: frozenset(),
    },
)

#: Leases that count against a study's budget: ACTIVE and FINISHED.
BUDGET_STATES = (LeaseState.ACTIVE, LeaseState.FINISHED)


class WorkerStatus(str, enum.Enum):
    ALIVE = "alive"  # heartbeating
    STOPPED = "stopped"  # unregistered cleanly
    DEAD = "dead"  # went silent past the grace period (found by the reaper)


WORKERS: StateMachine[WorkerStatus] = StateMachine(
    "worker",
    WorkerStatus.ALIVE,
    {
        WorkerStatus.ALIVE: frozenset({WorkerStatus.STOPPED, WorkerStatus.DEAD}),
        # A worker declared dead that beats again registers again; or it stops.
        WorkerStatus.DEAD: frozenset({WorkerStatus.ALIVE, WorkerStatus.STOPPED}),
        WorkerStatus.STOPPED: frozenset(),
    },
)


class EvaluationState(str, enum.Enum):
    """The final evaluation of a completed study's best model on the test split (the column
    is NULL until the study completes; it then starts PENDING)."""

    PENDING = "pending"  # the study completed (or the reaper took it back); any worker may take it
    RUNNING = "running"  # one live worker holds it (compare-and-set; the reaper takes it back
    #                      from a worker that died or went silent)
    DONE = "done"  # evaluated, or skipped with the reason recorded
    FAILED = "failed"  # the evaluation raised; the error is recorded


EVALUATIONS: StateMachine[EvaluationState] = StateMachine(
    "evaluation",
    EvaluationState.PENDING,
    {
        EvaluationState.PENDING: frozenset({EvaluationState.RUNNING}),
        # RUNNING -> PENDING: its worker was lost; RUNNING -> FAILED also when it was lost
        # too many times.
        EvaluationState.RUNNING: frozenset(
            {EvaluationState.DONE, EvaluationState.FAILED, EvaluationState.PENDING}
        ),
        # an ensemble asked for on demand (POST /studies/{id}/ensemble): evaluated again
        EvaluationState.DONE: frozenset({EvaluationState.PENDING}),
        EvaluationState.FAILED: frozenset({EvaluationState.PENDING}),
    },
)
