"""``budget.max_device_hours``: no trial is handed out once the recorded device time reaches
the budget; the study completes with that reason and GET /studies/{id} shows used / budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from support import tiny_spec

from tuner_service.errors import SpecError
from tuner_service.service import Services
from workers.trial_runner import Outcome, TrialResult
from workers.worker import Worker, WorkerOptions


def _half_hour_trial(params: Mapping[str, Any], *args: Any, **kw: Any) -> TrialResult:
    """A stand-in trial that says it used 30 minutes of device time."""
    return TrialResult(Outcome.COMPLETE, [0.5], {"val_accuracy": [0.5]}, 1, 10, 1800.0)


class _Worker(Worker):
    run_trial_fn = staticmethod(_half_hour_trial)


def test_study_stops_at_the_device_hour_budget(services: Services) -> None:
    spec = tiny_spec("devhours", budget={"n_trials": 10, "max_epochs": 1,
                                         "max_device_hours": 1.25})
    row = services.create_study(spec)
    w = _Worker(services, WorkerOptions(exit_when_idle=0.5))
    w.run()
    assert w.trials_run == 3  # 0.5 h, 1.0 h, 1.5 h >= 1.25 h: the third is the last
    detail = services.study_detail(row.id)
    assert detail["status"] == "completed"
    assert detail["status_reason"] == "device-hour budget reached"
    assert detail["trial_counts"]["complete"] == 3
    assert detail["budget"]["device_hours_used"] == pytest.approx(1.5)
    assert detail["budget"]["max_device_hours"] == 1.25
    assert detail["budget"]["n_trials"] == 3


def test_without_a_device_budget_the_trial_budget_decides(services: Services) -> None:
    row = services.create_study(tiny_spec("plain", budget={"n_trials": 2, "max_epochs": 1}))
    _Worker(services, WorkerOptions(exit_when_idle=0.5)).run()
    detail = services.study_detail(row.id)
    assert detail["status_reason"] == "budget spent"
    assert detail["budget"]["max_device_hours"] is None


def test_bad_device_budget_names_the_field(services: Services) -> None:
    with pytest.raises(SpecError) as info:
        services.create_study(tiny_spec("bad", budget={"max_device_hours": 0}))
    assert "budget.max_device_hours" in str(info.value)
