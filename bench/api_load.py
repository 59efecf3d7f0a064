"""Load on the real API while workers write: 16 readers poll every read endpoint, 2 writers
submit, pause/resume and enqueue, 2 workers run a study; SQLite and PostgreSQL.

For each database: a fresh database, ``tuner-service serve`` (uvicorn, reaper running) and two
worker processes with the stand-in trainer of tests/reliability/fake_worker.py (0.2 s epochs:
the workers write trials, epochs, heartbeats and leases all the time) on a study of many
trials. Then for ``--seconds`` (default 120), on loopback only:

- 16 reader threads, each with its own HTTP client, request the read endpoints round-robin
  (list studies, a study, its trials, its running trials, best, best model, grid, workers,
  metrics, healthz) with no pause;
- 2 writer threads, every 0.2 s: one submits a small study and pauses/resumes it, the other
  enqueues a warm-start configuration on the running study and pauses/resumes a third one.

Every response is kept: status, latency, and whether its body mentions "database is locked".
Prints a table per database: requests, p50/p99 (ms), 4xx, 5xx and "locked" counts per
endpoint. A 404 is expected where there is nothing to show (the stand-in trainer keeps no
model; grid results exist only for grid studies). The run fails (exit 1) on any 5xx or any
"database is locked" reaching a client.

    python bench/api_load.py [--seconds 120] [--db sqlite,postgres]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import _common
import httpx

sys.path.insert(0, str(_common.REPO_ROOT / "tests"))

from processes import api_server, start_fake_worker, stop_processes, wait_until
from support import tiny_spec

READERS, WRITERS = 16, 2
SETTINGS = {"TUNER_HEARTBEAT_INTERVAL": "1", "TUNER_GRACE_PERIOD": "10",
            "TUNER_POLL_INTERVAL": "0.2", "FAKE_EPOCH_SECONDS": "0.2",
            "FAKE_EVALUATION_SECONDS": "0.1"}
CHEAP_SPACE = {
    "conv_blocks": {"type": "fixed", "value": 0},
    "dense_units": {"type": "categorical", "choices": [4, 8]},
    "learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
}
WARM = {"params": {"dense_units": 8, "learning_rate": 0.01}}


def cheap(name: str, n_trials: int) -> dict[str, object]:
    return tiny_spec(name, search_space=CHEAP_SPACE,
                     dataset={"name": "synthetic", "shape": [4], "n_classes": 2,
                              "n_samples": 60, "seed": 0},
                     budget={"n_trials": n_trials, "max_epochs": 3, "max_parallel": 2})


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.locked: dict[str, int] = defaultdict(int)

    def call(self, client: httpx.Client, label: str, method: str, path: str,
             **kw: object) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            r = client.request(method, path, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError:
            with self.lock:
                self.statuses[label][0] += 1  # transport error (none expected)
            return None
        ms = (time.perf_counter() - started) * 1000
        locked = "database is locked" in r.text
        with self.lock:
            self.latency[label].append(ms)
            self.statuses[label][r.status_code] += 1
            self.locked[label] += locked
        return r


def reader(base: str, sid: int, deadline: float, rec: Recorder) -> None:
    endpoints = [
        ("GET /studies", "/studies"),
        ("GET /studies/{id}", f"/studies/{sid}"),
        ("GET /studies/{id}/trials", f"/studies/{sid}/trials"),
        ("GET /studies/{id}/trials?state=running", f"/studies/{sid}/trials?state=running"),
        ("GET /studies/{id}/best", f"/studies/{sid}/best"),
        ("GET /studies/{id}/best/model", f"/studies/{sid}/best/model"),
        ("GET /studies/{id}/grid", f"/studies/{sid}/grid"),
        ("GET /workers", "/workers"),
        ("GET /metrics", "/metrics"),
        ("GET /healthz", "/healthz"),
    ]
    with httpx.Client(base_url=base, timeout=60) as client:
        i = 0
        while time.monotonic() < deadline:
            label, path = endpoints[i % len(endpoints)]
            rec.call(client, label, "GET", path)
            i += 1


def writer(base: str, which: int, sid: int, other: int, deadline: float, rec: Recorder) -> None:
    with httpx.Client(base_url=base, timeout=60) as client:
        n = 0
        while time.monotonic() < deadline:
            if which == 0:
                r = rec.call(client, "POST /studies", "POST", "/studies",
                             json=cheap(f"load-{n}", 2))
                target = r.json()["id"] if r is not None and r.status_code == 201 else other
            else:
                rec.call(client, "POST /studies/{id}/trials", "POST", f"/studies/{sid}/trials",
                         json=WARM)
                target = other
            rec.call(client, "POST /studies/{id}/pause", "POST", f"/studies/{target}/pause")
            rec.call(client, "POST /studies/{id}/resume", "POST", f"/studies/{target}/resume")
            n += 1
            time.sleep(0.2)


def run(db: str, seconds: float) -> tuple[list[str], bool]:
    with tempfile.TemporaryDirectory() as d, _common.fresh_database(
            db, Path(d), "load") as url, api_server(url, Path(d), **SETTINGS) as server:
        sid = server.post("/studies", cheap("load-main", 100_000)).json()["id"]
        other = server.post("/studies", cheap("load-other", 100_000)).json()["id"]
        workers = [start_fake_worker(url, Path(d), f"w{i}", **SETTINGS) for i in range(2)]
        try:
            wait_until(lambda: server.get(f"/studies/{sid}")["trial_counts"]["complete"] > 0,
                       180, "the workers to finish a trial")
            rec = Recorder()
            deadline = time.monotonic() + seconds
            threads = [threading.Thread(target=reader, args=(server.base, sid, deadline, rec))
                       for _ in range(READERS)]
            threads += [threading.Thread(target=writer,
                                         args=(server.base, w, sid, other, deadline, rec))
                        for w in range(WRITERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=seconds + 120)
            done = server.get(f"/studies/{sid}")["trial_counts"]
        finally:
            stop_processes(workers)
    lines = [f"### {db}: {seconds:.0f} s, {READERS} readers, {WRITERS} writers, 2 workers "
             f"({done['complete']} trials completed meanwhile)", "",
             "| endpoint | requests | p50 ms | p99 ms | 2xx | 4xx | 5xx | \"locked\" |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    ok = True
    for label in sorted(rec.latency):
        lat = sorted(rec.latency[label])
        st = rec.statuses[label]
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
        fivexx = sum(v for k, v in st.items() if k >= 500 or k == 0)
        ok = ok and fivexx == 0 and rec.locked[label] == 0
        lines.append(
            f"| {label} | {len(lat)} | {statistics.median(lat):.0f} | {p99:.0f} | "
            f"{sum(v for k, v in st.items() if 200 <= k < 300)} | "
            f"{sum(v for k, v in st.items() if 400 <= k < 500)} | {fivexx} | "
            f"{rec.locked[label]} |")
    return lines, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--db", default="sqlite,postgres")
    args = parser.parse_args()
    print(_common.versions(with_tf=False))
    all_ok = True
    for db in args.db.split(","):
        lines, ok = run(db, args.seconds)
        print("\n".join(lines), "\n", flush=True)
        all_ok = all_ok and ok
    print("no 5xx, no 'database is locked'" if all_ok else "FAILED: 5xx or 'database is locked'")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
