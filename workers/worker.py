"""One worker process: register, then claim -> train -> record, until told to stop.

A heartbeat thread keeps the worker's registration fresh while it trains, and a reaper thread
sweeps for lost trials of other workers (apart, so that a slow sweep never delays a beat); the
first SIGTERM/SIGINT stops at the end of the current epoch and hands the trial back, a second
one exits at once (the reaper then recovers the trial).
"""

from __future__ import annotations

import logging
import os
import platform
import signal
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import optuna

from tuner_service.device_budget import close_if_device_budget_spent
from tuner_service.errors import LeaseLostError
from tuner_service.logging_setup import bind_log_context, log_context
from tuner_service.queue import Claim, claim, end_lease, maybe_complete
from tuner_service.reaper import Reaper, ReaperThread
from tuner_service.repository import Repository
from tuner_service.service import Services
from tuner_service.spec import StudySpec
from tuner_service.states import LeaseState, StudyStatus, WorkerStatus

from .datasets import DatasetCache, DatasetError
from .engines import EngineFatalError, TrialHandle, WorkerEngine, engine_for
from .evaluation import evaluate_pending
from .execution import ExecutionOptions
from .input_pipeline import PipelineCache
from .model_reuse import ModelCache
from .runtime import clear_session, freeze_startup_objects
from .trial_context import Trainer, TrialContext, failed_result
from .trial_runner import Outcome, TrialResult, run_trial

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    device: str = "cpu"
    once: bool = False
    max_trials: int | None = None
    mixed_precision: bool = False
    exit_when_idle: float | None = None  # seconds without work before exiting (batch jobs)
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)  # how fit runs


def package_versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "optuna": optuna.__version__,
        "python": platform.python_version(),
    }


class Worker:
    #: Trains one trial (tests and benchmarks of the queue put a cheap stand-in here).
    run_trial_fn = staticmethod(run_trial)

    def __init__(self, services: Services, options: WorkerOptions) -> None:
        self.services = services
        self.options = options
        self.settings = services.settings
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.datasets = DatasetCache(max_items=2)
        self.stop_event = threading.Event()
        self._signals = 0
        self._versions: dict[str, str] = {}
        self.trials_run = 0
        self._engines: dict[str, WorkerEngine] = {}
        self.model_cache = ModelCache() if options.execution.reuse_models else None
        self.pipelines = PipelineCache() if options.execution.cached_pipeline else None
        self.reaper = Reaper(
            services.repo,
            services.storage,
            grace_period=self.settings.effective_grace_period,
            max_retries=self.settings.max_retries,
        )

    # --- lifecycle ------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal: exiting now")
            os._exit(130)
        log.info("signal %s: stopping after the current epoch", signum)
        self.stop_event.set()

    def _heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_interval
        while not self.stop_event.wait(interval):
            try:
                if not self.services.repo.heartbeat(self.id):
                    log.warning("this worker was declared dead; registering again")
                    self._register()
            except Exception:  # a database blip: keep beating
                log.exception("heartbeat failed; retrying")

    def _register(self) -> None:
        self.services.repo.register_worker(
            worker_id=self.id,
            host=socket.gethostname(),
            pid=os.getpid(),
            device=self.options.device,
            info={"versions": self._versions},
        )

    def run(self) -> int:
        self._versions = package_versions()
        freeze_startup_objects()
        self._register()
        log.info("worker %s registered on %s", self.id, self.options.device)
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        reaper = ReaperThread(self.reaper, interval=self.settings.heartbeat_interval)
        reaper.start()
        idle_since = time.monotonic()
        try:
            while not self.stop_event.is_set():
                evaluate_pending(self.services, self.datasets, self.id)
                c = claim(self.services.repo, self.id)
                if c is None:
                    if (
                        self.options.exit_when_idle is not None
                        and time.monotonic() - idle_since > self.options.exit_when_idle
                    ):
                        log.info("no work for %.0fs: exiting", self.options.exit_when_idle)
                        break
                    self.stop_event.wait(self.settings.poll_interval)
                    continue
                # every log line of the trial carries the study id and (once known) the
                # trial number, whichever module logs it
                with log_context(study_id=c.study.id, worker_id=self.id):
                    self.run_claim(c)
                idle_since = time.monotonic()
                self.trials_run += 1
                if self.options.once or (
                    self.options.max_trials is not None
                    and self.trials_run >= self.options.max_trials
                ):
                    break
            evaluate_pending(self.services, self.datasets, self.id)
        finally:
            self.stop_event.set()
            reaper.stop()
            self.services.repo.set_worker_status(self.id, WorkerStatus.STOPPED)
            log.info("worker %s stopped after %d trials", self.id, self.trials_run)
        return 0

    # --- one trial ------------------------------------------------------------------------
    def _engine(self, kind: str) -> WorkerEngine:
        """One engine per kind for the life of the worker (engines cache per-study state)."""
        if kind not in self._engines:
            self._engines[kind] = engine_for(kind, self.services)
        return self._engines[kind]

    def run_claim(self, c: Claim) -> None:
        """One lease, start to end: the engine starts the trial and runs it through a
        :class:`TrialContext`; this worker records the outcome and ends the lease
        (:meth:`_record`)."""
        repo = self.services.repo
        spec = StudySpec.model_validate(c.study.spec)
        try:
            dataset = self.datasets.get(spec.dataset, self.settings.data_root)
        except (DatasetError, OSError, ValueError) as exc:
            self._fail_study(c, f"dataset {spec.dataset.name!r} cannot be loaded: {exc}")
            return
        try:
            engine = self._engine(spec.engine.kind)
            handle = engine.start(c, self.id, self.stop_event)
        except LeaseLostError as exc:
            # This worker looked silent for a moment; the reaper re-queues what it started.
            log.warning("study %s: %s; moving on", c.study.id, exc)
            return
        except EngineFatalError as exc:
            self._fail_study(c, str(exc))
            return
        if handle is None:  # nothing to run: the lease uses no budget
            repo.drop_unattached_lease(c.lease.id)
            maybe_complete(repo, c.study.id)
            return
        bind_log_context(trial_number=handle.number)  # undone when run() returns
        ctx = TrialContext(
            study_id=c.study.id,
            spec=spec,
            dataset=dataset,
            handle=handle,
            trainer=Trainer(
                self.run_trial_fn,
                self.options.mixed_precision,
                self._versions,
                execution=self.options.execution,
                model_cache=self.model_cache,
                pipelines=self.pipelines,
            ),
            stop=self.stop_event,
            is_cancelled=lambda: _is_cancelled(repo, c.study.id),
        )
        try:
            result = engine.run(handle, ctx)
        except LeaseLostError as exc:
            log.warning("%s: %s", ctx.log_prefix, exc)
            end_lease(repo, c.lease, LeaseState.LOST, reason=str(exc))
            clear_session()
            return
        except EngineFatalError as exc:
            self._fail_study(c, str(exc))
            clear_session()
            return
        except Exception as exc:  # a trial that cannot run fails; the worker goes on
            log.exception("%s: the engine failed", ctx.log_prefix)
            result = failed_result(f"{type(exc).__name__}: {exc}")
        self._record(c, handle, result, ctx)

    def _record(self, c: Claim, handle: TrialHandle, result: TrialResult, ctx: TrialContext
                ) -> None:
        """The one outcome mapping: the trial's Optuna state (through the engine's handle)
        and the lease's end state, written once."""
        repo = self.services.repo
        try:
            handle.set_attrs(ctx.attrs_to_record)
            if result.outcome is Outcome.COMPLETE:
                assert result.values is not None
                if result.model is not None and handle.keeps_model(
                    result.values, ctx.spec.ensemble
                ):
                    self._save_model(handle, result)
                handle.complete(result.values)
                self._drop_unkept_models(handle, ctx)
            elif result.outcome is Outcome.PRUNED:
                handle.prune()
            elif result.outcome is Outcome.HANDED_BACK:
                handle.hand_back(result.reason or "handed back")
            else:  # FAILED, CANCELLED
                handle.fail(result.reason or result.outcome.value)
            close_if_device_budget_spent(self.services, c.study, ctx.spec)
            end_lease(repo, c.lease, LEASE_AFTER[result.outcome], reason=result.reason)
        except EngineFatalError as exc:
            self._fail_study(c, str(exc))
        except Exception:
            # The reaper may have taken the trial back (this worker looked dead): the trial is
            # already re-queued, so nothing is lost. Otherwise give the lease up, so that the
            # study does not wait for it forever; the reaper's orphan sweep then fails and
            # re-queues the trial if it is still running.
            log.exception("%s: could not record the result", ctx.log_prefix)
            end_lease(repo, c.lease, LeaseState.LOST, reason="result could not be recorded")
        finally:
            clear_session()
        log.info(
            "%s: %s %s",
            ctx.log_prefix,
            result.outcome.value,
            result.values if result.values is not None else (result.reason or ""),
        )

    def _drop_unkept_models(self, handle: TrialHandle, ctx: TrialContext) -> None:
        try:
            handle.drop_unkept_models(ctx.spec.ensemble)
        except Exception:  # housekeeping: a model kept too long costs only space
            log.exception("%s: could not drop the models out of the top", ctx.log_prefix)

    def _save_model(self, handle: TrialHandle, result: TrialResult) -> None:
        assert result.model is not None
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"trial{handle.number}.keras"
            result.model.save(path)
            handle.save_model(str(path))

    def _fail_study(self, c: Claim, reason: str) -> None:
        """The study cannot go on: its lease ends (counted) and the study fails."""
        log.error("study %s failed: %s", c.study.id, reason)
        repo = self.services.repo
        repo.end_lease(c.lease.id, LeaseState.FINISHED, reason=reason)
        repo.set_study_status(c.study.id, target=StudyStatus.FAILED, reason=reason)


#: The lease's end state for each outcome: a handed-back trial runs again (its lease is lost,
#: so it uses no budget); every other outcome uses its piece of the budget.
LEASE_AFTER = {
    Outcome.COMPLETE: LeaseState.FINISHED,
    Outcome.PRUNED: LeaseState.FINISHED,
    Outcome.FAILED: LeaseState.FINISHED,
    Outcome.CANCELLED: LeaseState.FINISHED,
    Outcome.HANDED_BACK: LeaseState.LOST,
}


def _is_cancelled(repo: Repository, study_id: int) -> bool:
    study = repo.get_study(study_id)
    return study is not None and study.status == StudyStatus.CANCELLED.value
