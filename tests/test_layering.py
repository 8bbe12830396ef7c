"""The package's import graph, counting every import (module-level, function-local and
type-checking ones alike): no circle anywhere, and every import goes down the layers below,
from the CLI at the top to the shared value types at the bottom."""

from __future__ import annotations

import ast
from pathlib import Path

import actbench

PACKAGE = Path(actbench.__file__).resolve().parent
LAYERS = ["actbench.errors", "actbench.activations", "actbench.kernels", "actbench.core", "actbench.lm", "actbench.analysis",
          "actbench.benchmarks", "actbench.suite", "actbench.select", "actbench.results", "actbench.planner", "actbench.runner",
          "actbench.report", "actbench.api", "actbench.cli", "actbench.__main__"]
"""Bottom first: a module may import modules of its own layer or of layers before it. The package
root (`actbench`, its version) is below all of them."""


def modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = ["actbench", *p.relative_to(PACKAGE).with_suffix("").parts]
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def imports() -> dict[str, set[str]]:
    """Module -> the actbench modules it imports (a name imported from a package that is a module
    of its own counts as that module)."""
    mods = modules()

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        package = m if path.name == "__init__.py" else m.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], *([node.module] if node.module else [])])
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            edges[m].update(t for t in map(resolve, targets) if t and t != m)
    return edges


def layer(module: str) -> int:
    if module == "actbench":
        return -1
    return next(i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + "."))


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle():
    assert cycles(imports()) == []


def test_every_import_goes_down_the_layers():
    edges = imports()
    assert set(edges) == set(modules()) and len(edges) > 50
    upward = sorted(f"{m} -> {t}" for m, ts in edges.items() for t in ts if layer(t) > layer(m))
    assert upward == []


def test_the_check_finds_a_circle_and_an_upward_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("actbench.core.trial") < layer("actbench.suite.load") < layer("actbench.planner.plan") < layer("actbench.report.compare")
