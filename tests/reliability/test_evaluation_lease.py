"""Nothing stays stuck after a crash, whatever the hosts' clocks say:

- a worker killed (-9) during a study's final evaluation: the reaper takes the evaluation back
  and another worker does it (its state is never ``running`` without a live holder);
- workers whose clocks are three hours ahead and behind: liveness is judged on the database's
  clock, so no live trial is taken back, and a dead worker's trial is taken back in time.

Real ``tuner-service serve`` and worker processes (the stand-in trainer of fake_worker.py), on
SQLite with a 0.5 s heartbeat and a 3 s grace period."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from processes import (
    FAST,
    api_server,
    check_invariants,
    load_record,
    start_fake_worker,
    stop_processes,
    utc_naive,
    wait_done,
    wait_until,
)
from support import tiny_spec

from tuner_service.db import create_db_engine
from tuner_service.models import StudyRow, WorkerRow

pytestmark = pytest.mark.slow

HEARTBEAT = float(FAST["TUNER_HEARTBEAT_INTERVAL"])
GRACE = float(FAST["TUNER_GRACE_PERIOD"])
THREE_HOURS = str(3 * 3600)


def _evaluation_holder(url: str, name: str) -> tuple[str, str | None, int]:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.select(StudyRow.evaluation_state, WorkerRow.pid,
                          StudyRow.evaluation_attempts)
                .outerjoin(WorkerRow, WorkerRow.id == StudyRow.evaluation_worker_id)
                .where(StudyRow.name == name)
            ).one()
            return str(row[0]), None if row[1] is None else str(row[1]), int(row[2])
    finally:
        engine.dispose()


def test_kill9_during_the_final_evaluation_another_worker_does_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    with api_server(url, tmp_path, **FAST) as server:
        spec = tiny_spec("eval-kill9", budget={"n_trials": 2, "max_epochs": 2, "max_parallel": 1},
                         ensemble={"size": 0})  # the record is the evaluation hook's alone
        sid = server.post("/studies", spec).json()["id"]
        first = start_fake_worker(url, tmp_path, "slow-evaluator", FAKE_EVALUATION_SECONDS="600",
                                  **FAST)
        second = None
        try:
            _, pid, attempts = wait_until(
                lambda: (h := _evaluation_holder(url, "eval-kill9"))[0] == "running" and h,
                180, "the final evaluation to start")
            assert pid == str(first.pid) and attempts == 1
            killed_at = utc_naive()
            first.send_signal(signal.SIGKILL)
            assert first.wait(timeout=30) == -signal.SIGKILL
            # the reaper (in the API) gives it back within the grace period and a few sweeps
            wait_until(lambda: _evaluation_holder(url, "eval-kill9")[0] == "pending",
                       GRACE + 30, "the evaluation to be taken back")
            assert utc_naive() - killed_at >= timedelta(seconds=GRACE - HEARTBEAT)
            second = start_fake_worker(url, tmp_path, "evaluator", FAKE_EVALUATION_SECONDS="0.5",
                                       **FAST)
            detail = wait_done(server, sid, timeout=180)
        finally:
            stop_processes([p for p in (first, second) if p is not None])
        assert detail["status"] == "completed" and detail["evaluation_state"] == "done", detail
    rec = load_record(url, "eval-kill9")
    assert second is not None
    assert rec.row.evaluation is not None
    assert rec.row.evaluation["evaluated_by_pid"] == second.pid  # the second worker did it
    assert rec.row.evaluation_attempts == 2 and rec.row.evaluation_worker_id is None
    check_invariants(rec, n_trials=2, max_parallel=1)


def test_workers_with_clocks_hours_off(tmp_path: Path) -> None:
    """One worker three hours ahead, one three hours behind, trials longer than the grace
    period. Judged on each host's clock, the one behind would look dead at once (its live
    trials taken back) and the one ahead would look alive for hours after dying."""
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    extra = {**FAST, "FAKE_EPOCH_SECONDS": "0.5", "FAKE_EVALUATION_SECONDS": "0.1"}
    n_trials = 6
    with api_server(url, tmp_path, **FAST) as server:
        spec = tiny_spec("skew", budget={"n_trials": n_trials, "max_epochs": 8,
                                         "max_parallel": 2})
        sid = server.post("/studies", spec).json()["id"]
        ahead = start_fake_worker(url, tmp_path, "ahead", FAKE_CLOCK_OFFSET_S=THREE_HOURS,
                                  **extra)
        behind = start_fake_worker(url, tmp_path, "behind", FAKE_CLOCK_OFFSET_S=f"-{THREE_HOURS}",
                                   **extra)
        procs = [ahead, behind]
        try:
            # the worker ahead is killed once it has trained a few epochs of a trial
            def ahead_in_training() -> int | None:
                workers = {w["id"]: w for w in server.get("/workers")["data"]}
                for t in server.get(f"/studies/{sid}/trials", params={"state": "running"})[
                        "data"]:
                    w = workers.get(t["worker"])
                    if w and w["pid"] == ahead.pid and len(t["intermediate_values"]) >= 2:
                        return int(t["number"])
                return None

            number = wait_until(ahead_in_training, 180, "a trial in training on 'ahead'")
            killed_at = utc_naive()
            ahead.send_signal(signal.SIGKILL)
            assert ahead.wait(timeout=30) == -signal.SIGKILL
            procs.remove(ahead)
            detail = wait_done(server, sid, timeout=300)
        finally:
            codes = stop_processes(procs)
        assert detail["status"] == "completed", detail
        assert codes == [0]
    rec = load_record(url, "skew")
    check_invariants(rec, n_trials=n_trials, max_parallel=2)
    lost = [le for le in rec.leases if le.state == "lost"]
    # nothing taken back wrongly: only the killed worker's trial
    assert [le.trial_number for le in lost] == [number], [(le.worker_id, le.reason) for le in lost]
    # nor kept wrongly: taken back within the grace period and a few sweeps of the kill
    assert lost[0].updated_at - killed_at <= timedelta(seconds=GRACE + 4 * HEARTBEAT + 2)
