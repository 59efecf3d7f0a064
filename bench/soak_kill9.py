"""Soak: kill -9 workers in the middle of trials, again and again, then check the invariants.

A real ``tuner-service serve`` (its reaper is the one that never dies) and W real worker
processes with a stand-in trainer (``tests/reliability/fake_worker.py``: the real daemon loop,
claim, Optuna ask/tell, heartbeats, reaper; each epoch a short sleep) work through one study.
Every few seconds a worker that has reported at least one epoch of its trial, and has epochs
left, is SIGKILLed and a replacement started, until K kills. Then the study must complete,
and ``tests/processes.py``'s ``check_invariants`` must hold: exactly ``n_trials`` finished
leases, no trial handed out twice, no duplicate numbers, nothing left RUNNING, ``max_parallel``
respected, each re-queued trial with the parameters of the one it replaces. Also reported: how
long after each kill its trial was taken back (bound: grace period + 3 heartbeats).

    python bench/soak_kill9.py [--kills 20] [--workers 3] [--trials 80] [--postgres]

``--postgres`` uses a throw-away database on ``TUNER_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) instead of a SQLite file.
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import _common

sys.path.insert(0, str(_common.REPO_ROOT / "tests"))

from processes import (
    ApiServer,
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

HEARTBEAT_S, GRACE_S = 0.5, 3.0


def victim(server: ApiServer, sid: int, procs: dict[int, Any], epochs: int
           ) -> tuple[int, int] | None:
    """(pid, trial number) of one of our workers in the middle of its trial."""
    workers = {w["id"]: w for w in server.get("/workers")["data"]}
    running = server.get(f"/studies/{sid}/trials", params={"state": "running"})["data"]
    candidates = []
    for t in running:
        w = workers.get(t["worker"])
        if w and w["pid"] in procs and 1 <= len(t["intermediate_values"]) <= epochs - 2:
            candidates.append((int(w["pid"]), int(t["number"])))
    return random.choice(candidates) if candidates else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--trials", type=int, default=80)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--epoch-seconds", type=float, default=0.3)
    p.add_argument("--max-parallel", type=int, default=3)
    p.add_argument("--pause", type=float, default=4.0, help="seconds between two kills")
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    random.seed(args.seed)
    extra = {
        "TUNER_HEARTBEAT_INTERVAL": str(HEARTBEAT_S),
        "TUNER_GRACE_PERIOD": str(GRACE_S),
        "TUNER_POLL_INTERVAL": "0.2",
        "TUNER_MAX_RETRIES": str(args.kills + 1),  # one trial may be unlucky many times
        "FAKE_EPOCH_SECONDS": str(args.epoch_seconds),
    }
    kills: list[tuple[int, datetime]] = []  # (trial number, when)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d, _common.fresh_database(
        "postgres" if args.postgres else "sqlite", Path(d), "soak"
    ) as url:
        logs = Path(d)
        db = "PostgreSQL" if args.postgres else "SQLite"
        print(f"{db}, {args.workers} workers (stand-in trainer: {args.epochs} epochs x "
              f"{args.epoch_seconds}s), {args.trials} trials, max_parallel "
              f"{args.max_parallel}, heartbeat {HEARTBEAT_S}s, grace {GRACE_S}s; "
              f"{args.kills} kill -9")
        with api_server(url, logs, **extra) as server:
            spec = tiny_spec("soak", budget={"n_trials": args.trials,
                                             "max_epochs": args.epochs,
                                             "max_parallel": args.max_parallel})
            sid = server.post("/studies", spec).json()["id"]
            procs: dict[int, subprocess.Popen[bytes]] = {}
            started = 0

            def start() -> None:
                nonlocal started
                w = start_fake_worker(url, logs, f"w{started}", **extra)
                started += 1
                procs[w.pid] = w

            for _ in range(args.workers):
                start()
            try:
                while len(kills) < args.kills:
                    if server.get(f"/studies/{sid}")["status"] != "running" and kills:
                        print(f"the study ended after {len(kills)} kills: use more --trials")
                        return 1
                    pid, number = wait_until(
                        lambda: victim(server, sid, procs, args.epochs), 120,
                        "a worker mid-trial", interval=0.1)
                    kills.append((number, utc_naive()))
                    procs[pid].send_signal(signal.SIGKILL)
                    assert procs.pop(pid).wait(timeout=30) == -signal.SIGKILL
                    start()
                    done = server.get(f"/studies/{sid}")["budget"]["finished"]
                    print(f"  kill {len(kills):2d}: pid {pid}, trial {number} "
                          f"({done} finished) at {time.perf_counter() - t0:.0f}s", flush=True)
                    time.sleep(args.pause)
                detail = wait_done(server, sid, timeout=300, evaluated=False)
            finally:
                codes = stop_processes(list(procs.values()))
            alive_after = server.get("/workers")["count"]
        wall = time.perf_counter() - t0
        rec = load_record(url, "soak")

    failures = []
    try:
        check_invariants(rec, n_trials=args.trials, max_parallel=args.max_parallel)
    except AssertionError as exc:
        failures.append(f"invariants: {exc}")
    if detail["status"] != "completed":
        failures.append(f"study {detail['status']}: {detail.get('status_reason')}")
    if codes != [0] * len(codes):
        failures.append(f"workers' exit codes on SIGTERM: {codes}")
    if alive_after:
        failures.append(f"{alive_after} workers still registered")
    lost = {le.trial_number: le for le in rec.leases if le.state == "lost"}
    delays, unretried = [], []
    for number, when in kills:
        retry = rec.retry_of(number)
        if retry is None or retry.params != rec.by_number[number].params:
            unretried.append(number)
        if number in lost:
            delays.append((lost[number].updated_at - when).total_seconds())
    if unretried:
        failures.append(f"killed trials not re-queued with their params: {unretried}")
    bound = timedelta(seconds=GRACE_S + 3 * HEARTBEAT_S).total_seconds()
    finished = [le for le in rec.leases if le.state == "finished"]
    print(f"\nkills: {len(kills)}; study {detail['status']} with {len(finished)} finished "
          f"leases (budget {args.trials}); {len(rec.trials)} Optuna trials, "
          f"{len(rec.retries())} of them re-queued copies; leases lost: {len(lost)}")
    if delays:
        print(f"kill -> trial taken back: median {_common.median(delays):.1f}s, max "
              f"{max(delays):.1f}s (bound grace + 3 x heartbeat = {bound:.1f}s)")
    print(f"whole run {wall:.0f}s; {_common.versions(with_tf=False)}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("invariants hold: exact budget, nothing RUNNING, no trial handed out twice, no "
          "duplicate numbers, max_parallel, re-queued trials keep their params")
    return 0


if __name__ == "__main__":
    sys.exit(main())
