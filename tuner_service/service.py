"""The control plane's use cases, shared by the REST API and the CLI.

Built once per process from settings (no global state at import time) and handed down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import optuna
from optuna.trial import TrialState

from .artifacts import DatabaseArtifactStore
from .data_paths import DataPathError, resolve_data_path
from .db import create_db_engine
from .engines import UnknownEngineError, get_engine
from .errors import ConflictError, NotFoundError, Problem, SpecError
from .models import StudyRow
from .optuna_bridge import (
    ATTR_DEVICE_SECONDS,
    ATTR_MODEL_ARTIFACT,
    ATTR_WALL_TIME,
    ATTR_WARM_START,
    create_optuna_storage,
    trial_to_dict,
)
from .reads import TrialReads
from .repository import Repository
from .retrying import RetryingRDBStorage
from .settings import Settings
from .spec import StudySpec, parse_study_spec
from .states import StudyStatus, check_study_transition

log = logging.getLogger(__name__)

STUDY_ATTR_SPEC = "tuner_spec"
STUDY_ATTR_ID = "tuner_study_id"


@dataclass
class Services:
    """What every process of the control plane needs: settings, database, Optuna storage."""

    settings: Settings

    @cached_property
    def engine(self):  # type: ignore[no-untyped-def]
        return create_db_engine(self.settings.database_url)

    @cached_property
    def repo(self) -> Repository:
        return Repository(self.engine)

    @cached_property
    def reads(self) -> TrialReads:
        """Page-sized reads of the study's trials (SQLite: on a read-only engine)."""
        return TrialReads(
            create_db_engine(self.settings.database_url, read_only=True),
            sum_keys=(ATTR_WALL_TIME, ATTR_DEVICE_SECONDS),
        )

    @cached_property
    def storage(self) -> RetryingRDBStorage:
        return create_optuna_storage(self.settings.database_url)

    @cached_property
    def artifacts(self) -> DatabaseArtifactStore:
        return DatabaseArtifactStore(self.repo)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "storage" in self.__dict__:
            self.storage.engine.dispose()
        if "reads" in self.__dict__:
            self.reads.engine.dispose()

    # --- helpers --------------------------------------------------------------------------
    def study_row(self, study_id: int) -> StudyRow:
        """Raises:
        NotFoundError: no study has this id.
        """
        row = self.repo.get_study(study_id)
        if row is None:
            raise NotFoundError(f"study {study_id} not found")
        return row

    def optuna_study(self, row: StudyRow) -> optuna.Study:
        return optuna.load_study(study_name=row.name, storage=self.storage)

    # --- studies --------------------------------------------------------------------------
    def create_study(self, raw: Mapping[str, Any] | StudySpec) -> StudyRow:
        """Validate and queue a study (a StudySpec, e.g. the API's parsed request body, is not
        validated again: only the checks that need the whole spec run).

        Raises:
            SpecError: the spec is invalid (every problem listed).
            ConflictError: a study with this name exists.
        """
        spec = parse_study_spec(raw)
        problems = self._dataset_path_problems(spec)
        if problems:
            raise SpecError(problems)
        if self.repo.get_study_by_name(spec.name) is not None:
            raise ConflictError(f"a study named '{spec.name}' already exists")
        spec_json = spec.model_dump(mode="json")
        try:
            study = optuna.create_study(
                study_name=spec.name,
                storage=self.storage,
                directions=list(spec.directions),  # type: ignore[arg-type]
            )
        except optuna.exceptions.DuplicatedStudyError as exc:
            if not self._drop_orphan_optuna_study(spec.name):
                raise ConflictError(f"a study named '{spec.name}' already exists") from exc
            study = optuna.create_study(
                study_name=spec.name,
                storage=self.storage,
                directions=list(spec.directions),  # type: ignore[arg-type]
            )
        study.set_user_attr(STUDY_ATTR_SPEC, spec_json)
        study.set_user_attr("engine", spec.engine.kind)
        try:
            row = self.repo.insert_study(
                name=spec.name,
                optuna_study_id=self.storage.get_study_id_from_name(spec.name),
                spec=spec_json,
                engine_kind=spec.engine.kind,
                n_trials=spec.budget.n_trials,
                max_parallel=spec.budget.max_parallel,
                timeout_s=spec.budget.timeout_s,
            )
        except Exception:
            optuna.delete_study(study_name=spec.name, storage=self.storage)
            raise
        study.set_user_attr(STUDY_ATTR_ID, row.id)
        get_engine(spec.engine.kind).on_create(study, spec)
        log.info("study %s '%s' queued", row.id, row.name)
        return row

    def _drop_orphan_optuna_study(self, name: str) -> bool:
        """Delete the Optuna study ``name`` when it is what an interrupted creation of ours
        left (no service row, no trial, no user attribute but our spec): an answer lost after
        Optuna committed the study, or a process stopped before our row was written. Another
        program's study (trials, its own attributes) is left alone. Returns whether it went."""
        try:
            study = optuna.load_study(study_name=name, storage=self.storage)
        except KeyError:
            return True  # gone in the meantime
        leftovers = set(study.user_attrs) - {STUDY_ATTR_SPEC, "engine"}
        if study.get_trials(deepcopy=False) or leftovers:
            return False
        log.warning("study '%s': removing the Optuna study an interrupted creation left", name)
        optuna.delete_study(study_name=name, storage=self.storage)
        return True

    def _dataset_path_problems(self, spec: StudySpec) -> list[Problem]:
        """A file dataset's path must stay inside the data root (``..``, absolute paths
        elsewhere, symlinks leaving it). A path that does not exist here is fine: workers may
        see another filesystem, and they report a missing file themselves."""
        if spec.dataset.path is None:
            return []
        try:
            resolve_data_path(self.settings.data_root, spec.dataset.path)
        except DataPathError:
            # The message names no server path (the worker's own error does, in its log).
            msg = (
                f"path {spec.dataset.path!r} is empty or leaves the data root "
                "(paths are relative to TUNER_DATA_ROOT; '..', absolute paths elsewhere and "
                "symlinks pointing out are refused)"
            )
            return [Problem(("dataset", "path"), msg, "path_outside_data_root")]
        return []

    def list_studies(
        self, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        rows, count = self.repo.list_studies(status=status, limit=limit, offset=offset)
        return [self.study_summary(r) for r in rows], count

    def study_summary(self, row: StudyRow) -> dict[str, Any]:
        return {
            "id": row.id,
            "name": row.name,
            "status": row.status,
            "status_reason": row.status_reason,
            "engine": row.engine_kind,
            "n_trials": row.n_trials,
            "max_parallel": row.max_parallel,
            "created_at": row.created_at.isoformat(),
            "started_at": row.started_at.isoformat() if row.started_at else None,
            "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        }

    def study_detail(self, study_id: int) -> dict[str, Any]:
        """A study with its trial counts, budget use, totals and best trial(s): aggregates
        and indexed lookups, so its cost does not grow with the study."""
        row = self.study_row(study_id)
        view = self.reads.overview(row.optuna_study_id)
        best = view.best
        counts = self.repo.lease_counts(row.id)
        return {
            **self.study_summary(row),
            "spec": row.spec,
            "updated_at": row.updated_at.isoformat(),
            "directions": [d.name.lower() for d in view.directions],
            "trial_counts": view.counts,
            "budget": {
                "n_trials": row.n_trials,
                "handed_out": counts.used,
                "finished": counts.finished,
                "running": counts.active,
                "retried": counts.lost,
                "device_hours_used": view.sums[ATTR_DEVICE_SECONDS] / 3600.0,
                "max_device_hours": row.spec.get("budget", {}).get("max_device_hours"),
            },
            "best_trial": _best_summary(best[0]) if len(best) == 1 else None,
            "best_trials": [_best_summary(t) for t in best] if len(best) > 1 else None,
            "evaluation_state": row.evaluation_state,
            "evaluation": row.evaluation,
            "total_trial_seconds": view.sums[ATTR_WALL_TIME],
            "total_device_seconds": view.sums[ATTR_DEVICE_SECONDS],
        }

    def list_trials(
        self, study_id: int, *, state: str | None = None, limit: int = 100, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of trials, ordered by number, cut by the database."""
        row = self.study_row(study_id)
        states = None if state is None else (TrialState[state.upper()],)
        page, count, workers = self.reads.page(
            row.optuna_study_id, states=states, limit=limit, offset=offset, study_id=row.id
        )
        out = []
        for t in page:
            d = trial_to_dict(t)
            d["worker"] = d["worker"] or workers.get(t.number)
            out.append(d)
        return out, count

    def best(self, study_id: int) -> dict[str, Any]:
        """Raises:
        NotFoundError: unknown study, or no trial has finished yet.
        """
        row = self.study_row(study_id)
        best = self.reads.best(row.optuna_study_id)
        if not best:
            raise NotFoundError(f"study {study_id} has no finished trial yet")
        trials = [trial_to_dict(t) for t in best]
        ev = row.evaluation or {}
        for t in trials:
            t["test_metrics"] = (
                ev.get("test_metrics") if ev.get("trial_number") == t["number"] else None
            )
            # the trial's own model, or the study's model built for it (a grid's refit)
            t["model_artifact_id"] = t["user_attrs"].get(ATTR_MODEL_ARTIFACT) or (
                ev.get("model_artifact_id") if ev.get("trial_number") == t["number"] else None
            )
        result: dict[str, Any] = {"study_id": row.id, "evaluation_state": row.evaluation_state}
        if len(trials) == 1:
            result.update(trials[0])
        else:
            result["trials"] = trials
        return result

    def grid(self, study_id: int) -> dict[str, Any]:
        """The engine's own results view: for a grid study, ``GridSearchCV``'s shape
        (``cv_results_``, ``best_params_``, ``best_score_``, ``best_index_``, and after the
        refit ``refit_time_`` and the refitted model's ``test_score``).

        Raises:
            NotFoundError: unknown study, or its engine has no results view.
        """
        row = self.study_row(study_id)
        spec = StudySpec.model_validate(row.spec)
        try:
            engine = get_engine(row.engine_kind)
        except UnknownEngineError as exc:
            raise NotFoundError(f"study {study_id}: {exc}") from exc
        results = engine.results(spec, self.optuna_study(row).get_trials(deepcopy=False))
        if results is None:
            raise NotFoundError(
                f"study {study_id} is not a grid study (its '{row.engine_kind}' engine has no "
                "grid results)"
            )
        ev = row.evaluation or {}
        refit = {k: ev.get(k) for k in ("refit_time_", "test_score")} if ev.get("refit") else {}
        return {"study_id": row.id, "status": row.status, **results, **refit}

    def best_model(self, study_id: int) -> tuple[str, bytes]:
        """The best trial's saved ``.keras`` file: (file name, bytes).

        Raises:
            NotFoundError: no finished trial, or its model was not saved.
        """
        best = self.best(study_id)
        artifact_id = best.get("model_artifact_id")
        if not artifact_id:
            raise NotFoundError(f"study {study_id}: the best trial's model was not saved")
        data = self.repo.get_artifact(artifact_id)
        if data is None:
            raise NotFoundError(f"study {study_id}: model artifact {artifact_id} is missing")
        return f"study{study_id}-trial{best['number']}.keras", data

    def enqueue_trial(self, study_id: int, params: Mapping[str, Any]) -> None:
        """Warm start: a known configuration, run before sampled ones.

        Raises:
            NotFoundError: unknown study.
            SpecError: the params do not fit the study's search space.
            ConflictError: the study is finished.
        """
        row = self.study_row(study_id)
        if StudyStatus(row.status).is_final:
            raise ConflictError(f"study {study_id} is {row.status}; it runs no more trials")
        spec = StudySpec.model_validate(row.spec)
        problems = spec.space().validate_params(params)
        if problems:
            raise SpecError([Problem(("params", *p.path), p.message, p.code) for p in problems])
        study = self.optuna_study(row)
        study.enqueue_trial(dict(params), user_attrs={ATTR_WARM_START: True})

    def pause(self, study_id: int) -> StudyRow:
        return self._transition(study_id, StudyStatus.PAUSED)

    def resume(self, study_id: int) -> StudyRow:
        row = self.study_row(study_id)
        target = StudyStatus.RUNNING if row.started_at else StudyStatus.QUEUED
        return self._transition(study_id, target, only_from=(StudyStatus.PAUSED,))

    def cancel(self, study_id: int) -> StudyRow:
        return self._transition(study_id, StudyStatus.CANCELLED, reason="cancelled by user")

    def _transition(
        self,
        study_id: int,
        target: StudyStatus,
        *,
        reason: str | None = None,
        only_from: tuple[StudyStatus, ...] | None = None,
    ) -> StudyRow:
        for _ in range(5):  # compare-and-set; retry if a worker changed the status meanwhile
            row = self.study_row(study_id)
            current = StudyStatus(row.status)
            if only_from is not None and current not in only_from:
                raise ConflictError(f"study {study_id} is {current.value}, not paused")
            check_study_transition(current, target)
            if self.repo.set_study_status(
                study_id, expected=[current], target=target, reason=reason
            ):
                return self.study_row(study_id)
        raise ConflictError(f"study {study_id} changed status concurrently; try again")

    def workers(self, *, include_stopped: bool = False) -> list[dict[str, Any]]:
        out = []
        for w, lease in self.repo.list_workers(include_stopped=include_stopped):
            out.append(
                {
                    "id": w.id,
                    "host": w.host,
                    "pid": w.pid,
                    "device": w.device,
                    "status": w.status,
                    "started_at": w.started_at.isoformat(),
                    "last_heartbeat": w.last_heartbeat.isoformat(),
                    "current_trial": None
                    if lease is None
                    else {
                        "study_id": lease.study_id,
                        "trial_number": lease.trial_number,
                    },
                }
            )
        return out


def _best_summary(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
    d = trial_to_dict(t)
    return {
        "number": d["number"],
        "value": d["value"],
        "values": d["values"],
        "params": d["params"],
    }
