"""Idle gap between two trials of one worker, on CPU.

A real in-process ``Worker(services, WorkerOptions(max_trials=N)).run()`` (registration,
heartbeat thread, ``evaluate_pending``, ``claim``, ``run_claim``) works through a study of N
trials on a migrated SQLite database: examples/digits_optuna.json's space and engine (TPE +
Hyperband) with ``max_epochs`` 2, so trials are short and the gaps between them show.

The gap after trial k is the time from the end of trial k's training (the ``on_train_end`` of a
timing callback, i.e. after ``fit``'s last epoch and BestWeights' restore) to the beginning of
trial k+1's first epoch (its ``on_epoch_begin(0)``). Everything in between is timed by wrapping
(monkeypatching, from this script) the functions the worker calls: ``evaluate_pending``,
``claim``, ``OptunaEngine.start`` (``Study.ask`` and ``SearchSpace.sample`` inside it),
``seed_everything``, ``TrialHandle.set_attrs``, ``build_model``, ``Worker._record`` (with the
model save, ``tell`` and ``end_lease`` inside it) and ``clear_session``. Epoch 0's graph tracing
comes after the gap (it is training time) and is shown separately.

    python bench/idle_gap.py [--trials 11] [--epochs 2] [--what-if none|single-gc|gc-freeze]
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import json
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import _common

TARGET_S = 1.0

_local = threading.local()
events: list[tuple[str, str | None, float, float]] = []  # (name, parent, start, end)
marks: dict[str, list[float]] = defaultdict(list)  # train_end, epoch0_begin, ...


def timed(name: str, fn: Any) -> Any:
    """Wrap ``fn`` so that each call (on the worker's main thread) becomes an event."""

    @functools.wraps(fn)
    def wrapper(*a: Any, **kw: Any) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return fn(*a, **kw)  # the heartbeat thread's calls are not the worker's gap
        stack = getattr(_local, "stack", None)
        if stack is None:
            stack = _local.stack = []
        parent = stack[-1] if stack else None
        stack.append(name)
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            events.append((name, parent, t0, time.perf_counter()))
            stack.pop()

    return wrapper


def patch(obj: Any, attr: str, name: str) -> None:
    setattr(obj, attr, timed(name, getattr(obj, attr)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=11, help="trials (gaps = trials - 1)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per trial (default 2)")
    ap.add_argument(
        "--what-if",
        choices=("none", "single-gc", "gc-freeze"),
        default="none",
        help="measure a possible fix (monkeypatched here, the service is unchanged): "
        "single-gc = workers.runtime.clear_session without its own gc.collect "
        "(Keras' clear_session already collects); gc-freeze = gc.freeze() "
        "once before the worker starts",
    )
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-gap-") as d:
        tmp = Path(d)
        _common.quiet_logging(tmp / "worker.log")
        print(f"machine: {_common.versions(with_tf=True)}")

        import keras
        import optuna

        import search_spaces.space as space_mod
        import workers.trial_context as tc
        import workers.trial_runner as tr
        import workers.worker as wk
        from workers.engines.optuna_engine import OptunaEngine, OptunaTrialHandle

        # --- instrumentation (monkeypatched: see BENCHMARKS.md for a cleaner hook) --------
        patch(wk, "evaluate_pending", "evaluate_pending")
        patch(wk, "claim", "claim")
        patch(OptunaEngine, "start", "engine.start")
        patch(optuna.study.Study, "ask", "ask")
        patch(space_mod.SearchSpace, "sample", "sample")
        patch(tc, "seed_everything", "seed_everything")
        patch(OptunaTrialHandle, "set_attrs", "set_attrs")
        patch(tr, "build_model", "build_model")
        patch(wk.Worker, "_record", "record")
        patch(wk.Worker, "_save_model", "save_model")
        patch(OptunaTrialHandle, "is_better_than_best", "is_better_than_best")
        patch(OptunaTrialHandle, "complete", "tell")
        patch(OptunaTrialHandle, "prune", "tell")
        patch(wk, "end_lease", "end_lease")
        patch(wk, "clear_session", "clear_session")
        patch(keras.backend, "clear_session", "keras.clear_session")
        patch(gc, "collect", "gc.collect")
        if args.what_if == "single-gc":
            # keras.backend.clear_session() already runs gc.collect(): skip the second one.
            import workers.runtime as rt

            class _NoGc:
                @staticmethod
                def collect(*a: Any, **kw: Any) -> int:
                    return 0

            rt.gc = _NoGc()  # type: ignore[assignment]
        patch(tr, "run_trial", "run_trial")
        wk.run_trial = tr.run_trial  # the worker imported the name

        class Marks(keras.callbacks.Callback):
            def on_train_begin(self, logs: Any = None) -> None:
                marks["train_begin"].append(time.perf_counter())

            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                marks[f"epoch{epoch}_begin"].append(time.perf_counter())

            def on_train_end(self, logs: Any = None) -> None:
                marks["train_end"].append(time.perf_counter())

        orig_callbacks = tr.training_callbacks
        tr.training_callbacks = lambda *a, **kw: [*orig_callbacks(*a, **kw), Marks()]

        # --- study and worker ------------------------------------------------------------
        from workers.worker import Worker, WorkerOptions

        services = _common.migrated_services(tmp / "tuner.db")
        raw = json.loads((_common.REPO_ROOT / "examples" / "digits_optuna.json").read_text())
        raw = copy.deepcopy(raw)
        raw["name"] = "idle-gap"
        raw["budget"] = {"n_trials": args.trials, "max_epochs": args.epochs, "max_parallel": 1}
        services.create_study(raw)
        print(
            f"study: examples/digits_optuna.json space (TPE + Hyperband), {args.trials} "
            f"trials of {args.epochs} epochs, one in-process Worker on SQLite; "
            f"what-if: {args.what_if}"
        )
        worker = Worker(services, WorkerOptions(max_trials=args.trials))
        if args.what_if == "gc-freeze":
            gc.collect()
            gc.freeze()  # what's alive now (TensorFlow, Keras, ...) is never scanned again
        t0 = time.perf_counter()
        worker.run()
        total = time.perf_counter() - t0
        services.close()

    # --- gaps ---------------------------------------------------------------------------
    ends, begins = marks["train_end"], marks["epoch0_begin"]
    rt = sorted((s, e) for n, _, s, e in events if n == "run_trial")
    n = min(len(ends), len(begins), len(rt))
    if n < 2:
        print("fewer than two trials ran: no gap to measure")
        return 1
    top_names = [
        "run_trial (after fit)",
        "record",
        "clear_session",
        "evaluate_pending",
        "claim",
        "engine.start",
        "seed_everything",
        "set_attrs",
        "build_model",
        "fit set-up (fit call to epoch 0)",
    ]
    rows = []
    per_name: dict[str, list[float]] = defaultdict(list)
    nested: dict[str, list[float]] = defaultdict(list)
    gaps = []
    saved = []
    for k in range(n - 1):
        a, b = ends[k], begins[k + 1]
        gap = b - a
        gaps.append(gap)
        parts: dict[str, float] = defaultdict(float)
        parts["run_trial (after fit)"] = rt[k][1] - a
        build_end = max(
            (e for nm, _, s, e in events if nm == "build_model" and a < s < b), default=None
        )
        if build_end is not None:
            parts["fit set-up (fit call to epoch 0)"] = b - build_end
        for nm, parent, s, e in events:
            if not (a <= s < b) or nm == "run_trial":
                continue
            if parent is None or parent == "run_trial":
                parts[nm] += e - s
            else:
                nested[f"{parent} > {nm}"].append(e - s)
        saved.append(any(nm == "save_model" and a <= s < b for nm, _, s, _e in events))
        for nm in top_names:
            per_name[nm].append(parts.get(nm, 0.0))
        per_name["other (spec parse, dataset cache, logging, loop)"].append(
            gap - sum(parts.values())
        )
        rows.append(
            [
                k + 1,
                gap,
                "yes" if saved[-1] else "no",
                *(
                    parts.get(nm, 0.0)
                    for nm in ("record", "clear_session", "claim", "engine.start", "build_model")
                ),
            ]
        )

    print()
    print(
        _common.table(
            [
                "gap after trial",
                "gap s",
                "model saved",
                "record",
                "clear_session",
                "claim",
                "engine.start",
                "build_model",
            ],
            rows,
        )
    )
    print("\nbreakdown (median over gaps, seconds):")
    brows = [[nm, _common.median(v), max(v)] for nm, v in per_name.items()]
    brows += [[f"  {nm}", _common.median(v), max(v)] for nm, v in sorted(nested.items())]
    print(_common.table(["part", "median s", "max s"], brows))
    first_epochs = [
        b1 - b0 for b0, b1 in zip(marks["epoch0_begin"], marks["epoch1_begin"], strict=False)
    ]
    last_epochs = [e - b for b, e in zip(marks["epoch1_begin"], ends, strict=False)]
    print(
        "\nnot in the gap: epoch 0 (with graph tracing) median "
        f"{_common.median(first_epochs):.3f}s, epoch 1 median "
        f"{_common.median(last_epochs):.3f}s (last epoch, to train end); whole run {total:.1f}s"
    )
    no_save = [g for g, s in zip(gaps, saved, strict=False) if not s]
    with_save = [g for g, s in zip(gaps, saved, strict=False) if s]
    med, mx = _common.median(gaps), max(gaps)
    print(
        f"\nidle gap over {len(gaps)} gaps: median {med:.3f}s, max {mx:.3f}s "
        f"(target <= {TARGET_S}s); without a model save: median "
        f"{_common.median(no_save):.3f}s (n={len(no_save)}), with one: median "
        f"{_common.median(with_save):.3f}s (n={len(with_save)})"
    )
    if med <= TARGET_S and mx <= TARGET_S:
        verdict = "yes"
    else:
        verdict = "median yes, max NO" if med <= TARGET_S else "NO"
    print(f"target met: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
