"""The best model for the compute: at equal wall-clock budgets on this machine, the service
against standalone anchors, on bundled digits and a harder generated image set.

    .venv/bin/python bench/search_outcome.py            # 2 data sets x 5 x 120 s (~30 min)
    .venv/bin/python bench/search_outcome.py --quick    # digits only, 45 s each (~8 min)
    .venv/bin/python bench/search_outcome.py --budget 60 --repeats 3   # seeds 0-2 (~40 min)

Contenders (same model builder -- :func:`workers.model_builder.build_model` -- and the same
search space, :data:`SPACE`):

* **service**: 2 ``tuner-worker`` processes (1 TensorFlow thread each) on a fresh SQLite
  database, Optuna TPE + Hyperband pruning, ``budget.timeout_s`` = the budget; its final
  evaluation measures the best trial on the test split and builds the ensemble (5 members,
  ``weighted``);
* **Keras Tuner RandomSearch** and **Keras Tuner Hyperband** in one process (2 threads): no new
  trial once the budget has passed (``oracle.max_trials`` is closed), the best model by
  validation accuracy (its best epoch's weights) measured on the test split;
* **plain Optuna**: an Optuna script, TPE + Hyperband pruning, ``study.optimize(timeout=B)``,
  one process (2 threads);
* **GridSearchCV**: the seed notebook's way (scikeras ``KerasClassifier``, ``GridSearchCV(cv=3,
  refit=True)``) over the enumerable grid :data:`GRID` (its size is fixed, so its wall time is
  reported next to the budget rather than cut to it).

Every contender runs its trials for at most ``MAX_EPOCHS`` epochs; the ones that start a trial
before the budget ends finish it (the service's running trials do too). Reported: best
validation accuracy, test accuracy of the kept model, trials run, wall time, time to reach the
target validation accuracy (seconds from the start; ``-`` if never), and for the service the
ensemble's test accuracy next to its best single trial's. The machine is shared: the load
average is printed before and after each dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common
import _outcome_report as report

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MAX_EPOCHS = 9
SPACE: dict[str, Any] = {
    "conv_blocks": {"type": "categorical", "choices": [1, 2]},
    "convs_per_block": {"type": "fixed", "value": 1},
    "filters": {"type": "categorical", "choices": [8, 16, 32]},
    "dense_units": {"type": "categorical", "choices": [32, 64, 128]},
    "dropout": {"type": "categorical", "choices": [0.0, 0.2, 0.4]},
    "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True},
    "batch_size": {"type": "categorical", "choices": [32, 64]},
    "early_stopping_patience": {"type": "fixed", "value": 3},
}
GRID: dict[str, list[Any]] = {  # the seed-style grid, in scikeras names: 4 points x 3 folds
    "model__filters": [8, 16],
    "optimizer__learning_rate": [0.003, 0.01],
}
GRID_FIXED = {"model__conv_blocks": 2, "model__convs_per_block": 1, "model__dense_units": 64,
              "model__dropout": 0.2, "batch_size": 32, "optimizer": "adam"}
DATASETS: dict[str, tuple[dict[str, Any], float]] = {  # spec, target validation accuracy
    "digits": ({"name": "digits", "validation_split": 0.2, "test_split": 0.2, "seed": 0}, 0.97),
    # 32 classes of 75 images: a good model reaches ~0.94 in 9 epochs, a weak one ~0.6 (with
    # 16 classes every contender scored 1.000, which tells nothing apart)
    "generated 12x12, 32 classes": (
        {"name": "synthetic", "shape": [12, 12, 1], "n_classes": 32, "n_samples": 2400,
         "validation_split": 0.2, "test_split": 0.2, "seed": 3},
        0.90,
    ),
}
SEED = 0


class Tracker:
    """Best validation accuracy over time (for the time to reach the target)."""

    def __init__(self, target: float) -> None:
        self.start = time.perf_counter()
        self.target = target
        self.best = 0.0
        self.reached: float | None = None

    def see(self, val_accuracy: float, at: float | None = None) -> None:
        self.best = max(self.best, val_accuracy)
        if self.reached is None and val_accuracy >= self.target:
            self.reached = (time.perf_counter() if at is None else at) - self.start


def _result(name: str, tracker: Tracker, test_acc: float | None, trials: int,
            wall: float, extra: str = "") -> dict[str, Any]:
    return {"contender": name, "best_val_acc": tracker.best, "test_acc": test_acc,
            "trials": trials, "wall_s": wall, "to_target_s": tracker.reached, "note": extra}


# --------------------------------------------------------------------------- the service


def run_service(dataset: dict[str, Any], target: float, budget: float, tmp: Path
                ) -> dict[str, Any]:
    db = tmp / "service.db"
    services = _common.migrated_services(db)
    spec = {
        "name": "outcome", "dataset": dataset, "seed": SEED,
        "engine": {"kind": "optuna", "sampler": "tpe", "pruner": "hyperband"},
        "budget": {"n_trials": 1000, "max_epochs": MAX_EPOCHS, "max_parallel": 2,
                   "timeout_s": budget},
        "ensemble": {"size": 5, "method": "weighted"},
        "search_space": SPACE,
    }
    row = services.create_study(spec)
    env = {**os.environ, "TUNER_DATABASE_URL": _common.sqlite_url(db)}
    cmd = [sys.executable, "-m", "workers.daemon", "--device", "cpu", "--threads", "1",
           "--exit-when-idle", "3", "--poll-interval", "0.2"]
    started = time.perf_counter()
    logs = [open(tmp / f"worker{i}.log", "wb") for i in range(2)]  # noqa: SIM115
    procs = [subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT) for f in logs]
    for p in procs:
        p.wait(timeout=budget * 4 + 600)
    wall = time.perf_counter() - started
    for f in logs:
        f.close()
    detail = services.study_detail(row.id)
    trials, _ = services.list_trials(row.id, limit=1000)
    tracker = Tracker(target)
    t0 = min((_ts(t["datetime_start"]) for t in trials if t["datetime_start"]), default=0.0)
    tracker.start = t0
    for t in sorted(trials, key=lambda t: t["datetime_complete"] or ""):
        if t["state"] == "complete" and t["datetime_complete"]:
            tracker.see(float(t["value"]), at=_ts(t["datetime_complete"]))
    evaluation = detail.get("evaluation") or {}
    test_acc = (evaluation.get("test_metrics") or {}).get("test_accuracy")
    ens = evaluation.get("ensemble") or {}
    note = ""
    if ens.get("test"):
        note = (f"ensemble of {len(ens['members'])} ({ens['method']}): test "
                f"{ens['test']['ensemble']['accuracy']:.3f} vs best trial "
                f"{ens['test']['best_trial']['accuracy']:.3f}; val "
                f"{ens['validation']['ensemble']['accuracy']:.3f} vs "
                f"{ens['validation']['best_trial']['accuracy']:.3f}")
    elif ens:
        note = f"ensemble: {ens.get('error') or ens.get('skipped')}"
    services.close()
    return {**_result("service (2 workers, TPE + Hyperband)", tracker, test_acc, len(trials),
                      wall, note), "ensemble": ens}


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


# --------------------------------------------------------------------------- one process


def _load(dataset: dict[str, Any]) -> Any:
    from tuner_service.spec import DatasetSpec
    from workers.datasets import load_dataset

    return load_dataset(DatasetSpec.model_validate(dataset))


def _space() -> Any:
    from search_spaces import parse_space

    return parse_space(SPACE)


def _callbacks(params: dict[str, Any], tracker: Tracker, extra: list[Any]) -> list[Any]:
    import keras

    from workers.training import training_callbacks

    class Track(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if logs and "val_accuracy" in logs:
                tracker.see(float(logs["val_accuracy"]))

    return [*training_callbacks(params, max_epochs=MAX_EPOCHS), Track(), *extra]


def run_keras_tuner(algorithm: str, dataset: dict[str, Any], target: float, budget: float,
                    tmp: Path) -> dict[str, Any]:
    import keras
    import keras_tuner

    from workers.kt_space import params_from_keras_tuner, to_keras_tuner
    from workers.model_builder import build_model

    data = _load(dataset)
    space = _space()
    tracker = Tracker(target)

    def hypermodel(hp: Any) -> Any:
        to_keras_tuner(space, hp)
        return build_model(params_from_keras_tuner(space, hp.values), data.input_shape,
                           data.n_classes)

    common = {"objective": "val_accuracy", "directory": str(tmp), "project_name": algorithm,
              "overwrite": True, "seed": SEED, "hyperparameters": to_keras_tuner(space)}
    base = keras_tuner.RandomSearch if algorithm == "random" else keras_tuner.Hyperband

    class Tuner(base):  # type: ignore[misc, valid-type]
        def _configure_tensorboard_dir(self, *args: Any, **kw: Any) -> None:
            pass  # keras_tuner imports tensorboard here (not installed; no TensorBoard used)

    if algorithm == "random":
        tuner = Tuner(hypermodel, max_trials=1000, **common)
    else:
        tuner = Tuner(hypermodel, max_epochs=MAX_EPOCHS, factor=3, hyperband_iterations=100,
                      **common)

    class Budget(keras.callbacks.Callback):
        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            if time.perf_counter() - tracker.start > budget:
                tuner.oracle.max_trials = len(tuner.oracle.trials)  # no new trial

    params0 = {"early_stopping_patience": 3}
    tuner.search(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                 epochs=MAX_EPOCHS, verbose=0,
                 callbacks=[c for c in _callbacks(params0, tracker, [Budget()])
                            if not isinstance(c, keras.callbacks.TerminateOnNaN)
                            and type(c).__name__ != "BestWeights"])
    wall = time.perf_counter() - tracker.start
    best = tuner.get_best_models(1)[0]
    test_acc = float(best.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
                     ["accuracy"])
    name = "Keras Tuner RandomSearch" if algorithm == "random" else "Keras Tuner Hyperband"
    return _result(name, tracker, test_acc, len(tuner.oracle.trials), wall)


def run_plain_optuna(dataset: dict[str, Any], target: float, budget: float, tmp: Path
                     ) -> dict[str, Any]:
    import keras
    import optuna

    from workers.model_builder import build_model
    from workers.training import fit_kwargs

    data = _load(dataset)
    space = _space()
    tracker = Tracker(target)
    best: dict[str, Any] = {"val": -1.0, "weights": None, "params": None}

    def objective(trial: optuna.Trial) -> float:
        params = space.sample(trial)
        keras.utils.set_random_seed(SEED + trial.number)
        model = build_model(params, data.input_shape, data.n_classes)

        class Prune(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                trial.report(float((logs or {}).get("val_accuracy", 0.0)), epoch)
                if trial.should_prune():
                    self.model.stop_training = True
                    self.pruned = True

        prune = Prune()
        hist = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val),
                         epochs=MAX_EPOCHS, verbose=0,
                         callbacks=_callbacks(params, tracker, [prune]), **fit_kwargs(params))
        value = max(hist.history["val_accuracy"])
        if value > best["val"]:
            best.update(val=value, weights=model.get_weights(), params=params)
        keras.backend.clear_session()
        if getattr(prune, "pruned", False):
            raise optuna.TrialPruned()
        return value

    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=SEED),
                                pruner=optuna.pruners.HyperbandPruner(max_resource=MAX_EPOCHS))
    study.optimize(objective, timeout=budget)
    wall = time.perf_counter() - tracker.start
    model = build_model(best["params"], data.input_shape, data.n_classes)
    model.set_weights(best["weights"])
    test_acc = float(model.evaluate(data.x_test, data.y_test, verbose=0, return_dict=True)
                     ["accuracy"])
    return _result("plain Optuna script (TPE + Hyperband)", tracker, test_acc,
                   len(study.trials), wall)


def run_grid(dataset: dict[str, Any], target: float, budget: float, tmp: Path
             ) -> dict[str, Any]:
    from sklearn.model_selection import GridSearchCV

    from workers.engines.grid_engine import cv_data, make_estimator

    data = _load(dataset)
    tracker = Tracker(target)
    x, y = cv_data(data)
    est = make_estimator(epochs=MAX_EPOCHS, seed=SEED, **GRID_FIXED)
    search = GridSearchCV(est, GRID, cv=3, scoring="accuracy", refit=True).fit(x, y)
    wall = time.perf_counter() - tracker.start
    tracker.see(float(search.best_score_))  # mean CV accuracy stands for validation accuracy
    tracker.reached = None  # GridSearchCV reports only at the end: no time to target
    test_acc = float(search.score(data.x_test, data.y_test))
    n = len(search.cv_results_["params"])
    return _result("GridSearchCV (scikeras, cv=3, refit)", tracker, test_acc, n, wall,
                   "best_val_acc = best mean CV accuracy; fixed grid: wall time is its own")


# --------------------------------------------------------------------------- main

CONTENDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "service": run_service,
    "kt_random": lambda *a: run_keras_tuner("random", *a),
    "kt_hyperband": lambda *a: run_keras_tuner("hyperband", *a),
    "optuna": run_plain_optuna,
    "grid": run_grid,
}


def _child(name: str, dataset: dict[str, Any], target: float, budget: float,
           seed: int = SEED) -> dict[str, Any]:
    """Each contender in its own process (its own TensorFlow, 2 threads), results as JSON.
    ``seed`` seeds the search (samplers, tuners, weight initialisation), not the data split."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        code = (
            "import json, sys; sys.path.insert(0, 'bench'); import search_outcome as s; "
            f"s.SEED = {int(seed)}; "
            "from workers.runtime import configure_threads; configure_threads(2); "
            f"r = s.CONTENDERS[{name!r}](json.loads({json.dumps(json.dumps(dataset))}), "
            f"{target}, {budget}, __import__('pathlib').Path({tmp!r})); "
            f"open({str(out)!r}, 'w').write(json.dumps(r))"
        )
        err = Path(tmp) / "err.log"
        with err.open("w") as f:
            rc = subprocess.run([sys.executable, "-c", code], cwd=_common.REPO_ROOT,
                                stdout=subprocess.DEVNULL, stderr=f).returncode
        if rc != 0:
            raise RuntimeError(f"{name} failed:\n{err.read_text()[-3000:]}")
        return dict(json.loads(out.read_text()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="digits only, 45 s budgets")
    ap.add_argument("--budget", type=float, default=None, help="seconds per contender")
    ap.add_argument("--only", nargs="*", choices=sorted(CONTENDERS), default=None)
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs per data set with search seeds S, S+1, ...; a summary follows")
    ap.add_argument("--first-seed", type=int, default=SEED, help="S: the first search seed")
    ap.add_argument("--datasets", nargs="*", choices=sorted(DATASETS), default=None)
    args = ap.parse_args()
    budget = args.budget or (45.0 if args.quick else 120.0)
    names = args.datasets or (list(DATASETS)[:1] if args.quick else list(DATASETS))
    print(f"# search outcome at {budget:.0f} s per contender, max_epochs {MAX_EPOCHS}, "
          f"{args.repeats} repeat(s)")
    print(_common.versions(with_tf=False))
    for ds in names:
        spec, target = DATASETS[ds]
        results = []
        for rep in range(args.repeats):
            seed = args.first_seed + rep
            load0 = os.getloadavg()
            rows = []
            for key in args.only or list(CONTENDERS):
                r = _child(key, spec, target, budget, seed)
                rows.append(r)
                print(f"  {ds} / seed {seed} / {r['contender']}: {r}", file=sys.stderr,
                      flush=True)
            results.append(rows)
            load1 = os.getloadavg()
            report.print_rows(ds, target, seed, load0, load1, rows)
        if args.repeats > 1:
            print(f"\n### {ds}: across {args.repeats} repeats (search seeds "
                  f"{args.first_seed}..{args.first_seed + args.repeats - 1})\n")
            print(report.summary(results))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
