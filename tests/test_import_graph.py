"""The project's import graph, read with ``ast``: no cycle among the modules of tuner_service/,
search_spaces/ and workers/, and the control plane (tuner_service, search_spaces) never imports
the data plane (workers).

Edges are module-level imports, including ``from . import x`` and imports inside
``try``/``if`` blocks at module level; imports inside functions (lazy, on purpose) and under
``if TYPE_CHECKING:`` (never run) are excluded. An import of ``a.b.c`` is an edge to the
project module ``a.b.c`` (or, for a name imported from a module, to that module); importing a
package also runs its ``__init__``, so ``from pkg.mod import x`` adds an edge to ``pkg`` too,
unless the importer lives inside ``pkg`` (its ``__init__`` already ran).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tuner_service", "search_spaces", "workers")
CONTROL_PLANE = ("tuner_service", "search_spaces")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported."""
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                stack.extend(node.body)
            stack.extend(node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                stack.extend(handler.body)
        elif isinstance(node, (ast.With, ast.For, ast.While)):
            stack.extend(node.body)


def _edges(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in _module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        targets.add(base)
        targets.update(f"{base}.{alias.name}" for alias in node.names)  # submodules
    edges: set[str] = set()
    for target in targets:
        parts = target.split(".")
        for i in range(1, len(parts) + 1):  # the module and every package on its way
            mod = ".".join(parts[:i])
            if mod in modules and mod != name and not name.startswith(mod + "."):
                edges.add(mod)
    return edges


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_is_read() -> None:
    graph = _graph()
    assert "workers.worker" in graph["workers.daemon"] or any(
        "workers.worker" in e for e in graph.values()
    )
    assert "tuner_service.engines.registry" in graph["tuner_service.engines"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle() -> None:
    cycle = _cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_control_plane_never_imports_workers() -> None:
    bad = {
        name: sorted(e for e in edges if e.split(".")[0] == "workers")
        for name, edges in _graph().items()
        if name.split(".")[0] in CONTROL_PLANE
    }
    assert {k: v for k, v in bad.items() if v} == {}


def test_no_lazy_import_of_workers_in_the_control_plane_either() -> None:
    """Not even inside a function (the CLI's retrain runs on the workers' side)."""
    for name, path in _modules().items():
        if name.split(".")[0] not in CONTROL_PLANE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level:
                assert (node.module or "").split(".")[0] != "workers", (name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] != "workers", (name, alias.name)
