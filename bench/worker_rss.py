"""Worker memory across trials: resident set size after 5 trials vs after 50 (target <= 1.3x).

One real worker process -- the daemon's ``Worker`` loop (registration, heartbeat and reaper
threads, claim, Optuna ask/tell, real Keras training, model saves into the database,
``clear_session`` between trials) -- works through a study of N tiny CNN trials (synthetic
8x8x1 data, 1 epoch, architectures sampled from a small space so that the models differ) on
a fresh SQLite database, on the CPU. The process samples its own RSS (psutil) right after each
trial has been recorded and its Keras session cleared (``Worker.train`` returning), and writes
it to a file the parent reads.

    python bench/worker_rss.py [--trials 50] [--early 5] [--epochs 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

TARGET_RATIO = 1.3

SPACE: dict[str, Any] = {
    "conv_blocks": {"type": "int", "low": 1, "high": 2},
    "convs_per_block": {"type": "fixed", "value": 1},
    "filters": {"type": "categorical", "choices": [4, 8, 16]},
    "dense_units": {"type": "categorical", "choices": [8, 16, 32]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.3},
    "batch_norm": {"type": "categorical", "choices": [True, False]},
    "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
    "early_stopping_patience": {"type": "fixed", "value": 0},
    "batch_size": {"type": "fixed", "value": 64},
}


def spec(trials: int, epochs: int) -> dict[str, Any]:
    return {
        "name": "worker-rss",
        "dataset": {"name": "synthetic", "shape": [8, 8, 1], "n_classes": 3,
                    "n_samples": 512, "seed": 0},
        "objective": {"metric": "val_accuracy"},
        "engine": {"kind": "optuna", "sampler": "random", "pruner": "none"},
        "budget": {"n_trials": trials, "max_epochs": epochs, "max_parallel": 1},
        "search_space": SPACE,
        "seed": 1,
    }


def child(url: str, samples: Path, trials: int, threads: int, what_if: str) -> int:
    """The worker process: the daemon's in-process path, with RSS sampled after each trial."""
    os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
    import psutil

    from tuner_service.service import Services
    from tuner_service.settings import Settings
    from workers.runtime import configure_gpu, configure_threads
    from workers.worker import Worker, WorkerOptions

    _common.quiet_logging(samples.with_suffix(".log"))
    configure_threads(threads)
    configure_gpu(memory_growth=True)
    me = psutil.Process()
    libc = ctypes.CDLL("libc.so.6") if what_if == "malloc-trim" else None

    class MeasuredWorker(Worker):
        done = 0

        def run_claim(self, *a: Any, **kw: Any) -> None:
            super().run_claim(*a, **kw)  # trains, records, clears the Keras session
            MeasuredWorker.done += 1
            if what_if == "malloc-trim":
                libc.malloc_trim(0)
            with samples.open("a") as f:
                f.write(f"{MeasuredWorker.done} {me.memory_info().rss} {time.time():.3f} "
                        f"{len(gc.get_objects())}\n")

    settings = Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]
    services = Services(settings)
    try:
        return MeasuredWorker(services, WorkerOptions(max_trials=trials)).run()
    finally:
        services.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--early", type=int, default=5, help="the trial the baseline is taken after")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--what-if", choices=["none", "malloc-trim"], default="none")
    p.add_argument("--child", nargs=2, metavar=("URL", "SAMPLES"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.child[0], Path(args.child[1]), args.trials, args.threads,
                     args.what_if)

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        services = _common.migrated_services(tmp / "tuner.db")
        services.create_study(spec(args.trials, args.epochs))
        url = services.settings.database_url
        services.close()
        samples = tmp / "rss.txt"
        print(f"{args.trials} trials of {args.epochs} epoch(s), tiny CNNs on synthetic 8x8x1 "
              f"data, one worker process ({args.threads} TF thread(s)), SQLite")
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, __file__, "--trials", str(args.trials), "--threads",
             str(args.threads), "--what-if", args.what_if, "--child", url, str(samples)],
            check=False,
        )
        wall = time.perf_counter() - t0
        rows = [line.split() for line in samples.read_text().splitlines()] if (
            samples.exists()) else []
        if proc.returncode != 0:
            print(f"worker exited {proc.returncode}; log:\n" +
                  samples.with_suffix(".log").read_text()[-3000:])
            return 1
    rss = {int(r[0]): int(r[1]) / 2**20 for r in rows}
    objs = {int(r[0]): int(r[3]) for r in rows}
    if len(rss) < args.trials or args.early not in rss:
        print(f"only {len(rss)} trials ran")
        return 1
    marks = sorted({1, args.early, 10, 20, 30, 40, args.trials} & set(rss))
    print()
    print(_common.table(["after trial", "RSS MiB", f"vs trial {args.early}", "Python objects"],
                        [[k, rss[k], rss[k] / rss[args.early], objs[k]] for k in marks]))
    ratio = rss[args.trials] / rss[args.early]
    met = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"\nRSS after trial {args.trials} / after trial {args.early}: {ratio:.3f}x "
          f"(target <= {TARGET_RATIO}x: {met}); whole run {wall:.0f}s")
    print(_common.versions(with_tf=True))
    return 0 if ratio <= TARGET_RATIO else 2


if __name__ == "__main__":
    sys.exit(main())
