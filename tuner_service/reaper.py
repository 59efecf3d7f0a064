"""The reaper: takes back the trials of workers that went silent, and re-queues them.

Run by the API process and by every worker (so that it works when either side is down). Safe to
run concurrently: each lease is ended by compare-and-set, each Optuna trial failed by Optuna's
own compare-and-set state change; only the winner re-queues.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import optuna
from optuna.trial import TrialState

from .db import TRANSIENT_DB_ERRORS
from .engines import UnknownEngineError, get_engine
from .optuna_bridge import ATTR_FAIL_REASON, SYS_RETRY_HISTORY, requeue_trial, retries_used
from .queue import maybe_complete
from .reads import TrialReads
from .repository import Lease, Repository
from .retrying import RETRY_MAX_BACKOFF_S, RetryingRDBStorage, trial_id_of
from .states import LeaseState, StudyStatus

log = logging.getLogger(__name__)


def _engine_retries_itself(kind: str) -> bool:
    """Whether the study's engine sends a lost trial back itself (e.g. a Keras Tuner oracle's
    retry queue) instead of the reaper's WAITING Optuna copy."""
    try:
        return get_engine(kind).retries_lost_trials
    except UnknownEngineError:
        return False


class Reaper:
    def __init__(
        self,
        repo: Repository,
        storage: RetryingRDBStorage,
        *,
        grace_period: float,
        max_retries: int,
        settle_s: float | None = None,
    ) -> None:
        """``settle_s``: how long the database must have answered before workers may be
        judged silent (default: the grace period plus the longest retry backoff)."""
        self.repo = repo
        self.storage = storage
        self.reads = TrialReads(repo.engine)
        self.grace_period = grace_period
        self.max_retries = max_retries
        self.settle_s = grace_period + RETRY_MAX_BACKOFF_S if settle_s is None else settle_s
        self._last_ok: float | None = None
        self._connected_since: float | None = None
        self._unheld_since: dict[int, float] = {}  # Optuna trial id -> first seen unheld

    def _may_judge_liveness(self) -> bool:
        """Whether this reaper has seen the database long enough to call a worker silent.

        After the database was away (or this process stalled) for a while, every worker's
        heartbeat looks stale although the workers are fine: they were blocked on the same
        outage and beat again once their retries get through (within one backoff). So after
        an outage, at start, or after a long gap between sweeps, the reaper waits a grace
        period plus the longest backoff before it declares anyone dead.
        """
        try:
            self.repo.try_ping()
        except TRANSIENT_DB_ERRORS:
            self._connected_since = None
            self.repo.ping()  # waits, with backoff, until the database is back
        now = time.monotonic()
        settle = self.settle_s
        if (
            self._connected_since is None
            or self._last_ok is None
            or now - self._last_ok > settle
        ):
            self._connected_since = now
        self._last_ok = now
        return now - self._connected_since >= settle

    def run_once(self) -> int:
        """One sweep; returns the number of trials taken back."""
        if not self._may_judge_liveness():
            return 0
        # On the database's clock, which wrote the heartbeats: hosts' clocks do not matter.
        cutoff = self.repo.database_time() - timedelta(seconds=self.grace_period)
        dead = self.repo.mark_silent_workers_dead(cutoff)
        if dead:
            log.warning("workers silent for %.0fs, declared dead: %s", self.grace_period, dead)
        n = 0
        for lease in self.repo.stale_leases(cutoff):
            if self._take_back(lease, "worker lost (no heartbeat)"):
                n += 1
        for study_id, state in self.repo.take_back_evaluations(
            cutoff, max_attempts=self.max_retries + 1
        ):
            log.warning("study %s: its evaluation's worker was lost; evaluation %s",
                        study_id, state.value)
        for study in self.repo.studies_with_status((StudyStatus.RUNNING, StudyStatus.QUEUED)):
            n += self._orphans(study.id)
            maybe_complete(self.repo, study.id)
        self._last_ok = time.monotonic()
        return n

    def _take_back(self, lease: Lease, reason: str) -> bool:
        if not self.repo.end_lease(lease.id, LeaseState.LOST, reason=reason):
            return False  # another reaper, or the worker itself, ended it first
        if lease.trial_id is not None:
            self._fail_and_requeue(lease.study_id, lease.trial_id, reason)
        maybe_complete(self.repo, lease.study_id)
        return True

    def _fail_and_requeue(self, study_id: int, trial_id: int, reason: str) -> None:
        study_row = self.repo.get_study(study_id)
        if study_row is None:
            return
        trial = self.storage.get_trial(trial_id)
        if trial.state != TrialState.RUNNING:
            self._finished_meanwhile(study_id, trial)
            return
        final = StudyStatus(study_row.status).is_final
        gives_up = not final and retries_used(trial) >= self.max_retries
        if gives_up:
            reason = f"{reason}; gave up after {self.max_retries} retries"
        try:
            self.storage.set_trial_user_attr(trial_id, ATTR_FAIL_REASON, reason)
            # Optuna's own compare-and-set: False or an error when the worker finished first.
            if not self.storage.set_trial_state_values(trial_id, TrialState.FAIL):
                return
        except optuna.exceptions.UpdateFinishedTrialError:
            self._finished_meanwhile(study_id, self.storage.get_trial(trial_id))
            return
        if final:
            return
        if gives_up:
            self.repo.count_lost_lease_as_finished(study_id, trial_id)
            log.warning("study %s trial %s failed for good: %s", study_id, trial.number, reason)
            return
        if _engine_retries_itself(study_row.engine_kind):
            return  # the engine sends the lost trial back itself (and frees its budget)
        study = optuna.load_study(study_name=study_row.name, storage=self.storage)
        retry = requeue_trial(
            study,
            self.storage.get_trial(trial_id),
            max_retries=self.max_retries,
            reads=self.reads,
        )
        log.warning(
            "study %s trial %s re-queued (retry %s): %s", study_id, trial.number, retry, reason
        )

    def _finished_meanwhile(self, study_id: int, trial: optuna.trial.FrozenTrial) -> None:
        """The lease was taken back, but its worker finished the trial just before (its own
        end of the lease lost the race): the trial uses its piece of the budget after all,
        unless the worker handed it back (then a re-queued copy runs in its place)."""
        if not trial.state.is_finished():
            return
        study_row = self.repo.get_study(study_id)
        if study_row is None:
            return
        for _, history in self.reads.system_attr_values(
            study_row.optuna_study_id, SYS_RETRY_HISTORY
        ):
            if trial.number in history:
                return
        self.repo.count_lost_lease_as_finished(study_id, trial_id_of(trial))

    def _orphans(self, study_id: int) -> int:
        """RUNNING trials that no active lease holds (a worker died between asking Optuna for
        a trial and recording it, or a retried ``ask`` created a second one) and that started
        more than a grace period ago. Skipped while a live worker's lease has no trial yet: its
        trial may be one that it is about to attach."""
        active = self.repo.active_leases(study_id)
        if any(le.trial_id is None for le in active):
            return 0
        held = {le.trial_id for le in active}
        row = self.repo.get_study(study_id)
        if row is None:
            return 0
        # Optuna stamps trials with the writer's local clock, which may be off: an unheld trial
        # is orphaned once this reaper has seen it unheld for a grace period (its own
        # monotonic clock).
        now = time.monotonic()
        n = 0
        for t in self.storage.get_all_trials(
            row.optuna_study_id,
            deepcopy=False,
            states=(TrialState.RUNNING,),
        ):
            tid = trial_id_of(t)
            if tid in held:
                self._unheld_since.pop(tid, None)
                continue
            if now - self._unheld_since.setdefault(tid, now) < self.grace_period:
                continue
            self._unheld_since.pop(tid, None)
            self._fail_and_requeue(study_id, tid, "trial orphaned (no worker holds it)")
            n += 1
        return n


class ReaperThread(threading.Thread):
    """Runs :meth:`Reaper.run_once` every ``interval`` seconds until stopped."""

    def __init__(self, reaper: Reaper, interval: float) -> None:
        super().__init__(name="reaper", daemon=True)
        self.reaper = reaper
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.reaper.run_once()
            except Exception:  # keep reaping after a database blip
                log.exception("reaper sweep failed; will try again")

    def stop(self) -> None:
        self._stop_event.set()
