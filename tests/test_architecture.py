"""The rules of docs/architecture.md that a machine can check: no import cycles, data flowing one way, no
function longer than a screen."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "src" / "tinygpt4"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The tinygpt4 modules `name` imports anywhere in its file (a name imported from a package counts as
    its submodule when there is one)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name and t.startswith("tinygpt4"):
                found.add(t)
    return found


@functools.cache
def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_package_has_no_import_cycles():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# module prefix -> prefixes it must never import (data flows world -> data -> model -> train -> eval -> report)
FORBIDDEN = {
    "tinygpt4.world": ["tinygpt4.train", "tinygpt4.evals", "tinygpt4.report", "tinygpt4.serve", "tinygpt4.model",
                       "tinygpt4.scaling", "tinygpt4.run"],
    "tinygpt4.data": ["tinygpt4.train", "tinygpt4.evals", "tinygpt4.report", "tinygpt4.serve", "tinygpt4.scaling",
                      "tinygpt4.world", "tinygpt4.run"],
    "tinygpt4.model": ["tinygpt4.train", "tinygpt4.evals", "tinygpt4.report", "tinygpt4.serve",
                       "tinygpt4.scaling", "tinygpt4.world", "tinygpt4.run"],
    "tinygpt4.train": ["tinygpt4.evals", "tinygpt4.report", "tinygpt4.serve", "tinygpt4.scaling",
                       "tinygpt4.world", "tinygpt4.run"],
    "tinygpt4.evals": ["tinygpt4.train", "tinygpt4.report", "tinygpt4.serve", "tinygpt4.scaling",
                       "tinygpt4.run"],
    "tinygpt4.report": ["tinygpt4.train", "tinygpt4.serve", "tinygpt4.run", "tinygpt4.model"],
    "tinygpt4.serve": ["tinygpt4.train", "tinygpt4.report", "tinygpt4.scaling", "tinygpt4.world", "tinygpt4.run"],
}
ALLOWED_FOUNDATION = {"tinygpt4.errors"}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_data_flows_one_way(layer):
    bad = []
    for mod, deps in _graph().items():
        if mod != layer and not mod.startswith(layer + "."):
            continue
        for dep in deps - ALLOWED_FOUNDATION:
            if any(dep == f or dep.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{mod} imports {dep}")
    assert bad == []


def test_the_runtime_and_config_stand_on_nothing_but_errors():
    graph = _graph()
    assert graph["tinygpt4.runtime"] <= ALLOWED_FOUNDATION
    assert graph["tinygpt4.config"] <= ALLOWED_FOUNDATION


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert long == []
