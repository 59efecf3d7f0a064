"""The Optuna engine: ``ask`` with the study's sampler and pruner, ``report`` every epoch,
``tell`` the outcome. The trial lives in Optuna's storage, so every Optuna tool sees it."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.trial import TrialState

from search_spaces import SearchSpace
from tuner_service.engines.optuna import OptunaEngineSpec, build_pruner, build_sampler
from tuner_service.optuna_bridge import (
    ATTR_FAIL_REASON,
    ATTR_MODEL_ARTIFACT,
    ATTR_WORKER,
    requeue_trial,
)
from tuner_service.queue import Claim
from tuner_service.retrying import trial_id_of
from tuner_service.service import Services
from tuner_service.spec import EnsembleSpec, StudySpec

from ..ensemble.keeping import drop_unkept, worth_keeping
from .base import EngineFatalError, WorkerEngine

log = logging.getLogger(__name__)


def trial_seed(spec_seed: int | None, lease_seq: int) -> int:
    """A distinct, reproducible seed for each hand-out of a study."""
    return ((spec_seed or 0) * 1_000_003 + lease_seq) % (2**31 - 1)


class OptunaTrialHandle:
    def __init__(
        self,
        services: Services,
        study: optuna.Study,
        trial: optuna.Trial,
        params: dict[str, Any],
        seed: int,
        multi: bool,
    ) -> None:
        self.services = services
        self.study = study
        self.trial = trial
        self.number = trial.number
        self.params = params
        self.seed = seed
        self.multi = multi

    # Every storage call is retried on transient database errors inside the storage
    # (tuner_service.retrying); ``tell`` skips a trial that is already finished (the reaper
    # took it back).
    def report(self, epoch: int, value: float) -> bool:
        if self.multi:  # Optuna prunes single-objective studies only
            return False
        self.trial.report(value, step=epoch)
        return self.trial.should_prune()

    def set_attrs(self, attrs: Mapping[str, Any]) -> None:
        for k, v in attrs.items():
            self.trial.set_user_attr(k, v)

    def _tell(self, values: float | list[float] | None, state: TrialState | None) -> None:
        self.study.tell(self.trial, values, state=state, skip_if_finished=True)

    def complete(self, values: list[float]) -> None:
        self._tell(values if self.multi else values[0], None)

    def prune(self) -> None:
        self._tell(None, TrialState.PRUNED)

    def fail(self, reason: str) -> None:
        try:
            self.trial.set_user_attr(ATTR_FAIL_REASON, reason)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # already finished: the reaper took it back (with its own reason)
        self._tell(None, TrialState.FAIL)

    def hand_back(self, reason: str) -> None:
        self.fail(reason)
        frozen = self.services.storage.get_trial(trial_id_of(self.trial))
        if frozen.user_attrs.get(ATTR_FAIL_REASON) != reason:
            return  # the reaper took the trial back first (and re-queued it)
        requeue_trial(
            self.study, frozen, max_retries=sys.maxsize, reads=self.services.reads
        )

    def is_better_than_best(self, values: list[float]) -> bool:
        if self.multi:
            return False
        try:
            best = self.study.best_value
        except ValueError:
            return True
        if self.study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return values[0] > best
        return values[0] < best

    def keeps_model(self, values: list[float], ensemble: EnsembleSpec) -> bool:
        if self.multi:
            return False
        if self.is_better_than_best(values):
            return True
        if ensemble.size == 0:
            return False
        return worth_keeping(
            self.services, self.study, self.number, values[0], self.params, ensemble
        )

    def drop_unkept_models(self, ensemble: EnsembleSpec) -> None:
        if not self.multi:
            drop_unkept(self.services, self.study, ensemble)

    def save_model(self, path: str) -> str:
        artifact_id = optuna.artifacts.upload_artifact(
            artifact_store=self.services.artifacts,
            file_path=path,
            study_or_trial=self.trial,
            mimetype="application/octet-stream",
        )
        self.trial.set_user_attr(ATTR_MODEL_ARTIFACT, artifact_id)
        return artifact_id


class OptunaEngine(WorkerEngine):
    """Keeps one ``optuna.Study`` with one sampler and pruner per study for the worker's life,
    as a process of a stock distributed Optuna run does: the trial cache and the sampler's
    incremental state are reused across trials. The sampler is seeded from the worker's first
    hand-out of the study, so two workers never share a random stream and one worker's run of
    a seeded study is reproducible."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._current: tuple[int, StudySpec, SearchSpace, optuna.Study] | None = None

    def _study(self, claim: Claim) -> tuple[StudySpec, SearchSpace, optuna.Study]:
        if self._current is None or self._current[0] != claim.study.id:
            spec = StudySpec.model_validate(claim.study.spec)
            engine = spec.engine
            assert isinstance(engine, OptunaEngineSpec)
            space = spec.space()
            try:
                sampler = build_sampler(engine, space, seed=trial_seed(spec.seed, claim.lease.seq))
                pruner = build_pruner(engine, max_epochs=spec.budget.max_epochs)
            except (ImportError, TypeError, ValueError) as exc:
                raise EngineFatalError(str(exc)) from exc
            study = optuna.load_study(
                study_name=claim.study.name,
                storage=self.services.storage,
                sampler=sampler,
                pruner=pruner,
            )
            self._current = (claim.study.id, spec, space, study)
        _, spec, space, study = self._current
        return spec, space, study

    def start(
        self, claim: Claim, worker_id: str, stop: threading.Event | None = None
    ) -> OptunaTrialHandle:
        spec, space, study = self._study(claim)
        # A retried ask may leave a RUNNING trial that no lease holds: the reaper's orphan
        # sweep fails and re-queues it once the grace period has passed.
        trial = study.ask()
        self.services.repo.attach_trial(
            claim.lease.id,
            trial_id=trial_id_of(trial),
            trial_number=trial.number,
            user_attr=(ATTR_WORKER, worker_id),
        )
        params = space.sample(trial)
        seed = trial_seed(spec.seed, claim.lease.seq)  # the trial's model weights
        return OptunaTrialHandle(
            self.services, study, trial, params, seed, multi=spec.is_multi_objective
        )
