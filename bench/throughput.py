"""Trials per hour of one worker with 2 threads vs two pinned workers on one CPU device.

The demo study (examples/digits_optuna.json: TPE, its space, 8 epochs) with pruning off, so
that every trial trains all its epochs and trials are comparable, and ``max_parallel`` 2. Each
block is a fresh study on one migrated SQLite file, run to the end by real ``tuner-worker``
processes that exit when idle:

- ``single``: ``tuner-worker --devices cpu --threads 2`` (one process, TensorFlow on 2 threads);
- ``packed``: ``tuner-worker --devices cpu --trials-per-device 2`` (two children, each pinned to
  its share of the cores with that many threads).

Every block runs the same trials: the parameter sets are drawn once from the demo space
(Optuna's random sampler, seeded; TPE samples at random for its first 10 trials anyway) and
enqueued into each block's study, so both variants train the same models. (Without that, each
worker's sampler is seeded from its first hand-out: one worker and two children drew
different architectures, so the two variants' workloads differed.)

Blocks alternate (the order rotates every round). Trials per hour = finished trials / (last
trial's completion - first trial's start), from the trials' own Optuna timestamps, so process
start-up (TensorFlow import) is left out; ``with start-up`` counts from the command's start.
``trial s`` is the median of the trials' own training time (``run_trial``'s wall time): how
fast one worker trains, alone with 2 threads or next to another with 1.

``--variants`` adds ``one``: ``tuner-worker --devices cpu --threads 1`` (one worker, one
thread, the other core idle) -- a single-thread trial's speed without a neighbour.

    python bench/throughput.py [--rounds 3] [--trials 8] [--epochs 8] [--quick] [--variants ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common

TARGET = 1.8

VARIANTS = {
    "single": ["--devices", "cpu", "--threads", "2"],
    "packed": ["--devices", "cpu", "--trials-per-device", "2"],
    "one": ["--devices", "cpu", "--threads", "1"],
}


def _draws(spec: dict, n: int) -> list[dict]:
    """``n`` parameter sets from the study's space, drawn at random (seeded)."""
    import optuna

    from tuner_service.spec import StudySpec

    space = StudySpec.model_validate(spec).space()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=spec["seed"]))
    out = []
    for _ in range(n):
        trial = study.ask()
        space.sample(trial)
        out.append(dict(trial.params))
    return out


def _block(tmp: Path, variant: str, k: int, trials: int, epochs: int) -> dict[str, float]:
    import optuna

    from tuner_service.migrate import upgrade
    from tuner_service.optuna_bridge import ATTR_WALL_TIME
    from tuner_service.service import Services
    from tuner_service.settings import Settings

    url = _common.sqlite_url(tmp / f"t{k}.db")
    upgrade(url)
    services = Services(Settings(database_url=url, _env_file=None))  # type: ignore[call-arg]
    raw = json.loads((_common.REPO_ROOT / "examples" / "digits_optuna.json").read_text())
    spec = copy.deepcopy(raw)
    spec["name"] = f"throughput-{k}"
    spec["engine"]["pruner"] = "none"
    spec["budget"] = {"n_trials": trials, "max_epochs": epochs, "max_parallel": 2}
    services.create_study(spec)
    queued = optuna.load_study(study_name=spec["name"], storage=services.storage)
    for params in _draws(spec, trials):
        queued.enqueue_trial(params)
    env = {**os.environ, "TUNER_DATABASE_URL": url, "TF_CPP_MIN_LOG_LEVEL": "2",
           "CUDA_VISIBLE_DEVICES": "-1"}
    bin_dir = Path(sys.executable).parent
    started = time.time()
    with (tmp / f"t{k}.log").open("w") as log:
        proc = subprocess.run(
            [str(bin_dir / "tuner-worker"), *VARIANTS[variant], "--exit-when-idle", "3"],
            env=env, stdout=log, stderr=subprocess.STDOUT, timeout=1800, check=False,
        )
    study = optuna.load_study(study_name=spec["name"], storage=services.storage)
    done = [t for t in study.trials if t.datetime_complete is not None]
    services.close()
    if proc.returncode != 0 or len(done) != trials:
        raise RuntimeError(f"{variant} block {k}: exit {proc.returncode}, {len(done)} trials; "
                           f"see {tmp / f't{k}.log'}")
    first = min(t.datetime_start.timestamp() for t in done if t.datetime_start)
    last = max(t.datetime_complete.timestamp() for t in done if t.datetime_complete)
    return {"per_hour": len(done) / (last - first) * 3600,
            "with_startup": len(done) / (last - started) * 3600,
            "trial_s": _common.median(float(t.user_attrs[ATTR_WALL_TIME]) for t in done)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trials", type=int, default=8, help="trials per block")
    ap.add_argument("--epochs", type=int, default=8, help="epochs per trial (the demo's 8)")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 6 trials of 4 epochs")
    ap.add_argument("--variants", default="single,packed", help="of single,packed,one")
    args = ap.parse_args()
    variants = args.variants.split(",")
    if args.quick:
        args.rounds, args.trials, args.epochs = 2, 6, 4
    _common.quiet_logging()
    print(f"machine: {_common.versions(with_tf=False)}; load average {os.getloadavg()}")
    res: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    ratios = []
    loads = []
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as d:
        tmp = Path(d)
        k = 0
        for r in range(args.rounds):
            order = variants[r % len(variants):] + variants[: r % len(variants)]
            got = {}
            for v in order:
                k += 1
                got[v] = _block(tmp, v, k, args.trials, args.epochs)
                res[v].append(got[v])
                loads.append(os.getloadavg()[0])
                print(f"round {r + 1} {v}: {got[v]['per_hour']:.0f} trials/h "
                      f"({got[v]['with_startup']:.0f} with start-up), trial "
                      f"{got[v]['trial_s']:.1f} s; load {loads[-1]:.1f}",
                      flush=True)
            if "packed" in got and "single" in got:
                ratios.append(got["packed"]["per_hour"] / got["single"]["per_hour"])
    rows = []
    for v, rs in res.items():
        ph = [x["per_hour"] for x in rs]
        rows.append([v, len(rs), _common.median(ph), min(ph), max(ph),
                     _common.median(x["with_startup"] for x in rs),
                     _common.median(x["trial_s"] for x in rs)])
    print()
    print(_common.table(["variant", "blocks", "median trials/h", "min", "max",
                         "with start-up", "trial s"], rows))
    if not ratios:
        return 0
    ratio = (_common.median(x["per_hour"] for x in res["packed"])
             / _common.median(x["per_hour"] for x in res["single"]))
    print(f"\npacked / single = {ratio:.2f} (per round: "
          f"{', '.join(f'{x:.2f}' for x in sorted(ratios))}); target >= {TARGET}: "
          f"{'yes' if ratio >= TARGET else 'NO'}")
    print(f"{args.trials} trials x {args.epochs} epochs per block; load average during the "
          f"run {min(loads):.1f}-{max(loads):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
