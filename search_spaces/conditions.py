"""Conditions (``when``): their parsing, the values they may name, and the dependency graph
they draw between dimensions (its cycles, and an order with dependencies before dependants)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .dimensions import Condition, Dimension
from .problems import ProblemCollector
from .values import canonical, did_you_mean, fmt, hp_value_problem, type_name
from .vocabulary import VOCABULARY


def parse_when(name: str, raw: Any, out: ProblemCollector) -> tuple[Condition, ...] | None:
    """Parse a ``when`` object structurally (impossible values are checked later)."""
    path: tuple[str | int, ...] = (name, "when")
    if not isinstance(raw, Mapping):
        out.add(
            path,
            "'when' must be an object mapping hyperparameter names to lists of values, "
            f"not {type_name(raw)}",
            "when_not_object",
        )
        return None
    conditions: list[Condition] = []
    ok = True
    for ref, values in raw.items():
        if ref == name:
            out.add((*path, ref), f"'{name}' cannot depend on itself", "when_self")
            ok = False
            continue
        if not isinstance(ref, str) or ref not in VOCABULARY:
            out.add(
                (*path, str(ref)),
                f"condition on unknown hyperparameter '{ref}'" + did_you_mean(str(ref), VOCABULARY),
                "when_unknown_name",
            )
            ok = False
            continue
        if not isinstance(values, (list, tuple)):
            out.add(
                (*path, ref),
                f"the condition on '{ref}' must be a list of values, not {type_name(values)}",
                "when_not_list",
            )
            ok = False
            continue
        if not values:
            out.add(
                (*path, ref),
                f"the condition on '{ref}' lists no values, so it can never hold",
                "when_empty",
            )
            ok = False
            continue
        conditions.append(Condition(ref, tuple(canonical(VOCABULARY[ref], v) for v in values)))
    return tuple(conditions) if ok else None


def check_condition_values(
    name: str,
    conditions: Sequence[Condition],
    raw_when: Mapping[str, Any],
    space: Mapping[str, Dimension],
    in_raw: Mapping[str, Any],
    out: ProblemCollector,
) -> None:
    """Report each value a condition lists that its hyperparameter can never take."""
    for cond in conditions:
        hp = VOCABULARY[cond.name]
        raw_values = raw_when[cond.name]
        for i, value in enumerate(cond.values):
            path: tuple[str | int, ...] = (name, "when", cond.name, i)
            raw_value = raw_values[i]
            why = hp_value_problem(hp, value)
            if why is not None:
                out.add(path, f"impossible condition: {why}", "impossible_condition")
                continue
            # A hyperparameter outside the space keeps its default, so a condition on another
            # of its valid values leaves this dimension inactive: allowed, e.g. momentum for
            # sgd/rmsprop in a space that does not tune the optimizer (yet).
            if cond.name in space and not space[cond.name].can_take(value):
                out.add(
                    path,
                    f"impossible condition: '{cond.name}' never takes {fmt(raw_value)} "
                    f"in this search space",
                    "impossible_condition",
                )


def find_cycles(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Every elementary cycle reachable in ``graph`` (found by DFS), each once."""
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt) :]
                start = cycle.index(min(cycle))
                canon = tuple(cycle[start:] + cycle[:start])
                if canon not in seen:
                    seen.add(canon)
                    cycles.append(list(canon))
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return cycles


def topological(dims: Sequence[Dimension]) -> tuple[Dimension, ...]:
    """Dependencies before dependants; otherwise the given order (the graph is acyclic)."""
    by_name = {d.name: d for d in dims}
    done: set[str] = set()
    ordered: list[Dimension] = []

    def place(dim: Dimension) -> None:
        if dim.name in done:
            return
        done.add(dim.name)
        for ref in dim.depends_on:
            if ref in by_name:
                place(by_name[ref])
        ordered.append(dim)

    for dim in dims:
        place(dim)
    return tuple(ordered)
