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


def summary(results: list[list[dict[str, Any]]]) -> str:
    """Across repeats: each contender's median (min-max) test accuracy, the service's ensemble
    as its own row, and in how many repeats the service's best trial (and its ensemble) was
    at least as accurate on the test split as that contender."""
    by: dict[str, list[dict[str, Any]]] = {}
    for run in results:
        for r in run:
            by.setdefault(r["contender"], []).append(r)
            ens = (r.get("ensemble") or {}).get("test")
            if ens:
                by.setdefault("service ensemble", []).append(
                    {**r, "contender": "service ensemble",
                     "test_acc": ens["ensemble"]["accuracy"]})
    service = next((k for k in by if k.startswith("service (")), None)

    def accs(k: str) -> list[float]:
        return [float(r["test_acc"]) for r in by[k] if r["test_acc"] is not None]

    table: list[list[Any]] = []
    for k, rs in by.items():
        a = accs(k)
        med = statistics.median(a) if a else float("nan")
        beats = "-"
        if k == "service ensemble" and service:
            b = [float(r["ensemble"]["test"]["best_trial"]["accuracy"]) for r in rs]
            beats = f"{sum(e >= x for e, x in zip(a, b, strict=False))}/{len(b)} >= its best trial"
        elif service and not k.startswith("service"):
            pairs = [(s_, o) for s_, o in zip(accs(service), a, strict=False)]
            ens_pairs = [(e, o) for e, o in zip(accs("service ensemble"), a, strict=False)] \
                if "service ensemble" in by else []
            beats = f"{sum(s_ >= o for s_, o in pairs)}/{len(pairs)}"
            if ens_pairs:
                beats += f" ({sum(e >= o for e, o in ens_pairs)}/{len(ens_pairs)})"
        table.append([k, med, f"{min(a):.3f}-{max(a):.3f}" if a else "-",
                     statistics.median(float(r["trials"]) for r in rs), beats])
    return _common.table(["contender", "median test acc", "min-max", "median trials",
                          "service >= it (ensemble >= it)"], table)
