"""No import cycles through the activation families or the fitter, counting imports inside
functions too; the fitter imports no family (issue 16)."""

from __future__ import annotations

import ast
from pathlib import Path

import cpaf_jax

ROOT = Path(cpaf_jax.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    """Every cpaf_jax module -> the cpaf_jax modules it imports (anywhere in its body)."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:  # "from pkg import submodule" imports the submodule
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in modules else node.module)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def _cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for dep in graph[node]:
            if dep == start:
                return path + [start]
            if dep not in seen:
                seen.add(dep)
                stack.append((dep, path + [dep]))
    return None


def test_no_cycle_through_activations_or_fitting():
    graph = _graph()
    ours = [m for m in graph if m.startswith(("cpaf_jax.activations", "cpaf_jax.fitting"))]
    assert "cpaf_jax.activations.registry" in ours and "cpaf_jax.fitting.solver" in ours
    for module in ours:
        assert _cycle_through(graph, module) is None, _cycle_through(graph, module)


def test_the_fitter_imports_no_family():
    graph = _graph()
    for module in ("cpaf_jax.fitting.solver", "cpaf_jax.fitting.curve_fit"):
        reached, todo = set(), [module]
        while todo:
            for dep in graph[todo.pop()] - reached:
                reached.add(dep)
                todo.append(dep)
        assert not any(m.startswith("cpaf_jax.activations") for m in reached), (module, reached)


def test_the_checker_sees_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle_through(graph, "a") == ["a", "b", "c", "a"]
    assert _cycle_through(graph, "d") is None
