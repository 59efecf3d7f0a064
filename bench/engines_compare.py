"""Engines side by side on digits: the same search space and about the same number of epochs
in total, run by the service's worker (in-process, one worker, SQLite).

    .venv/bin/python bench/engines_compare.py            # ~5-8 minutes on 2 CPU cores

Prints a Markdown table: best validation accuracy (the grid path: best mean 3-fold CV
accuracy), epochs trained in total, trials, wall time.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tuner_service.migrate import upgrade
from tuner_service.service import Services
from tuner_service.settings import Settings

# One space every engine can search, the grid included (every dimension enumerable).
SPACE: dict[str, Any] = {
    "conv_blocks": {"type": "categorical", "choices": [1, 2]},
    "convs_per_block": {"type": "fixed", "value": 1},
    "filters": {"type": "categorical", "choices": [8, 16]},
    "dense_units": {"type": "categorical", "choices": [32, 64]},
    "dropout": {"type": "fixed", "value": 0.1},
    "optimizer": {"type": "fixed", "value": "adam"},
    "learning_rate": {"type": "categorical", "choices": [0.003, 0.01]},
    "batch_size": {"type": "fixed", "value": 64},
    "early_stopping_patience": {"type": "fixed", "value": 0},
}
DIGITS = {"name": "digits", "validation_split": 0.2, "test_split": 0.2, "seed": 0}
MAX_EPOCHS = 9  # Hyperband (factor 3) then trains 75 epochs over 23 trials

RUNS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("Optuna TPE + Hyperband pruning",
     {"kind": "optuna", "sampler": "tpe", "pruner": "hyperband"},
     {"n_trials": 14, "max_epochs": MAX_EPOCHS}),
    ("Keras Tuner Hyperband", {"kind": "keras_tuner", "algorithm": "hyperband",
                               "options": {"factor": 3}},
     {"n_trials": 100, "max_epochs": MAX_EPOCHS}),
    ("Keras Tuner random", {"kind": "keras_tuner", "algorithm": "random"},
     {"n_trials": 8, "max_epochs": MAX_EPOCHS}),
    # 8 of the 16 points x 3 folds x 3 epochs = 72 epochs (on two thirds of the data each)
    ("grid (scikeras + 3-fold CV)", {"kind": "sklearn_grid", "cv": 3, "scoring": "accuracy"},
     {"n_trials": 8, "max_epochs": 3}),
]


def main() -> None:
    from workers.runtime import configure_threads
    from workers.worker import Worker, WorkerOptions

    configure_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        services = Services(Settings(database_url=url, poll_interval=0.1))
        for i, (label, engine, budget) in enumerate(RUNS):
            row = services.create_study({
                "name": f"bench-{i}", "dataset": DIGITS, "engine": engine,
                "budget": {**budget, "max_parallel": 1}, "search_space": SPACE, "seed": 11,
            })
            t0 = time.perf_counter()
            Worker(services, WorkerOptions(exit_when_idle=0.3)).run()
            wall = time.perf_counter() - t0
            trials, n = services.list_trials(row.id)
            if engine["kind"] == "sklearn_grid":
                grid = services.grid(row.id)
                best = grid["best_score_"]
                epochs = n * engine["cv"] * budget["max_epochs"]
            else:
                best = services.best(row.id)["value"]
                epochs = sum(int(t["user_attrs"].get("epochs", 0)) for t in trials)
            rows.append((label, best, epochs, n, wall))
            print(f"{label}: best {best:.4f}, {epochs} epochs, {n} trials, {wall:.0f} s",
                  flush=True)
        services.close()
    print("\n| engine | best val. accuracy | epochs in total | trials | wall time (s) |")
    print("| --- | --- | --- | --- | --- |")
    for label, best, epochs, n, wall in rows:
        print(f"| {label} | {best:.4f} | {epochs} | {n} | {wall:.0f} |")


if __name__ == "__main__":
    main()
