"""Real processes for the end-to-end and reliability tests (and bench/): ``tuner-service
serve`` and ``tuner-worker`` started with settings in their environment, plus the invariants
every finished study must satisfy, read straight from the database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import optuna
import sqlalchemy as sa
from optuna.trial import TrialState

from tuner_service.db import create_db_engine
from tuner_service.models import LeaseRow, StudyRow
from tuner_service.optuna_bridge import SYS_FAILED_TRIAL, SYS_RETRY_HISTORY, create_optuna_storage

BIN = Path(sys.executable).parent

#: Fast liveness settings for tests: heartbeat every 0.5 s, a worker is lost after 3 s.
FAST = {"TUNER_HEARTBEAT_INTERVAL": "0.5", "TUNER_GRACE_PERIOD": "3", "TUNER_POLL_INTERVAL": "0.2"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "TUNER_DATABASE_URL": url, "TUNER_HEARTBEAT_INTERVAL": "1",
            "TUNER_GRACE_PERIOD": "5", "TUNER_POLL_INTERVAL": "0.2",
            "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "-1", **extra}


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Wait until ``url`` answers 200; raise with the process's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args!r} did not start:\n{log.read_text()}")
        time.sleep(0.2)


class ApiServer:
    """``tuner-service serve`` on a free port; :meth:`restart` keeps the port."""

    def __init__(self, url: str, logs: Path, **extra: str) -> None:
        self.url = url
        self.logs = logs
        self.extra = extra
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        log = (self.logs / f"api{self.starts}.log").open("w")
        self.proc = subprocess.Popen(
            [str(BIN / "tuner-service"), "serve", "--port", str(self.port)],
            env=env(self.url, **self.extra), stdout=log, stderr=subprocess.STDOUT)
        wait_http(f"{self.base}/healthz", self.proc, self.logs / f"api{self.starts}.log", timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def get(self, path: str, **kw: Any) -> Any:
        r = httpx.get(f"{self.base}{path}", timeout=30, **kw)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(f"{self.base}{path}", json=body, timeout=30)


@contextmanager
def api_server(url: str, logs: Path, **extra: str) -> Iterator[ApiServer]:
    server = ApiServer(url, logs, **extra)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def start_worker(url: str, logs: Path, name: str, *args: str, **extra: str
                 ) -> subprocess.Popen[bytes]:
    log = (logs / f"{name}.log").open("a")
    return subprocess.Popen([str(BIN / "tuner-worker"), "--threads", "1", *args],
                            env=env(url, **extra), stdout=log, stderr=subprocess.STDOUT)


def start_fake_worker(url: str, logs: Path, name: str, **extra: str) -> subprocess.Popen[bytes]:
    """A real worker process with a near-free stand-in for training (fake_worker.py)."""
    log = (logs / f"{name}.log").open("a")
    script = Path(__file__).parent / "reliability" / "fake_worker.py"
    return subprocess.Popen([sys.executable, str(script)], env=env(url, **extra), stdout=log,
                            stderr=subprocess.STDOUT)


def stop_processes(procs: list[subprocess.Popen[bytes]], timeout: float = 60) -> list[int]:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    codes = []
    for p in procs:
        try:
            codes.append(p.wait(timeout=timeout))
        except subprocess.TimeoutExpired:
            p.kill()
            codes.append(p.wait())
    return codes


def wait_done(server: ApiServer, sid: int, timeout: float = 420,
              evaluated: bool = True) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = server.get(f"/studies/{sid}")
        except httpx.HTTPError:  # the API is restarting
            time.sleep(0.5)
            continue
        if d["status"] in ("completed", "failed", "cancelled") and (
            not evaluated or d["evaluation_state"] not in ("pending", "running")
        ):
            return dict(d)
        time.sleep(0.5)
    raise AssertionError(f"study {sid} did not finish in {timeout}s")


@dataclass
class StudyRecord:
    """A study as the database holds it, for checking invariants after the fact."""

    row: StudyRow
    leases: list[LeaseRow]
    trials: list[optuna.trial.FrozenTrial]
    by_number: dict[int, optuna.trial.FrozenTrial] = field(default_factory=dict)

    def superseded(self) -> set[int]:
        """Numbers of trials that a re-queued copy replaces."""
        out: set[int] = set()
        for t in self.trials:
            out.update(t.system_attrs.get(SYS_RETRY_HISTORY, []))
        return out

    def retries(self) -> list[optuna.trial.FrozenTrial]:
        return [t for t in self.trials if t.system_attrs.get(SYS_RETRY_HISTORY)]

    def retry_of(self, number: int) -> optuna.trial.FrozenTrial | None:
        for t in self.trials:
            history = t.system_attrs.get(SYS_RETRY_HISTORY, [])
            if history and history[-1] == number:
                return t
        return None


def load_record(url: str, study_name: str) -> StudyRecord:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn, sa.orm.Session(bind=conn) as s:
            row = s.scalars(sa.select(StudyRow).where(StudyRow.name == study_name)).one()
            leases = list(s.scalars(sa.select(LeaseRow).where(LeaseRow.study_id == row.id)
                                    .order_by(LeaseRow.id)))
            s.expunge_all()
    finally:
        engine.dispose()
    storage = create_optuna_storage(url)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        trials = study.get_trials(deepcopy=True)
    finally:
        storage.engine.dispose()
    rec = StudyRecord(row, leases, trials)
    rec.by_number = {t.number: t for t in trials}
    return rec


def check_invariants(rec: StudyRecord, *, n_trials: int, max_parallel: int) -> None:
    """Exact budget, no trial handed to two workers, no duplicate numbers, max_parallel,
    nothing left running, and every re-queued trial a faithful copy of the one it replaces."""
    finished = [le for le in rec.leases if le.state == "finished"]
    assert not [le for le in rec.leases if le.state == "active"], "leases left active"
    assert len(finished) == n_trials, f"{len(finished)} finished leases, want {n_trials}"
    attached = [le.trial_id for le in rec.leases if le.trial_id is not None]
    assert len(attached) == len(set(attached)), "a trial was handed out twice"
    assert all(le.trial_id is not None for le in finished), "a finished lease without trial"
    numbers = [t.number for t in rec.trials]
    assert len(numbers) == len(set(numbers)), "duplicate trial numbers"
    assert not [t.number for t in rec.trials if t.state == TrialState.RUNNING], "RUNNING left"
    by_id = {t._trial_id: t for t in rec.trials}
    counted = {by_id[le.trial_id].number for le in finished}  # type: ignore[index]
    for n in counted:
        assert rec.by_number[n].state.is_finished(), f"trial {n} counted but not finished"
    # Every other finished trial was lost (or handed back) and replaced by a re-queued copy.
    superseded = rec.superseded()
    extra = {t.number for t in rec.trials if t.state.is_finished()} - counted
    assert extra <= superseded, f"finished trials outside the budget: {extra - superseded}"
    assert not counted & superseded, "a counted trial was also re-queued"
    for t in rec.retries():
        history = t.system_attrs[SYS_RETRY_HISTORY]
        original = rec.by_number[history[-1]]
        assert t.params == original.params, (t.number, t.params, original.params)
        assert t.system_attrs[SYS_FAILED_TRIAL] == history[0]
    # max_parallel: leases are what is handed out. Each records, counted under the study's
    # lock, how many of the study's leases were active with it (not wall clocks, which the
    # processes read at slightly different moments).
    most = max(le.active_at_claim for le in rec.leases)
    assert most <= max_parallel, f"max_parallel exceeded: {most} leases at once"


def utc_naive() -> datetime:
    from tuner_service.repository import utcnow

    return utcnow()


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
