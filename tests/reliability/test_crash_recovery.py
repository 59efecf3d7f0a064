"""Workers that die: kill -9 in the middle of trials (several times in one study), and a
SIGTERM that hands the running trial back. Real ``tuner-service serve`` and ``tuner-worker``
processes on SQLite (the kill -9 test on MariaDB too), with a 0.5 s heartbeat and a 3 s grace
period."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from processes import (
    FAST,
    ApiServer,
    api_server,
    check_invariants,
    load_record,
    start_worker,
    stop_processes,
    utc_naive,
    wait_done,
    wait_until,
)
from support import tiny_spec

pytestmark = pytest.mark.slow

HEARTBEAT = float(FAST["TUNER_HEARTBEAT_INTERVAL"])
GRACE = float(FAST["TUNER_GRACE_PERIOD"])
MAX_EPOCHS = 45


def training_spec(name: str, *, n_trials: int, max_epochs: int, max_parallel: int,
                  n_samples: int) -> dict[str, Any]:
    """Tiny CNNs whose epochs take a few tens of milliseconds (the input pipeline is cached):
    enough epochs that a kill lands mid-trial although the test polls every 0.25 s."""
    return tiny_spec(
        name,
        dataset={"name": "synthetic", "shape": [8, 8, 1], "n_classes": 3,
                 "n_samples": n_samples, "seed": 0},
        budget={"n_trials": n_trials, "max_epochs": max_epochs, "max_parallel": max_parallel},
    )


def trial_in_training(server: ApiServer, sid: int, pids: dict[int, Any]
                      ) -> tuple[int, int] | None:
    """(pid, trial number) of one of our workers that has reported an epoch of its trial."""
    workers = {w["id"]: w for w in server.get("/workers")["data"]}
    for t in server.get(f"/studies/{sid}/trials", params={"state": "running"})["data"]:
        w = workers.get(t["worker"])
        # an epoch reported, and well before the last one (of MAX_EPOCHS)
        if w and w["pid"] in pids and 1 <= len(t["intermediate_values"]) <= MAX_EPOCHS // 3:
            return int(w["pid"]), int(t["number"])
    return None


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def kill9_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite (one host) and MariaDB (its own locking and isolation); PostgreSQL's crash path
    is covered by tests/reliability/test_outages.py and bench/soak_kill9.py."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tuner.db'}"
    return str(request.getfixturevalue("mariadb_url"))


def test_kill9_mid_trial_repeatedly_study_still_exact(kill9_url: str, tmp_path: Path) -> None:
    url = kill9_url
    extra = {**FAST, "TUNER_MAX_RETRIES": "5"}
    n_trials, kills = 6, 3
    with api_server(url, tmp_path, **extra) as server:
        spec = training_spec("kill9", n_trials=n_trials, max_epochs=MAX_EPOCHS, max_parallel=2,
                             n_samples=1000)
        sid = server.post("/studies", spec).json()["id"]
        procs = {}
        for i in range(2):
            p = start_worker(url, tmp_path, f"w{i}", **extra)
            procs[p.pid] = p
        killed: list[tuple[int, datetime]] = []  # (trial number, when)
        try:
            for k in range(kills):
                pid, number = wait_until(lambda: trial_in_training(server, sid, procs), 180,
                                         "a trial in training")
                when = utc_naive()
                procs[pid].send_signal(signal.SIGKILL)
                assert procs.pop(pid).wait(timeout=30) == -signal.SIGKILL
                killed.append((number, when))
                p = start_worker(url, tmp_path, f"w-replacement{k}", **extra)
                procs[p.pid] = p
            detail = wait_done(server, sid, timeout=300)
        finally:
            codes = stop_processes(list(procs.values()))
        assert detail["status"] == "completed", detail
        assert codes == [0] * len(codes)
        assert server.get("/workers")["count"] == 0

    rec = load_record(url, "kill9")
    check_invariants(rec, n_trials=n_trials, max_parallel=2)
    lost = {le.trial_number: le for le in rec.leases if le.state == "lost"}
    bound = timedelta(seconds=GRACE + 3 * HEARTBEAT)
    for number, when in killed:
        t = rec.by_number[number]
        assert t.state.name == "FAIL" and "worker lost" in t.user_attrs["fail_reason"]
        retry = rec.retry_of(number)
        assert retry is not None, f"trial {number} was not re-queued"
        assert retry.params == t.params
        assert retry.state.is_finished()
        # re-queued within 3 heartbeats after the grace period, counted from the kill
        lease = lost[number]
        assert lease.updated_at - when <= bound, (number, lease.updated_at - when)
        assert lease.updated_at - when >= timedelta(seconds=GRACE - HEARTBEAT)
    assert len(rec.retries()) >= kills


def test_sigterm_hands_the_trial_back_and_exits_cleanly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tuner.db'}"
    with api_server(url, tmp_path, **FAST) as server:
        spec = training_spec("sigterm", n_trials=2, max_epochs=MAX_EPOCHS, max_parallel=1,
                             n_samples=1000)
        sid = server.post("/studies", spec).json()["id"]
        worker = start_worker(url, tmp_path, "w0", **FAST)
        _, number = wait_until(lambda: trial_in_training(server, sid, {worker.pid: worker}),
                               120, "a trial in training")
        assert server.get("/workers")["count"] == 1
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0  # clean exit, at the end of the epoch
        assert time.monotonic() - started < 30
        assert server.get("/workers")["count"] == 0  # unregistered
        trials = server.get(f"/studies/{sid}/trials")["data"]
        handed = next(t for t in trials if t["number"] == number)
        assert handed["state"] == "fail" and handed["fail_reason"] == "worker shutting down"
        retry = next(t for t in trials if t["retry_of"] == number)
        assert retry["state"] == "waiting" and retry["params"] == handed["params"]
        # another worker finishes the study, running the handed-back configuration
        second = start_worker(url, tmp_path, "w1", "--exit-when-idle", "2", **FAST)
        try:
            detail = wait_done(server, sid, timeout=180)
        finally:
            stop_processes([second])
        assert detail["status"] == "completed"
    rec = load_record(url, "sigterm")
    check_invariants(rec, n_trials=2, max_parallel=1)
    retry_trial = rec.retry_of(number)
    assert retry_trial is not None and retry_trial.state.name == "COMPLETE"


