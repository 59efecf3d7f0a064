"""The Keras Tuner engine on a worker: the oracle's next trial for a lease, trained through the
shared loop, ended in the oracle (both in short transactions holding the study's lock)."""

from __future__ import annotations

import logging
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search_spaces import SearchSpace
from tuner_service.optuna_bridge import ATTR_WORKER, SYS_RETRY_HISTORY
from tuner_service.queue import Claim
from tuner_service.service import Services
from tuner_service.spec import StudySpec
from tuner_service.states import StudyStatus

from ...kt_space import params_from_keras_tuner
from ...trial_runner import TrialResult, monitored_metric
from ..base import EngineFatalError, TrialHandle, WorkerEngine
from ..optuna_engine import trial_seed
from . import internals
from .handle import KerasTunerTrialHandle
from .oracle import (
    ATTR_KT_TRIAL_ID,
    ATTR_KT_VALUES,
    KIND,
    RUNNING,
    STOPPED,
    _dump,
    _oracle_from,
    _plain_value,
    _reconcile,
    _tuner_id,
)

if TYPE_CHECKING:
    from ...trial_context import TrialContext

log = logging.getLogger(__name__)


@dataclass
class _Created:
    status: str
    trial_id: str | None = None
    values: dict[str, Any] | None = None
    past_weights: str | None = None
    optuna_numbers: list[int] | None = None
    gave_up: list[int] | None = None


class KerasTunerEngine(WorkerEngine):
    def __init__(self, services: Services) -> None:
        self.services = services

    # --- the locked units of work ---------------------------------------------------------
    def _create(self, c: Claim, spec: StudySpec, space: SearchSpace) -> _Created:
        import keras_tuner  # noqa: F401  (imported before taking the study's lock)

        max_retries = self.services.settings.max_retries

        def fn(state: dict[str, Any] | None, active: frozenset[int]
               ) -> tuple[dict[str, Any], _Created]:
            running = internals.trial_status().RUNNING
            with _oracle_from(spec, space, state) as (oracle, book):
                gave_up = _reconcile(oracle, book, active, max_retries)
                trial = oracle.create_trial(_tuner_id(c.lease.id))
                out = _Created(str(trial.status), gave_up=gave_up)
                if trial.status == running:
                    values = dict(trial.hyperparameters.values)
                    run = book["runs"].setdefault(trial.trial_id, {"optuna": [], "weights": None})
                    past = values.get("tuner/trial_id")
                    out.trial_id = trial.trial_id
                    out.values = values
                    out.optuna_numbers = list(run["optuna"])
                    if past is not None:
                        out.past_weights = book["runs"].get(past, {}).get("weights")
                return _dump(oracle, book), out

        return self.services.repo.update_engine_state(c.study.id, KIND, fn)

    def end_trial(self, handle: KerasTunerTrialHandle, status: str, message: str | None) -> None:
        """Report the trial's epochs to the oracle and end it there (``RETRY``: hand it back
        to the oracle's retry queue, as Keras Tuner does with the trials of a stopped tuner).

        Raises:
            EngineFatalError: the oracle stopped the search (too many failed trials).
        """
        spec, space = handle.spec, handle.spec.space()
        tuner_id = _tuner_id(handle.claim.lease.id)
        max_retries = self.services.settings.max_retries
        epochs = handle._epochs()
        objective, _ = monitored_metric(spec.objectives)

        def fn(state: dict[str, Any] | None, active: frozenset[int]
               ) -> tuple[dict[str, Any], list[int]]:
            with _oracle_from(spec, space, state) as (oracle, book):
                trial = oracle.ongoing_trials.get(tuner_id)
                if trial is not None and trial.trial_id == handle.kt_trial_id:
                    run = book["runs"].setdefault(trial.trial_id, {"optuna": [], "weights": None})
                    run["optuna"].append(handle.number)
                    if handle.weights_artifact:
                        run["weights"] = handle.weights_artifact
                    if status == "RETRY":
                        oracle.ongoing_trials.pop(tuner_id)
                        internals.hand_back(oracle, trial.trial_id)
                    else:
                        for step, metrics in epochs:
                            if objective in metrics:
                                oracle.update_trial(trial.trial_id, metrics, step=step)
                        ok = status == "COMPLETED" and any(objective in m for _, m in epochs)
                        trial.status = "COMPLETED" if ok else "INVALID"
                        trial.message = message
                        try:
                            oracle.end_trial(trial)
                        except RuntimeError as exc:
                            raise EngineFatalError(f"keras tuner: {exc}") from exc
                else:
                    log.warning("keras tuner trial %s was taken back meanwhile", handle.kt_trial_id)
                gave_up = _reconcile(oracle, book, active, max_retries)
                return _dump(oracle, book), gave_up

        gave_up = self.services.repo.update_engine_state(handle.claim.study.id, KIND, fn)
        self._count_given_up(handle.claim.study.id, gave_up)

    def _count_given_up(self, study_id: int, lease_ids: list[int] | None) -> None:
        repo = self.services.repo
        for lease_id in lease_ids or []:
            lease = repo.get_lease(lease_id)
            if lease is not None and lease.trial_id is not None:
                repo.count_lost_lease_as_finished(study_id, lease.trial_id)

    # --- one lease ------------------------------------------------------------------------
    def start(
        self, claim: Claim, worker_id: str, stop: threading.Event | None = None
    ) -> KerasTunerTrialHandle | None:
        """The oracle's next trial as an Optuna trial attached to the lease; None when there
        is none to run (the search is over: the budget is closed; or the worker is stopping).

        Raises:
            EngineFatalError: the oracle cannot be built or stopped the search on failures.
        """
        c = claim
        spec = StudySpec.model_validate(c.study.spec)
        repo = self.services.repo
        space = spec.space()
        wait = min(max(self.services.settings.poll_interval, 0.5), 5.0)
        while True:
            created = self._create(c, spec, space)
            self._count_given_up(c.study.id, created.gave_up)
            if created.status == RUNNING:
                break
            if created.status == STOPPED:
                repo.drop_unattached_lease(c.lease.id)
                n = repo.close_budget(c.study.id)
                log.info("study %s: the keras tuner oracle ended the search after %d trials",
                         c.study.id, n)
                return None
            # IDLE: Hyperband waits for running trials before it can pick the best ones.
            row = repo.get_study(c.study.id)
            stopping = stop is not None and stop.wait(wait)
            if stopping or row is None or not StudyStatus(row.status).hands_out_trials:
                return None
        assert created.trial_id is not None and created.values is not None
        values = created.values
        full = params_from_keras_tuner(space, values)
        fixed = optuna.trial.FixedTrial(full)
        space.sample(fixed)
        kt_values = {k: _plain_value(v) for k, v in values.items() if k.startswith("tuner/")}
        storage = self.services.storage
        study = optuna.load_study(study_name=c.study.name, storage=storage)
        system_attrs: dict[str, Any] = {}
        earlier = [  # runs of this Keras Tuner trial that were lost or handed back
            t.number for t in study.get_trials(deepcopy=False)
            if t.user_attrs.get(ATTR_KT_TRIAL_ID) == created.trial_id
        ]
        if earlier:
            system_attrs[SYS_RETRY_HISTORY] = earlier
        template = FrozenTrial(
            number=-1,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=datetime.now(),
            datetime_complete=None,
            params=fixed.params,
            distributions=fixed.distributions,
            user_attrs={
                ATTR_WORKER: worker_id,
                ATTR_KT_TRIAL_ID: created.trial_id,
                ATTR_KT_VALUES: kt_values,
            },
            system_attrs=system_attrs,
            intermediate_values={},
            trial_id=-1,
        )
        trial_id = storage.create_new_trial(c.study.optuna_study_id, template_trial=template)
        trial = optuna.Trial(study, trial_id)
        repo.attach_trial(c.lease.id, trial_id=trial_id, trial_number=trial.number)
        handle = KerasTunerTrialHandle(
            self, c, spec, study, trial, full, trial_seed(spec.seed, c.lease.seq),
            created.trial_id, kt_values,
        )
        handle.past_weights = created.past_weights
        return handle

    def run(self, handle: TrialHandle, ctx: TrialContext) -> TrialResult:
        """Train the oracle's trial (Hyperband: epochs ``tuner/initial_epoch`` to
        ``tuner/epochs`` from the saved weights of the trial it continues)."""
        assert isinstance(handle, KerasTunerTrialHandle)
        kt = handle.kt_values
        epochs = int(kt.get("tuner/epochs", ctx.spec.budget.max_epochs))
        initial_epoch = int(kt.get("tuner/initial_epoch", 0))
        past = handle.past_weights
        with tempfile.TemporaryDirectory() as tmp:
            weights: str | None = None
            if "tuner/trial_id" in kt:
                if past and (data := self.services.repo.get_artifact(past)) is not None:
                    weights = str(Path(tmp) / "past.weights.h5")
                    Path(weights).write_bytes(data)
                else:
                    log.warning("keras tuner trial %s: no saved weights of trial %s; training "
                                "from scratch", handle.kt_trial_id, kt["tuner/trial_id"])
                    initial_epoch = 0
            result = ctx.train(
                max_epochs=epochs, initial_epoch=initial_epoch, initial_weights=weights
            )
        handle.on_result(result)
        return result
