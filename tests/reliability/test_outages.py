"""The control plane goes away in the middle of a study: the API process is restarted, then
the PostgreSQL server is stopped for ~10 s. Workers and the API retry with backoff; the study
completes with nothing lost and nothing counted twice.

Stopping PostgreSQL needs ``pg_ctlcluster`` and root (as in CI); the server is started again in
a ``finally`` whatever happens. Elsewhere the test is skipped, but never under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from processes import (
    ApiServer,
    api_server,
    check_invariants,
    load_record,
    start_fake_worker,
    stop_processes,
    wait_done,
    wait_until,
)
from support import tiny_spec

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.disruptive]

OUTAGE_S = 10.0
SETTINGS = {"TUNER_HEARTBEAT_INTERVAL": "0.5", "TUNER_GRACE_PERIOD": "3",
            "TUNER_POLL_INTERVAL": "0.2", "TUNER_MAX_RETRIES": "5", "FAKE_EPOCH_SECONDS": "0.4"}


def _cluster() -> list[str]:
    if os.geteuid() != 0 or shutil.which("pg_ctlcluster") is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("stopping PostgreSQL needs root and pg_ctlcluster in CI")
        pytest.skip("needs root and pg_ctlcluster to stop PostgreSQL")
    versions = sorted(os.listdir("/etc/postgresql"))
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _pg_up(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@contextmanager
def postgres_stopped(url: str) -> Iterator[None]:
    cluster = _cluster()
    subprocess.run([*cluster, "stop", "-m", "fast"], check=True, timeout=60)
    try:
        assert not _pg_up(url)
        yield
    finally:
        subprocess.run([*cluster, "start"], check=True, timeout=60)
        wait_until(lambda: _pg_up(url), 60, "PostgreSQL back up", interval=0.5)


def _finished(server: ApiServer, sid: int) -> int:
    try:
        return int(server.get(f"/studies/{sid}")["budget"]["finished"])
    except Exception:
        return 0


def test_api_restart_and_postgres_outage_mid_study(pg_url: str, tmp_path: Path) -> None:
    _cluster()  # skip early when the server cannot be stopped here
    n_trials = 30
    spec = tiny_spec("outages", budget={"n_trials": n_trials, "max_epochs": 3,
                                        "max_parallel": 2})
    with api_server(pg_url, tmp_path, **SETTINGS) as server:
        sid = server.post("/studies", spec).json()["id"]
        workers = [start_fake_worker(pg_url, tmp_path, f"w{i}", **SETTINGS) for i in range(2)]
        try:
            wait_until(lambda: _finished(server, sid) >= 4, 240, "4 finished trials")
            server.restart()  # the API goes away and comes back on the same port
            assert server.get(f"/studies/{sid}")["status"] == "running"
            at_outage = wait_until(lambda: _finished(server, sid) >= 10 and
                                   _finished(server, sid), 240, "10 finished trials")
            with postgres_stopped(pg_url):
                time.sleep(OUTAGE_S)
                assert all(w.poll() is None for w in workers)  # waiting, not crashed
            detail = wait_done(server, sid, timeout=300, evaluated=False)
        finally:
            codes = stop_processes(workers)
        assert detail["status"] == "completed", detail
        assert codes == [0, 0]
        assert at_outage < n_trials
    rec = load_record(pg_url, "outages")
    check_invariants(rec, n_trials=n_trials, max_parallel=2)
    logs = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    assert "Retrying" in logs or "retrying" in logs  # the workers did wait for the database
