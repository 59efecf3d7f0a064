"""A trial's fixed cost, part by part, before and after workers.execution's cuts.

A real in-process ``Worker`` (registration, heartbeat thread, ``claim``, Optuna ``ask``,
``run_trial``, record, ``clear_session``) works through blocks of trials on a migrated SQLite
database, one TensorFlow thread. Every trial of a block has the same model (the issue's: 2 conv
blocks x 16 filters, batch norm, GAP, Dense 64, Adam, batch 32) so trials are comparable; the
engine is Optuna (TPE, no pruner). Variants, one block each per round, in a rotating order:

- ``before``: ``ExecutionOptions(steps_per_execution=1, prebuild=False, cached_pipeline=False)``
  -- the worker as it was (NumPy arrays into ``fit``);
- ``arrays`` (not run by default): ``prebuild`` below, fed NumPy arrays as before;
- ``prebuild``: ``ExecutionOptions(steps_per_execution=1, reuse_models=False)`` -- metrics and
  optimizer state built before ``fit``, so the train step is traced once instead of twice, and
  input pipelines built once per worker (workers.input_pipeline): what a trial with a new
  architecture gets;
- ``after``: ``ExecutionOptions()`` -- the worker's defaults: as ``prebuild``, and the last
  trial's traced model reused (every trial here has the same architecture: the case of studies
  that tune only learning rate, batch size, schedule); steps per execution only for trials of
  at least 1,000 batches, so 1 here;
- ``spe32`` (not run by default): ``ExecutionOptions(steps_per_execution=32)`` -- what many
  steps per execution cost a short trial.

Per trial: the cycle runs from the start of ``claim`` to the end of ``clear_session``; epoch k
lasts from the previous epoch's end (``fit``'s ``on_train_begin`` for epoch 0) to its
``on_epoch_end``; the steady epoch is the median of epochs 1.. of that trial. **Fixed cost = cycle
- epochs x steady epoch**: everything that is not steady training (claim, ask, build, compile,
tracing of the train and validation steps, first batches, record, clear session). Parts are
timed by wrapping (monkeypatching, from here) the functions the worker calls.

    python bench/trial_fixed_cost.py [--rounds 3] [--trials 3] [--epochs 3] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import functools
import itertools
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import _common

TARGET = 0.5  # fixed cost after / before

FIXED = _common.SMALL_CNN

DATASETS = {
    "digits": {"name": "digits", "validation_split": 0.2, "test_split": 0.2, "seed": 0},
    "synthetic28": {
        "name": "synthetic", "shape": [28, 28, 1], "n_classes": 10, "n_samples": 2000,
        "validation_split": 0.2, "test_split": 0.0, "seed": 0,
    },
}

PARTS = ["claim", "ask", "set_attrs", "build", "prebuild", "first epoch extra", "record",
         "clear_session"]

_events: list[tuple[str, float, float]] = []
_epochs: list[tuple[str, int, float]] = []  # (mark, epoch, time)


def _timed(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return fn(*a, **kw)
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            _events.append((name, t0, time.perf_counter()))

    return wrapper


def _instrument() -> None:
    import keras

    import workers.trial_runner as tr
    import workers.worker as wk
    from workers.engines.optuna_engine import OptunaEngine, OptunaTrialHandle

    wk.claim = _timed("claim", wk.claim)
    OptunaEngine.start = _timed("ask", OptunaEngine.start)  # type: ignore[method-assign]
    OptunaTrialHandle.set_attrs = _timed("set_attrs", OptunaTrialHandle.set_attrs)  # type: ignore[method-assign]
    tr.build_model = _timed("build", tr.build_model)
    tr.prebuild = _timed("prebuild", tr.prebuild)
    wk.Worker._record = _timed("record", wk.Worker._record)  # type: ignore[method-assign]
    wk.clear_session = _timed("clear_session", wk.clear_session)

    class Marks(keras.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            _epochs.append(("begin", -1, time.perf_counter()))

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            _epochs.append(("end", epoch, time.perf_counter()))

    orig = tr.training_callbacks
    tr.training_callbacks = lambda *a, **kw: [*orig(*a, **kw), Marks()]


def _run_block(tmp: Path, ds: str, variant: str, n: int, epochs: int, k: int) -> list[dict]:
    from workers.execution import ExecutionOptions
    from workers.worker import Worker, WorkerOptions

    execution = {
        "before": ExecutionOptions(steps_per_execution=1, prebuild=False, cached_pipeline=False),
        "arrays": ExecutionOptions(steps_per_execution=1, reuse_models=False,
                                   cached_pipeline=False),
        "prebuild": ExecutionOptions(steps_per_execution=1, reuse_models=False),
        "after": ExecutionOptions(),
        "spe32": ExecutionOptions(steps_per_execution=32),
    }[variant]
    services = _common.migrated_services(tmp / f"b{k}.db")
    spec = {
        "name": f"fixed-{k}",
        "dataset": copy.deepcopy(DATASETS[ds]),
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "engine": {"kind": "optuna", "sampler": "tpe", "pruner": "none"},
        "budget": {"n_trials": n, "max_epochs": epochs, "max_parallel": 1},
        "search_space": {key: {"type": "fixed", "value": v} for key, v in FIXED.items()},
        "seed": 3,
    }
    services.create_study(spec)
    _events.clear()
    _epochs.clear()
    Worker(services, WorkerOptions(max_trials=n, execution=execution)).run()
    services.close()
    claims = sorted(s for nm, s, _ in _events if nm == "claim")
    clears = sorted(e for nm, _, e in _events if nm == "clear_session")
    out = []
    for i, (a, b) in enumerate(zip(claims, clears, strict=False)):
        marks = sorted((t, m, ep) for m, ep, t in _epochs if a <= t <= b)
        times = [t for t, _, _ in marks]
        durs = [t1 - t0 for t0, t1 in itertools.pairwise(times)]
        if len(durs) < 2:
            continue
        steady = _common.median(durs[1:])
        parts = defaultdict(float)
        for nm, s, e in _events:
            if a <= s <= b and nm in PARTS:
                parts[nm] += e - s
        parts["first epoch extra"] = durs[0] - steady
        cycle = b - a
        fixed = cycle - len(durs) * steady
        parts["other"] = fixed - sum(parts[p] for p in PARTS)
        out.append({"trial": i, "cycle": cycle, "steady": steady, "fixed": fixed, **parts})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=3, help="trials per block")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per trial (>= 2)")
    ap.add_argument("--datasets", default="digits,synthetic28")
    ap.add_argument("--variants", default="before,prebuild,after",
                    help="of before,arrays,prebuild,after,spe32")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2 trials of 2 epochs")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.trials, args.epochs = 2, 2, 2
    datasets = args.datasets.split(",")
    variants = args.variants.split(",")

    from workers.runtime import configure_threads

    configure_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-fixed-") as d:
        tmp = Path(d)
        _common.quiet_logging(tmp / "worker.log")
        print(f"machine: {_common.versions(with_tf=True)}; load average {os.getloadavg()}")
        _instrument()
        _run_block(tmp, "digits", "before", 1, 2, 0)  # warm-up (imports, first TF use)
        rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
        k = 1
        started = time.perf_counter()
        for r in range(args.rounds):
            for ds in datasets:
                order = variants[r % len(variants):] + variants[: r % len(variants)]
                for v in order:
                    rows[(ds, v)] += _run_block(tmp, ds, v, args.trials, args.epochs, k)
                    k += 1
        wall = time.perf_counter() - started
        load = os.getloadavg()

    for ds in datasets:
        print(f"\n{ds}: median seconds per trial ({args.rounds} rounds x {args.trials} trials "
              f"x {args.epochs} epochs per variant)")
        headers = ["variant", "n", "fixed", "min", "max", *PARTS, "other", "steady epoch"]
        table = []
        for v in variants:
            rs = rows[(ds, v)]
            fx = [x["fixed"] for x in rs]
            table.append([v, len(rs), _common.median(fx), min(fx), max(fx),
                          *(_common.median(x[p] for x in rs) for p in [*PARTS, "other"]),
                          _common.median(x["steady"] for x in rs)])
        print(_common.table(headers, table))
        if "before" in variants:
            before = _common.median(x["fixed"] for x in rows[(ds, "before")])
            for v in variants[1:]:
                ratio = _common.median(x["fixed"] for x in rows[(ds, v)]) / before
                met = "yes" if ratio <= TARGET else "NO"
                print(f"{ds}: fixed cost {v}/before = {ratio:.2f} (target <= {TARGET}): {met}")
    print(f"\nwall {wall:.0f}s; load average at the end {load}")
    print(json.dumps({f"{ds}/{v}": [round(x["fixed"], 3) for x in rs]
                      for (ds, v), rs in rows.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
