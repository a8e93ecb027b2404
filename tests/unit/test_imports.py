"""The package's imports flow one way: no cycle between modules, stages import only the stages
below them, workloads see only the plugin contract, reports never reach the runner or torch."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("profiler", "reports", "workloads")
# profiler's rooms, lowest first: a module may import its own room and rooms of a lower rank only
RANK = {
    "profiler.errors": 0, "profiler.files": 0, "profiler.plugin": 0, "profiler.format": 0, "profiler.loadconfig": 1,
    "profiler.runmodel": 2, "profiler.measure": 3, "profiler.load": 3, "profiler.suite": 4, "profiler.characterize": 4,
    "profiler.migrate": 5, "profiler.tables": 5, "profiler.rundir": 6, "profiler.run": 7, "profiler.console": 7,
    "profiler.cli": 8, "profiler.__main__": 9, "profiler": 9,
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules `name` imports anywhere in its file (module level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def test_no_import_cycle():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert cycles == [], f"import cycles: {cycles}"


def room(name: str) -> str | None:
    for candidate in sorted(RANK, key=len, reverse=True):
        if name == candidate or name.startswith(candidate + "."):
            return candidate
    return None


def test_profiler_stages_import_only_lower_stages():
    wrong = []
    for name, targets in graph().items():
        if not name.startswith("profiler"):
            continue
        here = room(name)
        for t in targets:
            if t.startswith("reports"):
                if name != "profiler.cli":
                    wrong.append(f"{name} -> {t} (only the CLI composes reports)")
                continue
            if t.startswith("workloads"):
                wrong.append(f"{name} -> {t} (the core never knows a workload)")
                continue
            there = room(t)
            if there != here and RANK[there] >= RANK[here]:
                wrong.append(f"{name} -> {t} ({here} rank {RANK[here]} may not import {there} rank {RANK[there]})")
    assert wrong == []


def test_workloads_see_only_the_plugin_contract_and_reports_never_the_runner():
    wrong = []
    for name, targets in graph().items():
        for t in targets:
            if name.startswith("workloads") and t.startswith("profiler") and t not in ("profiler", "profiler.plugin"):
                wrong.append(f"{name} -> {t}")
            if name.startswith("reports") and (room(t) in ("profiler.run", "profiler.suite", "profiler.cli") or t.startswith("workloads")):
                wrong.append(f"{name} -> {t}")
    assert wrong == []
