"""Out of device memory -> half the batch, down to the floor (the error injected by the fault
hook on the CPU)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from support import TINY_SPACE, tiny_spec

from tuner_service.service import Services
from workers.faults import OOM_ABOVE_BATCH_ENV
from workers.oom import is_out_of_memory, next_batch_size, train_with_batch_fallback
from workers.trial_runner import Outcome, TrialResult
from workers.worker import Worker, WorkerOptions


def test_out_of_memory_errors_are_recognised() -> None:
    import tensorflow as tf

    assert is_out_of_memory(tf.errors.ResourceExhaustedError(None, None, "x"))
    assert is_out_of_memory(RuntimeError("CUDA_ERROR_OUT_OF_MEMORY: out of memory"))
    assert is_out_of_memory(RuntimeError("OOM when allocating tensor with shape[512,64]"))
    assert not is_out_of_memory(ValueError("shapes (None, 3) and (None, 4) are incompatible"))
    assert not is_out_of_memory(None)


def test_halving_stops_at_the_floor() -> None:
    assert next_batch_size(256) == 128
    assert next_batch_size(12) == 8
    assert next_batch_size(8) is None
    assert next_batch_size(4) is None


def _fake_train(limit: int, tried: list[tuple[int, float]]) -> Any:
    """A trainer that runs out of memory above ``limit`` and records each try."""
    from search_spaces.vocabulary import effective_learning_rate

    def train(params: Mapping[str, Any]) -> TrialResult:
        batch = int(params["batch_size"])
        tried.append((batch, effective_learning_rate(params)))
        if batch > limit:
            err = RuntimeError("OOM when allocating tensor")
            return TrialResult(Outcome.FAILED, None, {}, 0, 0, 1.0, reason=str(err), error=err)
        return TrialResult(Outcome.COMPLETE, [0.5], {}, 1, 10, 1.0)

    return train


def test_batch_is_halved_and_the_learning_rate_follows_lr_scaling() -> None:
    tried: list[tuple[int, float]] = []
    params = {"batch_size": 64, "learning_rate": 0.08, "lr_scaling": "linear",
              "lr_reference_batch_size": 64}
    result = train_with_batch_fallback(_fake_train(16, tried), params)
    assert result.outcome is Outcome.COMPLETE
    assert tried == [(64, 0.08), (32, 0.04), (16, 0.02)]
    assert result.attrs == {"batch_size_used": 16, "batch_halvings": 2,
                            "effective_learning_rate": 0.02}
    assert result.wall_time_s == 3.0  # every try counts


def test_below_the_floor_the_trial_fails_with_the_reason() -> None:
    tried: list[tuple[int, float]] = []
    result = train_with_batch_fallback(_fake_train(0, tried), {"batch_size": 64})
    assert result.outcome is Outcome.FAILED
    assert result.reason == "does not fit in device memory even at batch 8"
    assert [b for b, _ in tried] == [64, 32, 16, 8]
    assert result.attrs["batch_halvings"] == 3


def test_other_failures_are_not_retried() -> None:
    calls: list[int] = []

    def train(params: Mapping[str, Any]) -> TrialResult:
        calls.append(int(params["batch_size"]))
        err = ValueError("bad shapes")
        return TrialResult(Outcome.FAILED, None, {}, 0, 0, 1.0, reason=str(err), error=err)

    result = train_with_batch_fallback(train, {"batch_size": 64})
    assert calls == [64] and result.reason == "bad shapes"


def _trials(services: Services, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=services.storage).trials


def _run_with_oom_above(services: Services, monkeypatch: pytest.MonkeyPatch, limit: int,
                        name: str, *, batch_size: int) -> Worker:
    """Two one-epoch trials of ``batch_size`` on a device that runs out of memory above
    ``limit`` (the fault hook)."""
    monkeypatch.setenv(OOM_ABOVE_BATCH_ENV, str(limit))
    space = {**TINY_SPACE, "batch_size": {"type": "fixed", "value": batch_size}}
    services.create_study(tiny_spec(name, search_space=space,
                                    budget={"n_trials": 2, "max_epochs": 1}))
    w = Worker(services, WorkerOptions(exit_when_idle=0.5))
    w.run()
    return w


@pytest.mark.slow
def test_worker_halves_the_injected_oom_and_keeps_serving(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    _run_with_oom_above(services, monkeypatch, 16, "fits", batch_size=64)
    trials = _trials(services, "fits")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    for t in trials:
        assert t.user_attrs["batch_size_used"] == 16
        assert t.user_attrs["batch_halvings"] == 2
        assert t.params.get("batch_size", 64) == 64  # the asked-for value stays the trial's


@pytest.mark.slow
def test_worker_fails_a_trial_below_the_floor_and_goes_on(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = _run_with_oom_above(services, monkeypatch, 4, "too-big", batch_size=32)
    assert w.trials_run == 2  # the worker served the next trial after the first failed
    trials = _trials(services, "too-big")
    assert [t.state for t in trials] == [TrialState.FAIL] * 2
    assert all(t.user_attrs["fail_reason"] == "does not fit in device memory even at batch 8"
               for t in trials)
    assert trials[0].user_attrs["batch_halvings"] == 2
    assert services.study_detail(1)["status"] == "completed"
