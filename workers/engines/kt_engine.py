"""The Keras Tuner engine: a real Keras Tuner oracle (random, bayesian, hyperband, grid) decides
every trial; its state lives in the service database; every trial is also an Optuna trial.

How one lease runs (several workers may run leases of the same study at once):

1. In one short transaction holding the study's lock (:meth:`Repository.update_engine_state`)
   the oracle is rebuilt from the stored state (``Oracle.get_state()`` plus each Keras Tuner
   trial's ``Trial.get_state()``), trials of leases that are no longer active are handed back
   (see *lost trials*), ``oracle.create_trial("lease-<id>")`` is called and the state is saved.
   ``RUNNING``: go on. ``IDLE`` (Hyperband waits for running trials to pick the best): wait and
   ask again. ``STOPPED``: the search is over; the lease is dropped, the study's budget is
   lowered to the trials handed out, and the study completes when they finish.
2. An Optuna trial (``RUNNING``, params and distributions from the Keras Tuner values) is
   created in the study's Optuna record and attached to the lease; the shared training loop
   trains and reports every epoch to it (``tuner/initial_epoch`` .. ``tuner/epochs`` from the
   saved weights of the trial it continues, for Hyperband).
3. In a second locked transaction every epoch's metrics go to ``oracle.update_trial`` and the
   trial ends with ``oracle.end_trial`` (``COMPLETED``, or ``INVALID`` when training failed,
   which Keras Tuner retries up to ``max_retries_per_trial``); then the Optuna trial is told.

Lost trials: the reaper fails the Optuna trial of a silent worker and ends its lease without an
Optuna retry copy. The next transaction on the study sees an ongoing Keras Tuner trial whose
lease is not active and puts it in the oracle's retry queue, as Keras Tuner's own ``reload()``
does with the ongoing trials of a crashed tuner -- up to ``TUNER_MAX_RETRIES`` times; then it
fails for good (``FAILED``) and its lease counts as a finished piece of the budget.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from search_spaces import SearchSpace
from tuner_service.engines.keras_tuner import KerasTunerEngineSpec
from tuner_service.optuna_bridge import ATTR_FAIL_REASON, ATTR_WORKER, SYS_RETRY_HISTORY
from tuner_service.queue import Claim, maybe_complete
from tuner_service.service import Services
from tuner_service.spec import StudySpec
from tuner_service.states import StudyStatus

from ..kt_space import params_from_keras_tuner, to_keras_tuner
from ..trial_runner import Outcome, TrialResult, monitored_metric
from .base import EngineFatalError
from .optuna_engine import OptunaTrialHandle, trial_seed

if TYPE_CHECKING:
    import keras_tuner

    from ..datasets import Dataset
    from ..worker import Worker

log = logging.getLogger(__name__)

KIND = "keras_tuner"
ATTR_KT_TRIAL_ID = "kt_trial_id"
ATTR_KT_VALUES = "kt_values"  # tuner/epochs, tuner/initial_epoch, tuner/trial_id, ...
ATTR_KT_WEIGHTS = "kt_weights_artifact_id"

RUNNING, IDLE, STOPPED = "RUNNING", "IDLE", "STOPPED"


def _plain(v: Any) -> Any:
    item = getattr(v, "item", None)
    if callable(item):
        return item()
    if isinstance(v, (set, tuple)):
        return list(v)
    raise TypeError(f"cannot store {type(v).__name__} in the oracle state")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=_plain))


def _tuner_id(lease_id: int) -> str:
    return f"lease-{lease_id}"


def _lease_of(tuner_id: str) -> int | None:
    prefix, _, rest = tuner_id.partition("-")
    return int(rest) if prefix == "lease" and rest.isdigit() else None


# --------------------------------------------------------------------------- the oracle


def build_oracle(spec: StudySpec, space: SearchSpace) -> keras_tuner.Oracle:
    """A fresh oracle for the study (no trials yet), doing no file I/O and printing nothing."""
    import keras_tuner as kt

    engine = spec.engine
    assert isinstance(engine, KerasTunerEngineSpec)
    metric, mode = monitored_metric(spec.objectives)
    common: dict[str, Any] = {
        "objective": kt.Objective(metric, direction=mode),
        "hyperparameters": to_keras_tuner(space),
        "seed": spec.seed,
        **engine.options,
    }
    n = spec.budget.n_trials
    try:
        if engine.algorithm == "random":
            oracle = kt.oracles.RandomSearchOracle(max_trials=n, **common)
        elif engine.algorithm == "bayesian":
            oracle = kt.oracles.BayesianOptimizationOracle(max_trials=n, **common)
        elif engine.algorithm == "hyperband":
            oracle = kt.oracles.HyperbandOracle(max_epochs=spec.budget.max_epochs, **common)
        else:
            oracle = kt.oracles.GridSearchOracle(max_trials=n, **common)
    except (TypeError, ValueError) as exc:
        raise EngineFatalError(f"keras_tuner {engine.algorithm} oracle: {exc}") from exc
    # The state goes to the database, not to files; nothing is printed.
    oracle._save_trial = lambda trial: None
    oracle.save = lambda: None
    oracle.verbose = 0
    return oracle


def _release(oracle: Any) -> None:
    """Drop Keras Tuner's process-wide lock entries for a throw-away oracle (they would keep it
    alive for ever)."""
    from keras_tuner.src.engine import oracle as oracle_module

    oracle_module.LOCKS.pop(oracle, None)
    oracle_module.THREADS.pop(oracle, None)


def _load(oracle: Any, state: Mapping[str, Any]) -> None:
    from keras_tuner.src.engine.trial import Trial

    oracle.trials = {tid: Trial.from_state(ts) for tid, ts in state["trials"].items()}
    oracle.set_state(state["oracle"])
    grid = state.get("grid")
    if grid is not None:  # GridSearchOracle keeps these outside get_state()
        oracle._populate_next = list(grid["populate_next"])
        ids = oracle._ordered_ids
        ids._memory = list(grid["memory"])
        ids._data_to_index = dict(grid["data_to_index"])
        ids._next_index.clear()
        ids._next_index.update({int(k): v for k, v in grid["next_index"].items()})
        ids._last_index = grid["last_index"]


def _dump(oracle: Any, book: dict[str, Any]) -> dict[str, Any]:
    state: dict[str, Any] = {
        "oracle": oracle.get_state(),
        "trials": {tid: t.get_state() for tid, t in oracle.trials.items()},
        "book": book,
    }
    if hasattr(oracle, "_ordered_ids"):
        ids = oracle._ordered_ids
        state["grid"] = {
            "populate_next": list(oracle._populate_next),
            "memory": list(ids._memory),
            "data_to_index": dict(ids._data_to_index),
            "next_index": {str(k): v for k, v in ids._next_index.items()},
            "last_index": ids._last_index,
        }
    return _jsonable(state)


@contextlib.contextmanager
def _oracle_from(spec: StudySpec, space: SearchSpace, state: Mapping[str, Any] | None
                 ) -> Iterator[tuple[Any, dict[str, Any]]]:
    oracle = build_oracle(spec, space)
    try:
        book: dict[str, Any] = {"runs": {}, "lost": {}}
        if state is not None:
            _load(oracle, state)
            book = json.loads(json.dumps(state.get("book", book)))
        yield oracle, book
    finally:
        _release(oracle)


def _reconcile(oracle: Any, book: dict[str, Any], active: frozenset[int], max_retries: int
               ) -> list[int]:
    """Hand back the ongoing trials whose lease is no longer active; returns the leases of
    trials that failed for good (their lease then counts as finished)."""
    from keras_tuner.src.engine.trial import TrialStatus

    gave_up: list[int] = []
    for tuner_id, trial in list(oracle.ongoing_trials.items()):
        lease_id = _lease_of(tuner_id)
        if lease_id is None or lease_id in active:
            continue
        lost = book["lost"].get(trial.trial_id, 0) + 1
        book["lost"][trial.trial_id] = lost
        if lost <= max_retries:
            oracle.ongoing_trials.pop(tuner_id)
            oracle._retry_queue.append(trial.trial_id)
            log.warning("keras tuner trial %s: worker lost; retry %d", trial.trial_id, lost)
        else:
            trial.status = TrialStatus.FAILED
            trial.message = f"worker lost {lost} times"
            try:
                oracle.end_trial(trial)
            except RuntimeError as exc:  # too many consecutive failures: the search stops
                raise EngineFatalError(f"keras tuner: {exc}") from exc
            gave_up.append(lease_id)
    return gave_up


# --------------------------------------------------------------------------- one lease


@dataclass
class _Created:
    status: str
    trial_id: str | None = None
    values: dict[str, Any] | None = None
    past_weights: str | None = None
    optuna_numbers: list[int] | None = None
    gave_up: list[int] | None = None


class KerasTunerTrialHandle(OptunaTrialHandle):
    """The Optuna side of a Keras Tuner trial, ending the oracle's trial with it."""

    def __init__(self, engine: KerasTunerEngine, claim: Claim, spec: StudySpec,
                 study: optuna.Study, trial: optuna.Trial, params: dict[str, Any], seed: int,
                 kt_trial_id: str, kt_values: dict[str, Any]) -> None:
        super().__init__(engine.services, study, trial, params, seed, multi=False)
        self.engine = engine
        self.claim = claim
        self.spec = spec
        self.kt_trial_id = kt_trial_id
        self.kt_values = kt_values
        self.history: dict[str, list[float]] = {}
        self.weights_artifact: str | None = None

    def report(self, epoch: int, value: float) -> bool:
        self.trial.report(value, step=epoch)
        return False  # the oracle decides; Keras Tuner does not prune within a trial

    def on_result(self, result: TrialResult) -> None:
        """Keep the epochs' metrics for the oracle; for Hyperband, save the weights a later
        round continues from."""
        self.history = result.history
        continued = (
            self.spec.engine.kind == KIND
            and getattr(self.spec.engine, "algorithm", "") == "hyperband"
            and int(self.kt_values.get("tuner/epochs", 0)) < self.spec.budget.max_epochs
        )
        if continued and result.outcome is Outcome.COMPLETE and result.model is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"kt_trial_{self.kt_trial_id}.weights.h5"
                result.model.save_weights(path)
                self.weights_artifact = optuna.artifacts.upload_artifact(
                    artifact_store=self.services.artifacts,
                    file_path=str(path),
                    study_or_trial=self.trial,
                    mimetype="application/x-hdf5",
                )
            self.trial.set_user_attr(ATTR_KT_WEIGHTS, self.weights_artifact)

    def _epochs(self) -> list[tuple[int, dict[str, float]]]:
        n = len(self.history.get("loss", []))
        first = int(self.kt_values.get("tuner/initial_epoch", 0))
        return [(first + i, {k: v[i] for k, v in self.history.items() if i < len(v)})
                for i in range(n)]

    def complete(self, values: list[float]) -> None:
        self.engine.end_trial(self, "COMPLETED", None)
        super().complete(values)

    def prune(self) -> None:  # never asked for (report never prunes); end it as completed
        self.engine.end_trial(self, "COMPLETED", None)
        super().prune()

    def fail(self, reason: str) -> None:
        self.engine.end_trial(self, "INVALID", reason)
        self._fail_optuna(reason)

    def hand_back(self, reason: str) -> None:
        self.engine.end_trial(self, "RETRY", reason)
        self._fail_optuna(reason)

    def _fail_optuna(self, reason: str) -> None:
        self.trial.set_user_attr(ATTR_FAIL_REASON, reason)
        self.study.tell(self.trial, state=TrialState.FAIL)


class KerasTunerEngine:
    def __init__(self, services: Services) -> None:
        self.services = services

    # --- the locked units of work ---------------------------------------------------------
    def _create(self, c: Claim, spec: StudySpec, space: SearchSpace) -> _Created:
        import keras_tuner  # noqa: F401  (imported before taking the study's lock)

        max_retries = self.services.settings.max_retries

        def fn(state: dict[str, Any] | None, active: frozenset[int]
               ) -> tuple[dict[str, Any], _Created]:
            from keras_tuner.src.engine.trial import TrialStatus

            with _oracle_from(spec, space, state) as (oracle, book):
                gave_up = _reconcile(oracle, book, active, max_retries)
                trial = oracle.create_trial(_tuner_id(c.lease.id))
                out = _Created(str(trial.status), gave_up=gave_up)
                if trial.status == TrialStatus.RUNNING:
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
        to the oracle's retry queue, as Keras Tuner does with the trials of a stopped tuner)."""
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
                        oracle._retry_queue.append(trial.trial_id)
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

        try:
            gave_up = self.services.repo.update_engine_state(handle.claim.study.id, KIND, fn)
        except EngineFatalError as exc:
            self._fail_study(handle.claim, str(exc))
            return
        self._count_given_up(handle.claim.study.id, gave_up)

    def _count_given_up(self, study_id: int, lease_ids: list[int] | None) -> None:
        repo = self.services.repo
        for lease_id in lease_ids or []:
            lease = repo.get_lease(lease_id)
            if lease is not None and lease.trial_id is not None:
                repo.count_lost_lease_as_finished(study_id, lease.trial_id)

    def _fail_study(self, c: Claim, reason: str) -> None:
        log.error("study %s failed: %s", c.study.id, reason)
        self.services.repo.set_study_status(
            c.study.id,
            target=StudyStatus.FAILED,
            reason=reason,
        )

    # --- one lease ------------------------------------------------------------------------
    def next_trial(self, c: Claim, spec: StudySpec, worker_id: str, stop: Any = None
              ) -> KerasTunerTrialHandle | None:
        """The oracle's next trial as an Optuna trial attached to the lease; None when there
        is none to run (the search is over, or the worker is stopping): the lease is dropped.

        Raises:
            EngineFatalError: the oracle cannot be built or stopped the search on failures.
        """
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
                maybe_complete(repo, c.study.id)
                return None
            # IDLE: Hyperband waits for running trials before it can pick the best ones.
            row = repo.get_study(c.study.id)
            stopping = stop is not None and stop.wait(wait)
            if stopping or row is None or row.status not in (
                StudyStatus.RUNNING.value, StudyStatus.QUEUED.value
            ):
                repo.drop_unattached_lease(c.lease.id)
                maybe_complete(repo, c.study.id)
                return None
        assert created.trial_id is not None and created.values is not None
        values = created.values
        full = params_from_keras_tuner(space, values)
        fixed = optuna.trial.FixedTrial(full)
        space.sample(fixed)
        kt_values = {k: _plain_value(v) for k, v in values.items() if k.startswith("tuner/")}
        study = optuna.load_study(study_name=c.study.name, storage=self.services.storage)
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
        trial_id = self.services.storage.create_new_trial(study._study_id, template_trial=template)
        trial = optuna.Trial(study, trial_id)
        repo.attach_trial(c.lease.id, trial_id=trial_id, trial_number=trial.number)
        handle = KerasTunerTrialHandle(
            self, c, spec, study, trial, full, trial_seed(spec.seed, c.lease.seq),
            created.trial_id, kt_values,
        )
        handle.past_weights = created.past_weights  # type: ignore[attr-defined]
        return handle

    def run_claim(self, c: Claim, spec: StudySpec, dataset: Dataset, worker: Worker) -> None:
        handle = self.next_trial(c, spec, worker.id, stop=worker.stop_event)
        if handle is None:
            return
        kt = handle.kt_values
        epochs = int(kt.get("tuner/epochs", spec.budget.max_epochs))
        initial_epoch = int(kt.get("tuner/initial_epoch", 0))
        past = getattr(handle, "past_weights", None)
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
            worker.train(
                c, spec, dataset, handle,
                max_epochs=epochs,
                initial_epoch=initial_epoch,
                initial_weights=weights,
                on_result=handle.on_result,
            )


def _plain_value(v: Any) -> Any:
    item = getattr(v, "item", None)
    return item() if callable(item) else v


__all__ = ["KerasTunerEngine", "KerasTunerTrialHandle", "build_oracle"]
