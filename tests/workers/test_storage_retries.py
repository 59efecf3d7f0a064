"""Every Optuna storage call goes through the retry policy: with transient OperationalErrors
injected into the storage's database connection (before statements, and after commits whose
answer is then lost), a worker still completes a study with its exact budget."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from support import tiny_spec

from tuner_service.service import Services
from workers.worker import Worker, WorkerOptions

pytestmark = pytest.mark.slow


class Injector:
    """Raises a transient error on a seeded random share of the events it is hooked to (a
    fixed "every n-th" would fail a call of n statements on every attempt)."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self.raised = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            fire = self._random.random() < self.rate
            if fire:
                self.raised += 1
        if fire:
            raise sa.exc.OperationalError("injected", {}, Exception("server closed the connection"))


def test_study_completes_with_exact_budget_under_transient_storage_errors(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage_engine = services.storage.engine
    before = Injector(rate=0.1, seed=1)  # a statement that never reaches the database

    def before_statement(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            before.tick()

    event.listen(storage_engine, "before_cursor_execute", before_statement)
    lost = Injector(rate=0.1, seed=2)  # a commit that lands, whose answer is lost
    do_commit = storage_engine.dialect.do_commit

    def commit_then_fail(dbapi_conn: Any) -> None:
        do_commit(dbapi_conn)
        lost.tick()

    monkeypatch.setattr(storage_engine.dialect, "do_commit", commit_then_fail)

    n = 4
    row = services.create_study(tiny_spec("flaky", budget={"n_trials": n, "max_epochs": 2}))
    worker = Worker(services, WorkerOptions(exit_when_idle=3.0))
    worker.run()

    event.remove(storage_engine, "before_cursor_execute", before_statement)
    monkeypatch.setattr(storage_engine.dialect, "do_commit", do_commit)
    assert before.raised >= 10 and lost.raised >= 10  # the storage really was flaky
    detail = services.study_detail(row.id)
    assert detail["status"] == "completed"
    assert detail["budget"]["finished"] == n
    assert detail["trial_counts"]["complete"] == n
    trials, _ = services.list_trials(row.id, state="complete")
    for t in trials:  # every completed trial has its whole record
        assert set(t["intermediate_values"]) == {"0", "1"}
        assert t["params"] and t["user_attrs"]["history"]
