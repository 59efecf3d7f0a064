"""A worker process whose trials cost almost nothing: the real daemon (claim, Optuna ask,
per-epoch reports, tell, heartbeats, reaper) with training replaced by a stand-in that reports
a few epochs of made-up metrics. For tests and benchmarks of the queue with many processes on
few cores. Run as ``python tests/reliability/fake_worker.py`` with TUNER_* in the environment;
FAKE_EPOCH_SECONDS sets the time one epoch takes (default 0.05). It takes the options that
``tuner-worker --devices`` passes to its children (``--device``, ``--once``, ``--max-trials``,
``--exit-when-idle``), so it can stand in for them.

Two more knobs for the reliability tests: FAKE_EVALUATION_SECONDS replaces the final evaluation
with a stand-in that takes that long and records which process did it; FAKE_CLOCK_OFFSET_S
puts this host's clock that many seconds off (every ``utcnow`` of the control plane)."""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from tuner_service.logging_setup import setup_logging
from tuner_service.service import Services
from tuner_service.settings import load_settings
from tuner_service.spec import ObjectiveSpec
from workers.trial_runner import Decision, EpochHook, Outcome, TrialResult
from workers.worker import Worker, WorkerOptions


def fake_train(params: Mapping[str, Any], dataset: Any, *, objectives: Sequence[ObjectiveSpec],
               max_epochs: int, on_epoch: EpochHook, **_: Any) -> TrialResult:
    started = time.perf_counter()
    epoch_s = float(os.environ.get("FAKE_EPOCH_SECONDS", "0.05"))
    history: dict[str, list[float]] = {"loss": [], "val_loss": [], "accuracy": [],
                                       "val_accuracy": []}
    for epoch in range(max_epochs):
        time.sleep(epoch_s)
        acc = random.random()
        metrics = {"loss": 1 - acc, "val_loss": 1 - acc, "accuracy": acc, "val_accuracy": acc}
        for k, v in metrics.items():
            history[k].append(v)
        decision = on_epoch(epoch, metrics)
        if decision is Decision.STOP:
            return TrialResult(Outcome.HANDED_BACK, None, history, epoch + 1, 0,
                               time.perf_counter() - started, reason="worker shutting down")
        if decision is not Decision.CONTINUE:
            return TrialResult(Outcome.PRUNED, None, history, epoch + 1, 0,
                               time.perf_counter() - started, reason="pruned")
    values = [max(history[o.metric]) if o.metric != "params" else 0.0 for o in objectives]
    return TrialResult(Outcome.COMPLETE, values, history, max_epochs, 0,
                       time.perf_counter() - started)


class FakeWorker(Worker):
    run_trial_fn = staticmethod(fake_train)


def fake_evaluation(*_: Any, **__: Any) -> dict[str, Any]:
    time.sleep(float(os.environ["FAKE_EVALUATION_SECONDS"]))
    return {"evaluated_by_pid": os.getpid()}


def skew_clock(offset_s: float) -> None:
    """This process's wall clock, as the control plane reads it, ``offset_s`` seconds off."""
    import tuner_service.repository.base as base

    real = base.utcnow

    def skewed() -> datetime:
        return real() + timedelta(seconds=offset_s)

    for name, module in list(sys.modules.items()):
        if name.startswith("tuner_service") and getattr(module, "utcnow", None) is real:
            module.utcnow = skewed  # type: ignore[attr-defined]


def main() -> int:
    # the options a ``tuner-worker --devices`` parent hands its children (the rest is ignored)
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="fake")
    parser.add_argument("--once", action="store_true")
    parser.add_argument("--max-trials", type=int)
    parser.add_argument("--exit-when-idle", type=float)
    args, _ = parser.parse_known_args()
    if "FAKE_EVALUATION_SECONDS" in os.environ:
        import workers.evaluation

        workers.evaluation._evaluate = fake_evaluation  # type: ignore[assignment]
    if "FAKE_CLOCK_OFFSET_S" in os.environ:
        skew_clock(float(os.environ["FAKE_CLOCK_OFFSET_S"]))
    settings = load_settings()
    setup_logging(settings)
    services = Services(settings)
    worker = FakeWorker(services, WorkerOptions(
        device=args.device, once=args.once, max_trials=args.max_trials,
        exit_when_idle=args.exit_when_idle))
    worker.install_signal_handlers()
    try:
        return worker.run()
    finally:
        services.close()


if __name__ == "__main__":
    sys.exit(main())
