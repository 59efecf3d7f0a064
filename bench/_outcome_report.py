"""Tables of bench/search_outcome.py: one run's rows, and a summary across repeats."""

from __future__ import annotations

import statistics
import sys
from typing import Any

import _common


def print_rows(ds: str, target: float, seed: int, load0: tuple[float, ...],
                load1: tuple[float, ...], rows: list[dict[str, Any]]) -> None:
    print(f"\n## {ds} (target val accuracy {target}), search seed {seed}; load average "
          f"before {load0[0]:.1f}/{load0[1]:.1f}, after {load1[0]:.1f}/{load1[1]:.1f} "
          "(1/5 min)\n")
    print(_common.table(
        ["contender", "best val acc", "test acc", "trials", "wall s", "to target s"],
        [[r["contender"], r["best_val_acc"],
          "-" if r["test_acc"] is None else r["test_acc"], r["trials"], r["wall_s"],
          "-" if r["to_target_s"] is None else r["to_target_s"]] for r in rows],
    ))
    for r in rows:
        if r["note"]:
            print(f"\n- {r['contender']}: {r['note']}")
    sys.stdout.flush()


def _ensemble_acc(r: dict[str, Any], which: str) -> float | None:
    test = (r.get("ensemble") or {}).get("test")
    return float(test[which]["accuracy"]) if test else None


def summary(results: list[list[dict[str, Any]]]) -> str:
    """Across repeats: each contender's median (min-max) test accuracy, the service's ensemble
    as its own row, and in how many repeats the service's best trial (and its ensemble) was
    at least as accurate on the test split as that contender -- compared within each repeat;
    a repeat where either side has no test accuracy is not counted."""
    runs: list[dict[str, float | None]] = []
    trials: dict[str, list[float]] = {}
    ens_best: list[tuple[float, float]] = []  # (ensemble, its best trial) per repeat
    service = "service ensemble"
    for run in results:
        accs: dict[str, float | None] = {}
        for r in run:
            name = r["contender"]
            accs[name] = None if r["test_acc"] is None else float(r["test_acc"])
            trials.setdefault(name, []).append(float(r["trials"]))
            ens, best = _ensemble_acc(r, "ensemble"), _ensemble_acc(r, "best_trial")
            if ens is not None and best is not None:
                accs["service ensemble"] = ens
                trials.setdefault("service ensemble", []).append(float(r["trials"]))
                ens_best.append((ens, best))
            if name.startswith("service ("):
                service = name
        runs.append(accs)

    def count(mine: str, other: str) -> tuple[int, int]:
        pairs = [(a[mine], a[other]) for a in runs
                 if a.get(mine) is not None and a.get(other) is not None]
        return sum(x >= y for x, y in pairs), len(pairs)  # type: ignore[operator]

    table: list[list[Any]] = []
    for k in trials:
        a = [float(v) for run in runs if (v := run.get(k)) is not None]
        beats = "-"
        if k == "service ensemble":
            beats = f"{sum(e >= b for e, b in ens_best)}/{len(ens_best)} >= its best trial"
        elif not k.startswith("service"):
            n, of = count(service, k)
            beats = f"{n}/{of}"
            if "service ensemble" in trials:
                n, of = count("service ensemble", k)
                beats += f" ({n}/{of})"
        table.append([k, statistics.median(a) if a else float("nan"),
                      f"{min(a):.3f}-{max(a):.3f}" if a else "-",
                      statistics.median(trials[k]), beats])
    return _common.table(["contender", "median test acc", "min-max", "median trials",
                          "service >= it (ensemble >= it)"], table)
