"""Helpers shared by the tests (importable as ``support``: pytest puts tests/ on the path)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tuner_service.service import Services
from tuner_service.settings import Settings


def make_settings(url: str, **kw: object) -> Settings:
    base: dict[str, object] = {
        "database_url": url,
        "heartbeat_interval": 0.5,
        "grace_period": 2.0,
        "poll_interval": 0.1,
    }
    base.update(kw)
    return Settings(**base)  # type: ignore[arg-type]


TINY_SPACE = {
    "conv_blocks": {"type": "fixed", "value": 1},
    "convs_per_block": {"type": "fixed", "value": 1},
    "filters": {"type": "categorical", "choices": [4, 8]},
    "dense_units": {"type": "categorical", "choices": [8, 16]},
    "dropout": {"type": "fixed", "value": 0.0},
    "batch_norm": {"type": "fixed", "value": False},
    "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    "early_stopping_patience": {"type": "fixed", "value": 0},
    "batch_size": {"type": "fixed", "value": 64},
}


def tiny_spec(name: str = "tiny", **overrides: object) -> dict[str, object]:
    """A study that trains in a second or two per trial on 2 CPU cores."""
    spec: dict[str, object] = {
        "name": name,
        "dataset": {
            "name": "synthetic",
            "shape": [8, 8, 1],
            "n_classes": 3,
            "n_samples": 240,
            "seed": 0,
        },
        "objective": {"metric": "val_accuracy"},
        "engine": {"kind": "optuna", "sampler": "random", "pruner": "none"},
        "budget": {"n_trials": 3, "max_epochs": 2, "max_parallel": 1},
        "search_space": TINY_SPACE,
        "seed": 1,
    }
    spec.update(overrides)
    return spec


@contextmanager
def api_in_thread(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a thread; yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


PER_CLASS = {
    "trial_number": 3,
    "labels": [0, 1, 2],
    "precision": [1.0, 0.5, 0.75],
    "recall": [0.9, 0.6, 0.7],
    "f1": [0.947, 0.545, 0.724],
    "support": [10, 10, 10],
    "confusion_matrix": [[9, 1, 0], [2, 6, 2], [0, 3, 7]],
}


def finished_study(services: Services, name: str, *, per_class: bool = True) -> int:
    """A study with 6 completed trials, each with 3 intermediate values, and (``per_class``) a
    final evaluation's per-class results, as workers leave it (no training)."""
    import optuna

    from tuner_service.optuna_bridge import STUDY_ATTR_TEST_CLASSES

    row = services.create_study(tiny_spec(name, budget={"n_trials": 6, "max_epochs": 3}))
    study = services.optuna_study(row)
    dists = {
        "learning_rate": optuna.distributions.FloatDistribution(1e-3, 3e-2, log=True),
        "filters": optuna.distributions.CategoricalDistribution([4, 8]),
    }
    for i in range(6):
        lr = 1e-3 * (i + 1)
        acc = 0.5 + 0.05 * i
        study.add_trial(
            optuna.trial.create_trial(
                params={"learning_rate": lr, "filters": [4, 8][i % 2]},
                distributions=dists,
                value=acc,
                intermediate_values={0: acc - 0.2, 1: acc - 0.1, 2: acc},
            )
        )
    if per_class:
        study.set_user_attr(STUDY_ATTR_TEST_CLASSES, PER_CLASS)
    return row.id


def tiny_images(n_samples: int, seed: int) -> Any:
    """A small generated image set (8x8x1, 3 classes, a quarter for validation) for tests
    that train real models; returns a ``workers.datasets.Dataset``."""
    from tuner_service.spec import DatasetSpec
    from workers.datasets import load_dataset

    return load_dataset(
        DatasetSpec(
            name="synthetic", shape=[8, 8, 1], n_classes=3, n_samples=n_samples, seed=seed,
            validation_split=0.25,
        )
    )
