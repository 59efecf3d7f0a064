"""Per-trial coordination overhead: the service's path vs stock Optuna, no-op objective.

Service path, per trial (what a worker does around training, minus the training):
    tuner_service.queue.claim -> OptunaEngine.start (ask + attach + sample; the engine keeps
    one optuna.Study and sampler per study, as the worker does)
    -> handle.report(0, v) (trial.report + should_prune) -> handle.complete([v])
    -> tuner_service.queue.end_lease(FINISHED)
Stock path: ``optuna.create_study(storage=RDBStorage(sqlite file))`` then
    ``study.optimize(objective, n_trials)`` whose objective samples the same space with
    ``search_spaces.parse_space(...).sample(trial)``, reports one value, calls should_prune
    and returns a constant.
Both use examples/digits_optuna.json's space, a TPE sampler and a Hyperband pruner (the
example's engine). The baseline ``stock`` runs on an ``RDBStorage`` configured like the
service's (``create_optuna_storage``: WAL, synchronous=NORMAL, BEGIN IMMEDIATE -- the same kind
of SQLite file); ``stock_default`` (a plain ``RDBStorage(url)``: rollback journal,
synchronous=FULL) and ``stock_reload`` (stock ask/tell with ``optuna.load_study`` per trial, as
the service's engine does) are shown for context and diagnosis.

Blocks of trials alternate between the variants (the order rotates each round), each block on
a fresh database: a SQLite file in a temporary directory, or with ``--db postgres`` a new
PostgreSQL database (``TUNER_TEST_POSTGRES_URL``'s server; dropped at the end; both paths then
use that server, and ``stock``/``stock_default`` are both a plain ``RDBStorage`` there). Study
creation and migrations are not timed.
With ``--profile`` (or automatically when the ratio is above the target) one more service
block and one stock block run under SQL statement counting and cProfile, and the statements
per trial are listed by the step that issues them.

    python bench/coordination_overhead.py [--db sqlite|postgres] [--blocks 8] [--trials 20]
                                          [--profile]
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import io
import json
import os
import pstats
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import _common

TARGET = 1.2
VALUE = 0.5
SPEC_PATH = _common.REPO_ROOT / "examples" / "digits_optuna.json"


def load_spec(name: str, n_trials: int) -> dict[str, Any]:
    raw = json.loads(SPEC_PATH.read_text())
    raw = copy.deepcopy(raw)
    raw["name"] = name
    raw["budget"] = {**raw["budget"], "n_trials": n_trials, "max_parallel": 1}
    return raw


# --------------------------------------------------------------------------- service path

_step: list[str] = ["setup"]  # the step being run (for the SQL statement attribution)
_databases = ExitStack()  # the blocks' databases, dropped at the end of the run
_kind = ["sqlite"]  # --db


def new_database(tmp: Path, name: str) -> str:
    return _databases.enter_context(_common.fresh_database(_kind[0], tmp, name))


def service_block(
    tmp: Path,
    tag: str,
    n: int,
    *,
    instrument: bool = False,
    profiler: cProfile.Profile | None = None,
) -> tuple[float, dict[str, float], Any]:
    """Run ``n`` trials through the service's path; returns (seconds, seconds per step,
    the Services -- still open when ``instrument``, closed otherwise)."""
    from tuner_service.queue import claim, end_lease
    from tuner_service.states import LeaseState
    from workers.engines.optuna_engine import OptunaEngine

    services = _common.migrated_services(new_database(tmp, f"svc-{tag}"))
    services.create_study(load_spec(f"coord-{tag}", n))
    repo = services.repo
    wid = f"bench-{tag}"
    # Leases reference a registered worker (a worker registers once at start: not timed).
    repo.register_worker(worker_id=wid, host="bench", pid=0, device="cpu", info={})
    steps: dict[str, float] = defaultdict(float)
    if instrument:
        _attach_counters(services.engine, "tuner")
        _attach_counters(services.storage.engine, "optuna")
    pc = time.perf_counter
    if profiler is not None:
        profiler.enable()
    engine = OptunaEngine(services)  # one per worker process, as Worker keeps it
    t0 = pc()
    for _ in range(n):
        a = pc()
        _step[0] = "claim"
        c = claim(repo, wid)
        assert c is not None, "the study ran out of budget early"
        b = pc()
        _step[0] = "start (ask+attach+sample)"
        handle = engine.start(c, wid)
        d = pc()
        _step[0] = "report+should_prune"
        handle.report(0, VALUE)
        e = pc()
        _step[0] = "complete (tell)"
        handle.complete([VALUE])
        f = pc()
        _step[0] = "end_lease (+maybe_complete)"
        end_lease(repo, c.lease, LeaseState.FINISHED)
        g = pc()
        steps["claim"] += b - a
        steps["start"] += d - b
        steps["report"] += e - d
        steps["complete"] += f - e
        steps["end_lease"] += g - f
    total = pc() - t0
    if profiler is not None:
        profiler.disable()
    _step[0] = "setup"
    if not instrument:
        services.close()
    return total, dict(steps), services


# --------------------------------------------------------------------------- stock path


def stock_block(tmp: Path, tag: str, n: int, *, variant: str, instrument: bool = False) -> float:
    """``n`` trials of stock Optuna; ``variant``:

    * ``stock`` -- ``study.optimize`` on an ``RDBStorage`` built by the service's
      ``create_optuna_storage`` (WAL, synchronous=NORMAL, BEGIN IMMEDIATE: the same kind of
      SQLite file as the service's). The baseline of the ratio.
    * ``stock_default`` -- ``study.optimize`` on a plain ``RDBStorage(url)`` (SQLite defaults:
      rollback journal, synchronous=FULL, an fsync per commit).
    * ``stock_reload`` -- diagnostic: an ask/tell loop on the ``stock`` storage that, like the
      service's engine, calls ``optuna.load_study`` with a freshly built sampler and pruner for
      every trial (so Optuna's per-Study trial cache starts cold each time).
    """
    import optuna

    from search_spaces import parse_space
    from tuner_service.optuna_bridge import create_optuna_storage

    raw = load_spec("x", n)
    space = parse_space(raw["search_space"])
    max_epochs = raw["budget"]["max_epochs"]
    url = new_database(tmp, f"{variant}-{tag}")
    # On a server both are what a stock Optuna user builds: a plain RDBStorage(url).
    plain = variant == "stock_default" or _kind[0] != "sqlite"
    storage = optuna.storages.RDBStorage(url) if plain else create_optuna_storage(url)
    name = f"coord-{tag}"
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=raw["seed"]),
        pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs),
    )
    if instrument:
        _attach_counters(storage.engine, "optuna")

    def objective(trial: optuna.Trial) -> float:
        space.sample(trial)
        trial.report(VALUE, 0)
        trial.should_prune()
        return VALUE

    _step[0] = "stock trial"
    t0 = time.perf_counter()
    if variant == "stock_reload":
        for i in range(n):
            s = optuna.load_study(
                study_name=name,
                storage=storage,
                sampler=optuna.samplers.TPESampler(seed=raw["seed"] + i),
                pruner=optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs),
            )
            trial = s.ask()
            s.tell(trial, objective(trial))
    else:
        study.optimize(objective, n_trials=n)
    total = time.perf_counter() - t0
    _step[0] = "setup"
    if not instrument:
        storage.engine.dispose()
    return total


# --------------------------------------------------------------------------- SQL counting

_sql_counts: Counter[tuple[str, str, str]] = Counter()
_sql_time: dict[tuple[str, str, str], float] = defaultdict(float)
_SQL_NORMALIZE = re.compile(r"\s+")


def _sql_key(statement: str) -> str:
    s = _SQL_NORMALIZE.sub(" ", statement).strip()
    s = re.sub(r"IN \((?:\?, )*\?\)", "IN (...)", s)
    s = re.sub(r"__\[POSTCOMPILE_\w+\]", "...", s)
    # Keep the verb and the table(s): enough to say which query it is.
    m = re.match(r"(SELECT)\b.*?\bFROM (\w+)(.*)", s, re.I)
    if m:
        joins = re.findall(r"\bJOIN (\w+)", m.group(3), re.I)
        where = re.search(r"\bWHERE (.{0,70})", m.group(3), re.I)
        tail = f" WHERE {where.group(1)}..." if where else ""
        return f"SELECT FROM {m.group(2)}" + "".join(f" JOIN {j}" for j in joins) + tail
    m = re.match(r"(INSERT INTO|UPDATE|DELETE FROM) (\w+)(.*)", s, re.I)
    if m:
        where = re.search(r"\bWHERE (.{0,60})", m.group(3), re.I)
        tail = f" WHERE {where.group(1)}..." if where else ""
        return f"{m.group(1).upper()} {m.group(2)}{tail}"
    return s[:80]


def _attach_counters(engine: Any, db: str) -> None:
    from sqlalchemy import event

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["_bench_t0"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        key = (_step[0], db, _sql_key(statement))
        _sql_counts[key] += 1
        _sql_time[key] += time.perf_counter() - conn.info.pop("_bench_t0", time.perf_counter())

    def begin(conn):
        _sql_counts[(_step[0], db, "BEGIN (transaction)")] += 1

    def commit(conn):
        _sql_counts[(_step[0], db, "COMMIT")] += 1

    def connect(dbapi_conn, record):
        _sql_counts[(_step[0], db, "new DBAPI connection")] += 1

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    event.listen(engine, "begin", begin)
    event.listen(engine, "commit", commit)
    event.listen(engine, "connect", connect)


def profile(tmp: Path, n: int) -> str:
    out = io.StringIO()
    w = out.write

    # SQL statements per trial, by step.
    _sql_counts.clear()
    _sql_time.clear()
    _, _, services = service_block(tmp, "prof-sql", n, instrument=True)
    services.close()
    svc_counts, svc_time = Counter(_sql_counts), dict(_sql_time)
    _sql_counts.clear()
    _sql_time.clear()
    stock_block(tmp, "prof-sql", n, variant="stock", instrument=True)
    stock_counts = Counter(_sql_counts)

    def per_trial(counts: Counter[tuple[str, str, str]]) -> tuple[float, float]:
        stmts = sum(
            v
            for k, v in counts.items()
            if k[2] not in ("BEGIN (transaction)", "COMMIT", "new DBAPI connection")
        )
        txs = sum(v for k, v in counts.items() if k[2] == "BEGIN (transaction)")
        return stmts / n, txs / n

    s_stmts, s_txs = per_trial(svc_counts)
    k_stmts, k_txs = per_trial(stock_counts)
    w(f"\nSQL per trial ({n} trials, no-op objective):\n")
    w(
        _common.table(
            ["path", "statements/trial", "transactions/trial"],
            [["service", s_stmts, s_txs], ["stock", k_stmts, k_txs]],
        )
        + "\n"
    )

    w(
        "\nService path: statements per trial by step (db: tuner = our tables, optuna = "
        "Optuna's; time = inside the DBAPI cursor):\n"
    )
    rows = []
    for (step, db, key), c in sorted(svc_counts.items(), key=lambda kv: (kv[0][0], -kv[1])):
        if step == "setup":
            continue
        rows.append([step, db, key[:95], c / n, 1000 * svc_time.get((step, db, key), 0.0) / n])
    w(_common.table(["step", "db", "statement", "per trial", "ms/trial"], rows) + "\n")

    w("\nStock path (stock): statements per trial:\n")
    rows = [
        [db, key[:95], c / n]
        for (step, db, key), c in stock_counts.most_common()
        if step != "setup"
    ]
    w(_common.table(["db", "statement", "per trial"], rows) + "\n")

    # cProfile of one plain service block.
    prof = cProfile.Profile()
    service_block(tmp, "prof-cpu", n, profiler=prof)
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s).sort_stats("cumulative")
    st.print_stats(
        r"(tuner_service|workers|search_spaces|optuna/(study|trial|storages)"
        r"|sqlalchemy/orm/session)",
        35,
    )
    w(
        f"\ncProfile of the trial loop of one service block of {n} trials "
        "(cumulative, filtered to service/Optuna/session frames):\n"
    )
    text = s.getvalue().replace(str(_common.REPO_ROOT) + "/", "")
    text = re.sub(r"\S*site-packages/", "", text)
    w("\n".join(line for line in text.splitlines() if line.strip()) + "\n")
    return out.getvalue()


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=8, help="blocks per variant (default 8)")
    ap.add_argument("--trials", type=int, default=20, help="trials per block (default 20)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also count SQL and cProfile the service path (automatic above target)",
    )
    ap.add_argument("--no-profile", action="store_true", help="never profile")
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()
    _kind[0] = args.db
    with _databases:
        return run(args)


def run(args: argparse.Namespace) -> int:
    _common.quiet_logging()
    print(f"machine: {_common.versions(with_tf=False)}")
    print(
        f"{args.blocks} blocks x {args.trials} trials per variant, interleaved, fresh {args.db} "
        "database per block; space/engine of examples/digits_optuna.json (TPE + Hyperband); "
        f"load average {os.getloadavg()}"
    )

    variants = ["service", "stock", "stock_default", "stock_reload"]
    per_trial: dict[str, list[float]] = {v: [] for v in variants}
    step_totals: dict[str, float] = defaultdict(float)
    with tempfile.TemporaryDirectory(prefix="bench-coord-") as d:
        tmp = Path(d)
        # Warm-up (imports, first-use caches), not counted.
        service_block(tmp, "warm", 3)
        for v in variants[1:]:
            stock_block(tmp, "warm", 3, variant=v)
        for b in range(args.blocks):
            k = b % len(variants)
            order = variants[k:] + variants[:k]
            for v in order:
                tag = f"{v}-{b}"
                if v == "service":
                    total, steps, _ = service_block(tmp, tag, args.trials)
                    for k, x in steps.items():
                        step_totals[k] += x
                else:
                    total = stock_block(tmp, tag, args.trials, variant=v)
                per_trial[v].append(1000 * total / args.trials)
            print(
                f"  round {b + 1}: " + "  ".join(f"{v}={per_trial[v][-1]:.1f}ms" for v in variants),
                flush=True,
            )

        med = {v: _common.median(per_trial[v]) for v in variants}
        print()
        print(
            _common.table(
                ["variant", "median ms/trial", "min", "max", "blocks"],
                [
                    [v, med[v], min(per_trial[v]), max(per_trial[v]), len(per_trial[v])]
                    for v in variants
                ],
            )
        )
        n_svc = args.blocks * args.trials
        print("\nservice path, ms/trial by step (mean over all timed service trials):")
        print(
            _common.table(
                ["step", "ms/trial"], [[k, 1000 * x / n_svc] for k, x in step_totals.items()]
            )
        )
        r_stock = med["service"] / med["stock"]
        # Per-round ratios (service and stock blocks of the same round ran back to back).
        rounds = sorted(
            a / b for a, b in zip(per_trial["service"], per_trial["stock"], strict=False)
        )
        met = r_stock <= TARGET
        print(
            f"\nratio service/stock         = {r_stock:.2f}x  (target <= {TARGET}x; per-round "
            f"ratios {', '.join(f'{r:.2f}' for r in rounds)})"
        )
        print(
            f"ratio service/stock_default = {med['service'] / med['stock_default']:.2f}x  "
            "(plain RDBStorage: SQLite defaults, fsync per commit)"
        )
        print(
            f"ratio service/stock_reload  = {med['service'] / med['stock_reload']:.2f}x  "
            "(diagnostic: stock with load_study per trial, as the engine does)"
        )
        print(f"target met: {'yes' if met else 'NO'}; load average {os.getloadavg()}")
        if args.profile or (not met and not args.no_profile):
            print(profile(tmp, args.trials))
    return 0


if __name__ == "__main__":
    sys.exit(main())
