"""optuna-dashboard, the real one, on a database in which the service ran an Optuna study, a
Keras Tuner study and a grid study: its own HTTP API lists every study with its trials and
their intermediate values. Also ``tuner-service dashboard`` (optuna-dashboard's app served on
the service's storage, with the saved models)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import optuna
import pytest
from ops_support import TrainedStudy
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
EPOCHS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(cmd: list[str], port: int, log: Path, env: dict[str, str]) -> Iterator[str]:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/api/meta", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd[0]} did not start:\n{log.read_text()}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def add_engine_style_study(url: str, name: str, engine: str, n: int) -> None:
    """A study recorded the way the keras_tuner and sklearn_grid engines record theirs: ordinary
    Optuna trials (params with distributions, one intermediate value per epoch or fold, the
    final value) in the same storage.

    TODO: replace with real engine runs once issue 4 lands (submit the spec with
    ``engine.kind`` keras_tuner / sklearn_grid and run a worker, as for the Optuna study).
    """
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.set_user_attr("engine", engine)
    dists = {
        "filters": CategoricalDistribution([4, 8]),
        "learning_rate": FloatDistribution(1e-3, 3e-2, log=True),
    }
    for i in range(n):
        curve = {step: 0.3 + 0.1 * step + 0.01 * i for step in range(EPOCHS)}
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE,
                params={"filters": [4, 8][i % 2], "learning_rate": 0.001 * (i + 1)},
                distributions=dists,
                value=max(curve.values()),
                intermediate_values=curve,
                user_attrs={"worker": "test"},
            )
        )


@pytest.fixture(scope="module")
def three_studies(trained: TrainedStudy) -> dict[str, int]:
    """study name -> number of trials, for the Optuna, Keras Tuner and grid studies."""
    # replace with real engine runs once issue 4 lands
    add_engine_style_study(trained.url, "ops-keras-tuner", "keras_tuner", 3)
    add_engine_style_study(trained.url, "ops-grid", "sklearn_grid", 4)
    return {trained.name: 2, "ops-keras-tuner": 3, "ops-grid": 4}


def assert_dashboard_lists(base: str, expected: dict[str, int]) -> dict[str, dict]:
    studies = httpx.get(f"{base}/api/studies", timeout=30).json()["study_summaries"]
    by_name = {s["study_name"]: s for s in studies}
    assert set(expected) <= set(by_name)
    details = {}
    for name, n in expected.items():
        d = httpx.get(f"{base}/api/studies/{by_name[name]['study_id']}", timeout=30).json()
        assert d["name"] == name
        assert len(d["trials"]) == n, name
        assert d["has_intermediate_values"] is True
        for t in d["trials"]:
            assert t["state"] == "Complete"
            assert len(t["intermediate_values"]) >= 1, (name, t["number"])
            assert all(isinstance(v["value"], float) for v in t["intermediate_values"])
            assert t["values"] and t["params"]
        assert d["best_trials"]
        details[name] = d
    return details


def test_optuna_dashboard_lists_every_engines_study_with_trials_and_intermediate_values(
    trained: TrainedStudy, three_studies: dict[str, int], tmp_path: Path
) -> None:
    port = _free_port()
    cmd = [str(BIN / "optuna-dashboard"), trained.url, "--port", str(port), "--host", "127.0.0.1"]
    with serving(cmd, port, tmp_path / "dashboard.log", dict(os.environ)) as base:
        details = assert_dashboard_lists(base, three_studies)
    # the worker's trials: one intermediate value per epoch (3)
    for t in details[trained.name]["trials"]:
        assert [v["step"] for v in t["intermediate_values"]] == [0, 1, 2]


def test_tuner_service_dashboard_serves_the_same_and_the_saved_models(
    trained: TrainedStudy, three_studies: dict[str, int], tmp_path: Path
) -> None:
    port = _free_port()
    env = {**os.environ, "TUNER_DATABASE_URL": trained.url}
    cmd = [str(BIN / "tuner-service"), "dashboard", "--port", str(port)]
    with serving(cmd, port, tmp_path / "dashboard.log", env) as base:
        details = assert_dashboard_lists(base, three_studies)
        assert httpx.get(f"{base}/dashboard/", timeout=30).status_code == 200  # the UI
        # the best trial's model, saved by the worker in the database, is listed and served
        best = details[trained.name]["best_trials"][0]
        assert best["artifacts"], best
        art = best["artifacts"][0]
        r = httpx.get(
            f"{base}/artifacts/{best['study_id']}/{best['trial_id']}/{art['artifact_id']}",
            timeout=30,
        )
        assert r.status_code == 200
        _, model = trained.services.best_model(trained.study_id)
        assert r.content == model
