"""A new engine registered from this module alone (both halves) runs a study end to end through a
real worker: the spec accepts it, creation queues its configurations, the worker's lifecycle
records every trial, and no core file names the engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import optuna
import pytest
from pydantic import Field
from support import tiny_spec

from tuner_service import engines as control_engines
from tuner_service.engines import EngineOptions, EnginePlugin
from tuner_service.errors import Problem, SpecError
from tuner_service.queue import Claim
from tuner_service.retrying import trial_id_of
from tuner_service.service import Services
from tuner_service.spec import StudySpec
from workers import engines as worker_engines
from workers.engines import TrialHandle, WorkerEngine
from workers.engines.optuna_engine import OptunaTrialHandle
from workers.worker import Worker, WorkerOptions

pytestmark = pytest.mark.slow

KIND = "fixed_list"
ATTR_INDEX = "fixed_list_index"


class FixedListOptions(EngineOptions):
    """Run exactly these configurations, in order."""

    kind: Literal["fixed_list"]
    configurations: list[dict[str, Any]] = Field(min_length=1)


class FixedListEngine(EnginePlugin):
    kind = KIND
    options_model: ClassVar[type[EngineOptions]] = FixedListOptions
    single_objective = True

    def problems(self, spec: StudySpec) -> list[Problem]:
        problems = super().problems(spec)
        engine = spec.engine
        assert isinstance(engine, FixedListOptions)
        for i, params in enumerate(engine.configurations):
            for p in spec.space().validate_params(params):
                where = ("engine", "configurations", i, *p.path)
                problems.append(Problem(where, p.message, p.code))
        if spec.budget.n_trials > len(engine.configurations):
            problems.append(Problem(("budget", "n_trials"), "more trials than configurations",
                                    "engine"))
        return problems

    def on_create(self, study: optuna.Study, spec: StudySpec) -> None:
        engine = spec.engine
        assert isinstance(engine, FixedListOptions)
        for i, params in enumerate(engine.configurations[: spec.budget.n_trials]):
            study.enqueue_trial(params, user_attrs={ATTR_INDEX: i})

    def results(self, spec: StudySpec, trials: Sequence[Any]) -> dict[str, Any] | None:
        done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        return {"values": {t.user_attrs[ATTR_INDEX]: t.value for t in done}}


class FixedListWorkerEngine(WorkerEngine):
    """Pops the next queued configuration; trains it with the shared loop (the default run)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def start(
        self, claim: Claim, worker_id: str, stop: threading.Event | None = None
    ) -> TrialHandle | None:
        spec = StudySpec.model_validate(claim.study.spec)
        study = optuna.load_study(study_name=claim.study.name, storage=self.services.storage)
        trial = study.ask()
        self.services.repo.attach_trial(
            claim.lease.id, trial_id=trial_id_of(trial), trial_number=trial.number
        )
        params = spec.space().sample(trial)
        return OptunaTrialHandle(self.services, study, trial, params, seed=7, multi=False)


@pytest.fixture
def fixed_list_engine() -> Iterator[None]:
    control_engines.register(FixedListEngine())
    worker_engines.register(KIND, FixedListWorkerEngine)
    yield
    control_engines.unregister(KIND)
    worker_engines.unregister(KIND)


CONFIGS = [
    {"filters": 4, "dense_units": 8, "learning_rate": 0.01},
    {"filters": 8, "dense_units": 16, "learning_rate": 0.003},
    {"filters": 4, "dense_units": 16, "learning_rate": 0.02},
]


def test_a_registered_engine_runs_a_study_end_to_end(
    services: Services, fixed_list_engine: None
) -> None:
    spec = tiny_spec(
        "fixed", engine={"kind": KIND, "configurations": CONFIGS},
        budget={"n_trials": 3, "max_epochs": 1},
    )
    row = services.create_study(spec)
    worker = Worker(services, WorkerOptions(exit_when_idle=0.5))
    worker.run()
    assert worker.trials_run == 3
    detail = services.study_detail(row.id)
    assert detail["status"] == "completed"
    assert detail["engine"] == KIND
    assert detail["trial_counts"]["complete"] == 3
    assert detail["budget"]["finished"] == 3
    assert detail["evaluation_state"] == "done"  # keeps_model: the best model was evaluated
    trials, _ = services.list_trials(row.id)
    for t in trials:
        i = t["user_attrs"][ATTR_INDEX]
        assert t["params"] == CONFIGS[i]
        assert t["user_attrs"]["epochs"] == 1  # recorded by the worker's lifecycle
        assert t["worker"] == worker.id
    assert sorted(services.grid(row.id)["values"]) == [0, 1, 2]  # the engine's results view


def test_the_engine_checks_its_own_options(services: Services, fixed_list_engine: None) -> None:
    bad = tiny_spec("bad", engine={"kind": KIND, "configurations": [{"filters": 5}]})
    with pytest.raises(SpecError) as err:
        services.create_study(bad)
    assert any(p.path[:3] == ("engine", "configurations", 0) for p in err.value.problems)
    control_engines.unregister(KIND)
    with pytest.raises(SpecError) as err:
        services.create_study(tiny_spec("gone", engine={"kind": KIND, "configurations": []}))
    assert any(p.path[0] == "engine" for p in err.value.problems)


def test_no_core_file_names_the_engine() -> None:
    root = Path(__file__).resolve().parents[2]
    for package in ("tuner_service", "search_spaces", "workers"):
        for path in (root / package).rglob("*.py"):
            assert KIND not in path.read_text(encoding="utf-8"), path
