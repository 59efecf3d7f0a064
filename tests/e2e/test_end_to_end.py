"""The product's main path with real processes: ``tuner-service serve`` plus two
``tuner-worker`` daemons run a digits study to completion, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import optuna
import pytest
from support import TINY_SPACE

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(url: str) -> dict[str, str]:
    return {
        **os.environ,
        "TUNER_DATABASE_URL": url,
        "TUNER_HEARTBEAT_INTERVAL": "1",
        "TUNER_GRACE_PERIOD": "10",
        "TUNER_POLL_INTERVAL": "0.2",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


@contextmanager
def api_server(url: str, logs: Path) -> Iterator[str]:
    port = _free_port()
    log = (logs / "api.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "tuner-service"), "serve", "--port", str(port)],
        env=_env(url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("API did not start:\n" + (logs / "api.log").read_text())
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def start_worker(url: str, logs: Path, name: str) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("w")
    return subprocess.Popen(
        [str(BIN / "tuner-worker"), "--threads", "1"],
        env=_env(url),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_done(base: str, sid: int, timeout: float = 420) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        d = httpx.get(f"{base}/studies/{sid}", timeout=10).json()
        if d["status"] in ("completed", "failed", "cancelled") and d["evaluation_state"] not in (
            "pending",
            "running",
        ):
            return d
        time.sleep(0.5)
    raise AssertionError(f"study {sid} did not finish in {timeout}s")


def max_overlap(intervals: list[tuple[str, str]]) -> int:
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def run_study_end_to_end(url: str, tmp_path: Path) -> None:
    spec = {
        "name": "digits-e2e",
        "dataset": {"name": "digits", "validation_split": 0.2, "seed": 0},
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "engine": {"kind": "optuna", "sampler": "tpe", "pruner": "median"},
        "budget": {"n_trials": 6, "max_epochs": 2, "max_parallel": 2},
        "search_space": TINY_SPACE,
        "seed": 7,
    }
    with api_server(url, tmp_path) as base:
        r = httpx.post(f"{base}/studies", json=spec, timeout=30)
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        workers = [start_worker(url, tmp_path, f"worker{i}") for i in range(2)]
        try:
            detail = wait_done(base, sid)
            assert detail["status"] == "completed", detail
            registered = httpx.get(f"{base}/workers", timeout=10).json()
            assert registered["count"] == 2
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            codes = [w.wait(timeout=60) for w in workers]
        assert codes == [0, 0]
        counts = detail["trial_counts"]
        assert counts["complete"] + counts["pruned"] + counts["fail"] == 6
        assert counts["running"] == 0 and counts["waiting"] == 0
        trials = httpx.get(f"{base}/studies/{sid}/trials", timeout=10).json()["data"]
        assert len(trials) == 6
        assert len({t["worker"] for t in trials}) == 2  # both workers trained
        assert max_overlap([(t["datetime_start"], t["datetime_complete"]) for t in trials]) <= 2
        best = httpx.get(f"{base}/studies/{sid}/best", timeout=10).json()
        assert 0.0 <= best["test_metrics"]["test_accuracy"] <= 1.0
        model = httpx.get(f"{base}/studies/{sid}/best/model", timeout=30)
        assert model.status_code == 200 and len(model.content) > 1000
        workers_after = httpx.get(f"{base}/workers", timeout=10).json()
        assert workers_after["count"] == 0  # both unregistered cleanly
    # plain Optuna sees every trial with its params and per-epoch values
    study = optuna.load_study(study_name="digits-e2e", storage=url)
    assert len(study.trials) == 6
    for t in study.trials:
        assert "learning_rate" in t.params
        assert t.intermediate_values


def test_end_to_end_on_sqlite(tmp_path: Path) -> None:
    run_study_end_to_end(f"sqlite:///{tmp_path / 'tuner.db'}", tmp_path)


@pytest.mark.postgres
def test_end_to_end_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    run_study_end_to_end(pg_url, tmp_path)
