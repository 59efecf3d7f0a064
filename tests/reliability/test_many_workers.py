"""Eight worker processes on one study of 200 cheap trials, on PostgreSQL and on MariaDB: exact
budget, no duplicate trial numbers, no trial handed to two workers, ``max_parallel`` respected.

The workers are the real daemon (claim, Optuna ask/report/tell, heartbeats, reapers) with
training replaced by a stand-in that reports epochs of made-up metrics (fake_worker.py): eight
TensorFlow trainers on two shared cores would test the CPU scheduler, not the queue. The
heartbeat is relaxed (1 s, grace 10 s) since recovery is tested elsewhere; a worker starved of
CPU for longer is still handled correctly (the invariants hold), only slower."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from processes import (
    api_server,
    check_invariants,
    load_record,
    start_fake_worker,
    stop_processes,
    wait_done,
)
from support import tiny_spec

pytestmark = pytest.mark.slow

N_WORKERS = 8
N_TRIALS = 200
SETTINGS = {"TUNER_HEARTBEAT_INTERVAL": "1", "TUNER_GRACE_PERIOD": "10",
            "TUNER_POLL_INTERVAL": "0.1", "TUNER_MAX_RETRIES": "5", "FAKE_EPOCH_SECONDS": "0.05"}
MAX_PARALLEL = 6  # fewer than the workers, so that the cap is what holds them back

# The cheapest real trial: one dense layer on 60 tabular samples, one epoch.
CHEAP_SPACE = {
    "conv_blocks": {"type": "fixed", "value": 0},
    "dense_units": {"type": "categorical", "choices": [4, 8]},
    "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
    "early_stopping_patience": {"type": "fixed", "value": 0},
    "batch_size": {"type": "fixed", "value": 64},
}


@pytest.fixture(params=[pytest.param("pg_url", marks=pytest.mark.postgres),
                        pytest.param("mariadb_url", marks=pytest.mark.mariadb)])
def server_db_url(request: pytest.FixtureRequest) -> str:
    """The client-server databases: many hosts share one of them."""
    return str(request.getfixturevalue(request.param))


def test_eight_workers_two_hundred_trials(server_db_url: str, tmp_path: Path) -> None:
    url = server_db_url
    spec = tiny_spec(
        "many-workers",
        dataset={"name": "synthetic", "shape": [4], "n_classes": 2, "n_samples": 60, "seed": 0},
        budget={"n_trials": N_TRIALS, "max_epochs": 3, "max_parallel": MAX_PARALLEL},
        search_space=CHEAP_SPACE,
    )
    with api_server(url, tmp_path, **SETTINGS) as server:
        sid = server.post("/studies", spec).json()["id"]
        started = time.monotonic()
        workers = [start_fake_worker(url, tmp_path, f"w{i}", **SETTINGS)
                   for i in range(N_WORKERS)]
        try:
            detail = wait_done(server, sid, timeout=420)
            registered = server.get("/workers")["data"]
        finally:
            codes = stop_processes(workers)
        elapsed = time.monotonic() - started
        assert detail["status"] == "completed", detail
        assert codes == [0] * N_WORKERS
        assert len(registered) == N_WORKERS
    rec = load_record(url, "many-workers")
    check_invariants(rec, n_trials=N_TRIALS, max_parallel=MAX_PARALLEL)
    finished = [le for le in rec.leases if le.state == "finished"]
    # each finished lease belongs to one worker, and the work was spread over many of them
    by_worker = {le.worker_id for le in finished}
    assert len(by_worker) >= N_WORKERS // 2, by_worker
    numbers = sorted(t.number for t in rec.trials)
    assert numbers == list(range(len(numbers)))  # no gaps, no duplicates
    for t in rec.trials:  # every epoch was reported
        assert t.state.name != "COMPLETE" or len(t.intermediate_values) == 3
    lost = [le for le in rec.leases if le.state == "lost"]
    print(f"{N_TRIALS} trials on {N_WORKERS} workers in {elapsed:.0f}s, {len(lost)} lost leases")
