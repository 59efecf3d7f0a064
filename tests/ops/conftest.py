"""One tiny Optuna study, trained once by an in-process worker with JSON logs on, shared by
the operations tests (logs, cost, dashboard, export, retrain, client, report); and, on the same
database, a Keras Tuner and a grid study for the dashboard tests."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from ops_support import TrainedStudy
from support import TINY_SPACE, make_settings, tiny_spec

from tuner_service.logging_setup import setup_logging
from tuner_service.migrate import upgrade
from tuner_service.service import Services


@pytest.fixture(scope="package")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedStudy]:
    from workers.worker import Worker, WorkerOptions

    tmp = tmp_path_factory.mktemp("ops")
    url = f"sqlite:///{tmp / 'tuner.db'}"
    upgrade(url)
    settings = make_settings(url, log_json=True)  # what TUNER_LOG_JSON=1 sets
    services = Services(settings)
    row = services.create_study(
        tiny_spec(
            "ops-optuna",
            engine={"kind": "optuna", "sampler": "tpe", "pruner": "median"},
            budget={"n_trials": 2, "max_epochs": 3, "max_parallel": 1},
        )
    )
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    buf = io.StringIO()
    setup_logging(settings, stream=buf)
    try:
        Worker(services, WorkerOptions(exit_when_idle=0.5)).run()
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]
    yield TrainedStudy(url, services, row.id, row.name, lines, tmp)
    services.close()


@pytest.fixture(scope="package")
def three_studies(trained: TrainedStudy) -> dict[str, int]:
    """study name -> number of trials: the worker's Optuna study, plus a Keras Tuner study and a
    scikeras grid study that the service's worker runs here on the same database."""
    from workers.worker import Worker, WorkerOptions

    kt = tiny_spec(
        "ops-keras-tuner",
        engine={"kind": "keras_tuner", "algorithm": "random"},
        budget={"n_trials": 2, "max_epochs": 3},
    )
    grid_space = {**TINY_SPACE, "learning_rate": {"type": "fixed", "value": 0.01}}
    grid = tiny_spec(
        "ops-grid",
        engine={"kind": "sklearn_grid", "cv": 2},
        objective={"metric": "accuracy", "direction": "maximize"},
        search_space=grid_space,
        budget={"n_trials": 2, "max_epochs": 1},
    )
    services = trained.services
    for spec in (kt, grid):
        services.create_study(spec)
    Worker(services, WorkerOptions(exit_when_idle=0.5)).run()
    for name in ("ops-keras-tuner", "ops-grid"):
        row = services.repo.get_study_by_name(name)
        assert row is not None and row.status == "completed", (name, row and row.status_reason)
    return {trained.name: 2, "ops-keras-tuner": 2, "ops-grid": 2}
