# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Imports run one way: no module of ove_ros or training imports itself back through others.

Read from the source (every import statement, also those inside functions), so a cycle hidden behind a lazy
import counts too.
"""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT, ros_env

# Source folder -> the package it is imported as (training/ is installed as ove_ros.training).
PACKAGES = {"ove_ros": "ove_ros", "training": "ove_ros.training"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in sorted((REPO_ROOT / folder).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT / folder).with_suffix("").parts
            name = ".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))
            found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules its source imports."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            deps.update(t for t in targets if t in modules and t != name)
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_lazy_back_import():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = import_graph()
    assert "ove_ros.model_config" in graph["ove_ros.bundle"]
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_the_runtime_never_imports_the_training_package():
    """The node, engine, model and math run on a robot without the training stack (the sim demo may)."""
    graph = import_graph()
    runtime = [m for m in graph if m.startswith("ove_ros") and not m.startswith(("ove_ros.training",
                                                                                  "ove_ros.sim"))]
    assert "ove_ros.training.train" in graph and "ove_ros.ros.node" in runtime
    offenders = {m: sorted(d for d in graph[m] if d.startswith("ove_ros.training")) for m in runtime}
    assert not {m: d for m, d in offenders.items() if d}


def test_bundle_format_imports_without_the_model():
    code = "import sys, ove_ros.bundle; sys.exit(3 if 'ove_ros.model' in sys.modules else 0)"
    done = subprocess.run([sys.executable, "-c", code], env=ros_env(), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"importing ove_ros.bundle imported ove_ros.model: {done.stderr}"
