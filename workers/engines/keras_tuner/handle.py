"""The Optuna side of a Keras Tuner trial, ending the oracle's trial with it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from tuner_service.optuna_bridge import ATTR_FAIL_REASON
from tuner_service.queue import Claim
from tuner_service.spec import StudySpec

from ...trial_runner import Outcome, TrialResult
from ..optuna_engine import OptunaTrialHandle
from .oracle import ATTR_KT_WEIGHTS

if TYPE_CHECKING:
    from .engine import KerasTunerEngine


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
        self.past_weights: str | None = None  # the weights of the trial this one continues

    def report(self, epoch: int, value: float) -> bool:
        self.trial.report(value, step=epoch)
        return False  # the oracle decides; Keras Tuner does not prune within a trial

    def on_result(self, result: TrialResult) -> None:
        """Keep the epochs' metrics for the oracle; for Hyperband, save the weights a later
        round continues from."""
        self.history = result.history
        continued = (
            getattr(self.spec.engine, "algorithm", "") == "hyperband"
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

    # The oracle's trial ends first; the Optuna trial is told even when the oracle stops the
    # search (EngineFatalError, then raised on to the worker, which fails the study).
    def complete(self, values: list[float]) -> None:
        try:
            self.engine.end_trial(self, "COMPLETED", None)
        finally:
            super().complete(values)

    def prune(self) -> None:  # never asked for (report never prunes); end it as completed
        try:
            self.engine.end_trial(self, "COMPLETED", None)
        finally:
            super().prune()

    def fail(self, reason: str) -> None:
        try:
            self.engine.end_trial(self, "INVALID", reason)
        finally:
            self._fail_optuna(reason)

    def hand_back(self, reason: str) -> None:
        try:
            self.engine.end_trial(self, "RETRY", reason)
        finally:
            self._fail_optuna(reason)

    def _fail_optuna(self, reason: str) -> None:
        try:
            self.trial.set_user_attr(ATTR_FAIL_REASON, reason)
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # already finished: the reaper took it back (with its own reason)
        self._tell(None, TrialState.FAIL)
