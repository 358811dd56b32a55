# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Imports run one way: no module of ove_ros or training imports itself back through others, only the main
job (ove_ros.main_job) joins the runtime with the training package, and only the ROS-facing layers
(ove_ros.ros, ove_ros.sim) import ROS 2, whose pure parts stay free of it.

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
TRAINING = "ove_ros.training"
MAIN_JOB = "ove_ros.main_job"  # the one package that joins the runtime and training
# Deprecated spellings kept for one release; each only forwards to the main job.
SHIMS = {"ove_ros.sim.demo"}


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


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def import_path(graph: dict[str, set[str]], start: str, wanted) -> list[str] | None:
    """The shortest chain of imports [start, ..., m] to a module m with ``wanted(m)``, or None."""
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:
        for dep in sorted(graph.get(node, ())):
            if dep in previous:
                continue
            previous[dep] = node
            if wanted(dep):
                chain = [dep]
                while previous[chain[-1]] is not None:
                    chain.append(previous[chain[-1]])
                return chain[::-1]
            queue.append(dep)
    return None


def layer_violations(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Modules outside the training package and the main job that import either, directly or through other
    modules, each with one such chain of imports. The runtime (node, engine, simulator, bag tools) installs on
    a robot without the training stack; only the main job joins the two."""
    top = (TRAINING, MAIN_JOB)
    found = {}
    for module in sorted(graph):
        if any(_within(module, p) for p in top) or module in SHIMS:
            continue
        chain = import_path(graph, module, lambda m: any(_within(m, p) for p in top))
        if chain:
            found[module] = chain
    return found


def test_layer_violations_follow_imports_through_other_modules():
    graph = {"ove_ros.sim.a": {"ove_ros.values"}, "ove_ros.values": {"ove_ros.training.x"},
             "ove_ros.training.x": set(), "ove_ros.main_job.y": {"ove_ros.training.x"},
             "ove_ros.training": set(), "ove_ros.ok": {"ove_ros.sim.b"}, "ove_ros.sim.b": set()}
    assert layer_violations(graph) == {
        "ove_ros.sim.a": ["ove_ros.sim.a", "ove_ros.values", "ove_ros.training.x"],
        "ove_ros.values": ["ove_ros.values", "ove_ros.training.x"]}


def test_only_the_main_job_imports_the_training_package():
    """The node, engine, model, math and the simulator's tools (ove_ros.sim) never reach ove_ros.training."""
    graph = import_graph()
    found = layer_violations(graph)
    assert not found, "imports of the training package or the main job outside them:\n" + "\n".join(
        " -> ".join(chain) for chain in found.values())
    expected = {"ove_ros.training.train", "ove_ros.ros.node", "ove_ros.sim.recorder", "ove_ros.main_job.cli"}
    assert expected <= graph.keys()
    assert "ove_ros.training.advantage" in graph["ove_ros.main_job.parity"]  # a lazy import, seen


def test_the_training_package_never_imports_the_main_job():
    graph = import_graph()
    training = [m for m in graph if _within(m, TRAINING)]
    offenders = {m: import_path(graph, m, lambda d: _within(d, MAIN_JOB)) for m in training}
    assert not {m: c for m, c in offenders.items() if c}


def test_the_deprecated_demo_spelling_only_forwards_to_the_main_job():
    """The one exemption from the layer rule is a forwarder, nothing more, and it still runs."""
    graph = import_graph()
    assert SHIMS == {"ove_ros.sim.demo"} and graph["ove_ros.sim.demo"] == {"ove_ros.main_job.cli"}
    done = subprocess.run([sys.executable, "-m", "ove_ros.sim.demo", "--help"], env=ros_env(), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "deprecated" in done.stderr and "python -m ove_ros.main_job" in done.stderr
    assert done.stdout.startswith("usage: python -m ove_ros.main_job")


def test_bundle_format_imports_without_the_model():
    code = "import sys, ove_ros.bundle; sys.exit(3 if 'ove_ros.model' in sys.modules else 0)"
    done = subprocess.run([sys.executable, "-c", code], env=ros_env(), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f"importing ove_ros.bundle imported ove_ros.model: {done.stderr}"


# ROS 2 client library and message packages: the ROS-facing code (the node, the simulated robot and its
# recorder, player and parity tools) imports them; everything else runs without a ROS installation.
ROS_IMPORTS = ("rclpy", "builtin_interfaces", "diagnostic_msgs", "rcl_interfaces", "sensor_msgs", "std_msgs",
               "std_srvs", "visualization_msgs", "ove_ros.msg")
ROS_LAYERS = ("ove_ros.ros", "ove_ros.sim")
# Parts of the node kept free of ROS, directly and through other modules, so they are tested without it.
ROS_FREE_IN_NODE = {"ove_ros.ros.watchdog", "ove_ros.ros.episode_tracker", "ove_ros.ros.worker"}


def ros_importers() -> dict[str, set[str]]:
    """Module -> the ROS packages its source imports (lazy imports included)."""
    found = {}
    for name, path in _modules().items():
        ros = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            else:
                continue
            ros.update(p for t in targets for p in ROS_IMPORTS if _within(t, p))
        if ros:
            found[name] = ros
    return found


def test_ros_is_imported_only_by_the_ros_facing_layers():
    importers = ros_importers()
    assert {"ove_ros.ros.node", "ove_ros.sim.robot"} <= importers.keys()  # the scan sees them
    outside = {m: sorted(p) for m, p in importers.items()
               if not any(_within(m, layer) for layer in ROS_LAYERS)}
    assert not outside, f"ROS imports outside {ROS_LAYERS}: {outside}"


def test_the_nodes_pure_parts_never_reach_ros():
    """Nor do the model, the math and the training package: only the ROS layers and the main job, which
    starts the ROS processes, may reach a module that imports ROS."""
    graph, importers = import_graph(), ros_importers()
    may_reach = (*ROS_LAYERS, MAIN_JOB)
    pure = {m for m in graph if not any(_within(m, p) for p in may_reach) and m not in SHIMS}
    assert ROS_FREE_IN_NODE <= graph.keys()
    found = {m: import_path(graph, m, importers.__contains__) for m in sorted(pure | ROS_FREE_IN_NODE)}
    found = {m: c for m, c in found.items() if c or m in importers}
    assert not found, "ROS reached through imports:\n" + "\n".join(
        " -> ".join(c or [m]) for m, c in found.items())
