"""Latency of the API's read endpoints on a long study, SQLite and PostgreSQL.

Builds a running study of N finished trials (default 10,000) the way the worker records them:
the example spec's 10 parameters (``momentum`` only with ``sgd``), one value, 10 intermediate
values, the user attributes a real trial has (worker, epochs, per-epoch history, seed, dataset
fingerprint, versions, full params, parameter count, wall and device seconds, model artifact
id), one finished lease per trial; a few trials pruned and failed. The rows are written by
direct bulk SQL ``INSERT``s on Optuna's schema (the ``sa.table()`` definitions of
``tuner_service/reads.py``; parameters through Optuna's own distribution JSON), which takes
seconds where ``study.add_trials`` takes minutes; ``optuna.load_study`` reads the best trial
back as a check. On PostgreSQL the build ends with ``ANALYZE``, as autovacuum would have done.

One study per size (default 10,000 and 100,000 trials) in the same database; then starts the
real API (``tuner-service serve`` in a subprocess, uvicorn, reaper running) and times each
read endpoint of each study: ``--requests`` sequential requests per endpoint and study
(endpoints and studies interleaved round-robin, so load drift hits them alike), then 8
concurrent clients doing the same. Prints p50/p99 per endpoint and size in milliseconds, and
the p99 ratio of the largest size to the smallest.

    python bench/api_latency.py [--trials 10000,100000] [--db sqlite,postgres] [--requests 200]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import _common
import httpx
import optuna
import sqlalchemy as sa
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import TrialState

from tuner_service.models import LeaseRow, StudyRow
from tuner_service.optuna_tables import (
    TRIAL_INTERMEDIATE_VALUES,
    TRIAL_PARAMS,
    TRIAL_USER_ATTRS,
    TRIAL_VALUES,
    TRIALS,
)

SPEC = json.loads((_common.REPO_ROOT / "examples" / "digits_optuna.json").read_text())
EPOCHS = 10
DISTS = {
    "conv_blocks": IntDistribution(1, 2),
    "batch_norm": CategoricalDistribution([False, True]),
    "filters": IntDistribution(8, 32, step=8),
    "head": CategoricalDistribution(["gap", "flatten"]),
    "dense_units": IntDistribution(32, 128, step=32),
    "dropout": FloatDistribution(0.0, 0.5),
    "optimizer": CategoricalDistribution(["adam", "sgd"]),
    "learning_rate": FloatDistribution(1e-4, 1e-1, log=True),
    "momentum": FloatDistribution(0.0, 0.9),
    "batch_size": CategoricalDistribution([32, 64]),
}
DIST_JSON = {k: distribution_to_json(d) for k, d in DISTS.items()}
CHUNK = 2000  # trials per bulk insert


def _endpoints(study_id: int, n: int) -> dict[str, str]:
    last = max(0, n - 100)
    return {
        "GET /studies/{id}": f"/studies/{study_id}",
        "GET /studies/{id}/trials?limit=100": f"/studies/{study_id}/trials?limit=100",
        f"GET /studies/{{id}}/trials?limit=100&offset={last}": (
            f"/studies/{study_id}/trials?limit=100&offset={last}"
        ),
        "GET /studies/{id}/trials?limit=100&state=pruned": (
            f"/studies/{study_id}/trials?limit=100&state=pruned"
        ),
        "GET /studies/{id}/best": f"/studies/{study_id}/best",
        "GET /studies": "/studies",
        "GET /metrics": "/metrics",
    }


# --------------------------------------------------------------------------- building
def _params(rng: random.Random) -> dict[str, Any]:
    p: dict[str, Any] = {}
    for name, d in DISTS.items():
        if name == "momentum" and p["optimizer"] != "sgd":
            continue
        if isinstance(d, CategoricalDistribution):
            p[name] = rng.choice(d.choices)
        elif isinstance(d, IntDistribution):
            p[name] = rng.randrange(d.low, d.high + 1, d.step)
        else:
            p[name] = rng.uniform(d.low, d.high)
    return p


def build_study(services: Any, n: int, seed: int = 0) -> int:
    """A running study with ``n`` finished trials, written by bulk SQL. Returns its id."""
    spec = {**SPEC, "name": f"latency-{n}"}
    spec["budget"] = {**spec["budget"], "n_trials": min(n + 100, 100_000), "max_epochs": EPOCHS}
    row = services.create_study(spec)
    worker = "bench-worker"
    services.repo.register_worker(worker_id=worker, host="bench", pid=1, device="cpu", info={})
    engine = services.engine
    rng = random.Random(seed)
    with engine.begin() as conn:
        first = int(conn.scalar(sa.select(sa.func.coalesce(sa.func.max(TRIALS.c.trial_id), 0))))
    t0 = datetime(2026, 1, 1)
    for lo in range(0, n, CHUNK):
        trials, values, params, inter, attrs, leases = [], [], [], [], [], []
        for number in range(lo, min(n, lo + CHUNK)):
            tid = first + 1 + number
            state = TrialState.PRUNED if number % 7 == 3 else TrialState.COMPLETE
            state = TrialState.FAIL if number % 50 == 11 else state
            start = t0 + timedelta(seconds=30 * number)
            end = start + timedelta(seconds=5 + rng.random() * 40)
            trials.append(
                {"trial_id": tid, "number": number, "study_id": row.optuna_study_id,
                 "state": state, "datetime_start": start, "datetime_complete": end}
            )
            curve = [min(0.99, 0.3 + 0.6 * rng.random() * (e + 1) / EPOCHS) for e in range(EPOCHS)]
            epochs = EPOCHS if state == TrialState.COMPLETE else 1 + number % EPOCHS
            if state == TrialState.COMPLETE:
                values.append({"trial_id": tid, "objective": 0, "value": max(curve),
                               "value_type": "FINITE"})
            if state != TrialState.FAIL:
                inter += [
                    {"trial_id": tid, "step": e, "intermediate_value": curve[e],
                     "intermediate_value_type": "FINITE"}
                    for e in range(epochs)
                ]
            p = _params(rng)
            params += [
                {"trial_id": tid, "param_name": k, "param_value": DISTS[k].to_internal_repr(v),
                 "distribution_json": DIST_JSON[k]}
                for k, v in p.items()
            ]
            wall = (end - start).total_seconds()
            user = {
                "worker": worker, "epochs": epochs, "seed": 42 + number,
                "history": {m: curve[:epochs] for m in ("loss", "accuracy", "val_loss",
                                                        "val_accuracy")},
                "dataset_fingerprint": "9f2c" * 8, "full_params": {**p, "convs_per_block": 1},
                "versions": {"tensorflow": "2.20.0", "keras": "3.12.0", "optuna": "5.0.0"},
                "param_count": 10_000 + number, "wall_time_s": wall, "device_seconds": wall,
                "model_artifact_id": uuid.UUID(int=tid).hex,
            }
            if state == TrialState.FAIL:
                user["fail_reason"] = "ResourceExhaustedError: OOM"
            attrs += [{"trial_id": tid, "key": k, "value_json": json.dumps(v)}
                      for k, v in user.items()]
            leases.append(
                {"study_id": row.id, "worker_id": worker, "state": "finished", "seq": number + 1,
                 "trial_id": tid, "trial_number": number, "created_at": start, "updated_at": end,
                 "active_at_claim": 1}
            )
        with engine.begin() as conn:
            conn.execute(sa.insert(TRIALS), trials)
            for table, rows in ((TRIAL_VALUES, values), (TRIAL_PARAMS, params),
                                (TRIAL_INTERMEDIATE_VALUES, inter), (TRIAL_USER_ATTRS, attrs),
                                (LeaseRow.__table__, leases)):
                if rows:
                    conn.execute(sa.insert(table), rows)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # explicit ids: move the sequence past them
            conn.execute(sa.text(
                "SELECT setval(pg_get_serial_sequence('trials', 'trial_id'), "
                "(SELECT max(trial_id) FROM trials))"
            ))
        conn.execute(sa.update(StudyRow).where(StudyRow.id == row.id).values(
            status="running", started_at=t0, lease_seq=n, leases_finished=n))
    if engine.dialect.name == "postgresql":
        # Planner statistics, as autovacuum would have gathered them while the study grew
        # (the test server runs with autovacuum off; without them PostgreSQL seq-scans).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))
    return int(row.id)


# --------------------------------------------------------------------------- timing
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def api(url: str, log: Path) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "TUNER_DATABASE_URL": url, "TUNER_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "tuner_service.cli", "serve", "--port", str(port), "--no-migrate"]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base}/healthz", timeout=2).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"API did not start; see {log}")
                time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def time_endpoints(base: str, paths: dict[str, str], requests: int, clients: int
                   ) -> dict[str, list[float]]:
    """Milliseconds per request and endpoint; each client walks the endpoints round-robin."""
    out: dict[str, list[float]] = {k: [] for k in paths}

    def client(offset: int) -> list[tuple[str, float]]:
        got = []
        names = list(paths)
        with httpx.Client(base_url=base, timeout=60) as c:
            for i in range(requests * len(names) // clients):
                name = names[(i + offset) % len(names)]
                t = time.perf_counter()
                r = c.get(paths[name])
                got.append((name, (time.perf_counter() - t) * 1000))
                if r.status_code != 200:
                    raise RuntimeError(f"{name}: HTTP {r.status_code} {r.text[:200]}")
        return got

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        for got in pool.map(client, range(clients)):
            for name, ms in got:
                out[name].append(ms)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", default="10000,100000", help="study sizes, comma-separated")
    ap.add_argument("--db", default="sqlite,postgres")
    ap.add_argument("--requests", type=int, default=200, help="per endpoint, size and mode")
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    sizes = [int(x) for x in args.trials.split(",")]
    _common.quiet_logging()
    from tuner_service.migrate import upgrade
    from tuner_service.service import Services
    from tuner_service.settings import Settings

    print(f"# {_common.versions(with_tf=False)}; load average {os.getloadavg()}")
    for kind in args.db.split(","):
        with (
            tempfile.TemporaryDirectory() as d,
            _common.fresh_database(kind, Path(d), "latency") as url,
        ):
            upgrade(url)
            services = Services(Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
            paths: dict[str, str] = {}
            print(f"\n## {kind}")
            for n in sizes:
                t = time.perf_counter()
                study_id = build_study(services, n)
                built = time.perf_counter() - t
                row = services.study_row(study_id)
                # Optuna reads what was written (its own best-trial query and trial loader).
                loaded = optuna.load_study(study_name=row.name, storage=services.storage)
                best = loaded.best_trial
                assert loaded._storage.get_trial(best._trial_id).params == best.params
                print(f"study of {n} trials built in {built:.1f} s "
                      f"(optuna.load_study: best trial #{best.number})")
                paths.update({f"{n}|{k}": v for k, v in _endpoints(study_id, n).items()})
            services.close()
            with api(url, Path(d) / "api.log") as base:
                time_endpoints(base, paths, 3, 1)  # warm-up
                seq = time_endpoints(base, paths, args.requests, 1)
                conc = time_endpoints(base, paths, args.requests, args.clients)
            print(f"load average after the requests: {os.getloadavg()}")
            for title, ms in (("sequential", seq), (f"{args.clients} concurrent clients", conc)):
                print(f"\n{title}: p50 / p99 ms per size; last column: p99 of the largest size"
                      " over p99 of the smallest")
                names = list(_endpoints(0, sizes[0]))
                rows = []
                for i, name in enumerate(names):
                    cells = [ms[f"{n}|{list(_endpoints(0, n))[i]}"] for n in sizes]
                    p99 = [_pct(c, 0.99) for c in cells]
                    pairs = zip(cells, p99, strict=True)
                    rows.append([name.replace(str(max(0, sizes[0] - 100)), "N-100"),
                                 *(f"{_pct(c, 0.5):.1f} / {q:.1f}" for c, q in pairs),
                                 f"{p99[-1] / p99[0]:.2f}x"])
                print(_common.table(["request", *(f"{n:,} trials" for n in sizes), "ratio"],
                                    rows))


if __name__ == "__main__":
    main()
