# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""launch/value_estimator.launch.py and config/value_estimator.yaml.

``launch``/``launch_ros``/``launch_pytest`` have no PyPI wheels, so here the launch file is compiled and
parsed, and its plain functions (colour, exit handling) run on their own; on a ROS 2 install the tests at
the end start it for real. The behaviour it wires up is covered by test_node_process.py and
test_node_namespace.py, which start the same executable directly with the same namespace and remapping.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import py_compile
import re
import sys

import pytest
import yaml

from conftest import REPO_ROOT, dotted_keys, run_python

LAUNCH_FILE = REPO_ROOT / "launch" / "value_estimator.launch.py"
CONFIG_FILE = REPO_ROOT / "config" / "value_estimator.yaml"
ARGUMENTS = {"checkpoint", "params_file", "camera_topics", "namespace", "use_sim_time", "device", "log_level",
             "autostart", "exit_with_node"}
NAMESPACE = "launched"  # the launch_pytest test's namespace; the fake robot is started in it too
HAVE_LAUNCH = all(importlib.util.find_spec(m) is not None for m in ("launch", "launch_ros"))
NO_LAUNCH = ("launch and launch_ros have no PyPI wheels, so the launch file cannot be started here; this "
             "test runs on a ROS 2 install (apt ros-<distro>-launch-ros) with the workspace sourced")


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def test_launch_file_compiles():
    py_compile.compile(str(LAUNCH_FILE), doraise=True, cfile=None)


def test_launch_arguments_are_declared_with_descriptions():
    tree = ast.parse(LAUNCH_FILE.read_text())
    declared = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        assert isinstance(call.args[0], ast.Constant), "argument names must be literals (--show-args)"
        declared[call.args[0].value] = {kw.arg for kw in call.keywords}
    assert set(declared) == ARGUMENTS
    for name, keywords in declared.items():
        assert {"default_value", "description"} <= keywords, name
    # Every launch configuration the node action reads is declared.
    used = {n.slice.value for n in ast.walk(tree)
            if isinstance(n, ast.Subscript) and isinstance(n.slice, ast.Constant)
            and isinstance(n.value, ast.Name) and n.value.id == "cfg"}
    assert used and used <= ARGUMENTS


def test_launch_file_starts_the_lifecycle_node_with_the_config():
    tree = ast.parse(LAUNCH_FILE.read_text())
    (node,) = _calls(tree, "LifecycleNode")
    keywords = {kw.arg: kw.value for kw in node.keywords}
    assert ast.literal_eval(keywords["package"]) == "ove_ros"
    assert ast.literal_eval(keywords["executable"]) == "value_estimator"
    assert ast.literal_eval(keywords["name"]) == "value_estimator"
    assert {"namespace", "parameters", "arguments"} <= set(keywords)
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"config", "value_estimator.yaml"} <= strings  # the default params_file


def _launch_functions(*names: str, **names_they_use):
    """The named top-level functions of the launch file, compiled on their own: ``launch`` is not importable
    here, so the names they use from it come in ``names_they_use``."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    missing = set(names) - {d.name for d in defs}
    assert not missing, f"the launch file lacks {missing}"
    namespace = {"sys": sys, **names_they_use}
    exec(compile(ast.Module(body=defs, type_ignores=[]), str(LAUNCH_FILE), "exec"), namespace)
    return [namespace[n] for n in names]


def test_colour_codes_only_on_a_terminal(monkeypatch):
    (node,) = _calls(ast.parse(LAUNCH_FILE.read_text()), "LifecycleNode")
    emulate_tty = next(kw.value for kw in node.keywords if kw.arg == "emulate_tty")
    # Not a constant True: emulate_tty makes the node colour its logs even when the launch is piped.
    assert isinstance(emulate_tty, ast.Call) and emulate_tty.func.id == "_colour_output"
    (colour_output,) = _launch_functions("_colour_output")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert colour_output() is False  # `ros2 launch ... | tee log`, systemd, CI
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert colour_output() is True


def test_the_launch_ends_with_the_node_and_fails_with_it():
    tree = ast.parse(LAUNCH_FILE.read_text())
    (handler,) = _calls(tree, "OnProcessExit")
    keywords = {kw.arg: kw.value for kw in handler.keywords}
    assert keywords["on_exit"].id == "_on_node_exit"
    # The handler watches the node action the launch file returns, and is registered beside it.
    (assign,) = [n for n in ast.walk(tree) if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Call) and getattr(n.value.func, "id", None) == "LifecycleNode"]
    assert keywords["target_action"].id == assign.targets[0].id
    (register,) = _calls(tree, "RegisterEventHandler")
    assert register.args[0] is handler
    # Registered unless exit_with_node:=false (an including launch that should keep running).
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_value_estimator"]
    returns = sorted((n for n in ast.walk(function) if isinstance(n, ast.Return)), key=lambda n: n.lineno)
    assert [register in list(ast.walk(r)) for r in returns] == [False, True]
    assert "exit_with_node" in ast.unparse(function)

    if HAVE_LAUNCH:
        from launch.actions import EmitEvent
        from launch.events import Shutdown
    else:  # stand-ins with the same constructor keywords
        class EmitEvent:
            def __init__(self, *, event):
                self.event = event

        class Shutdown:
            def __init__(self, *, reason):
                self.reason = reason

    exit_failure, on_node_exit = _launch_functions("_exit_failure", "_on_node_exit", EmitEvent=EmitEvent,
                                                   Shutdown=Shutdown)

    class Exited:  # launch.events.process.ProcessExited: the field the handler reads
        def __init__(self, returncode: int):
            self.returncode = returncode

    class Context:  # launch.LaunchContext: the field the handler reads
        def __init__(self, is_shutdown: bool):
            self.is_shutdown = is_shutdown

    assert exit_failure(0) == ""
    assert "exited with code 1" in exit_failure(1) and "exited with code -9" in exit_failure(-9)
    # A failure at start-up (a configuration error exits 1) raises: launch logs the reason, shuts down and
    # `ros2 launch` exits 1. A Shutdown event alone would end it with 0.
    with pytest.raises(RuntimeError, match=r"value_estimator exited with code 1"):
        on_node_exit(Exited(1), Context(is_shutdown=False))
    (action,) = on_node_exit(Exited(0), Context(is_shutdown=False))
    assert isinstance(action, EmitEvent) and isinstance(action.event, Shutdown)
    # While the launch is already stopping (Ctrl-C) the node's exit changes nothing.
    assert on_node_exit(Exited(1), Context(is_shutdown=True)) is None
    assert on_node_exit(Exited(0), Context(is_shutdown=True)) is None


def test_yaml_defaults_equal_the_declared_defaults():
    pytest.importorskip("rcl_interfaces.msg", reason="ROS 2 messages missing: run scripts/setup.sh")
    from ove_ros.ros.params import PARAMS

    doc = yaml.safe_load(CONFIG_FILE.read_text())
    assert list(doc) == ["/**"]
    from_yaml = dotted_keys(doc["/**"]["ros__parameters"])
    declared = {p.name: p.default for p in PARAMS}
    assert from_yaml == declared
    # ROS parameters are typed: 1 is not 1.0, and a YAML int for a double parameter fails at start-up.
    for name, value in declared.items():
        assert type(from_yaml[name]) is type(value), (name, from_yaml[name], value)


def test_declared_parameters_have_descriptions_and_ranges():
    pytest.importorskip("rcl_interfaces.msg", reason="ROS 2 messages missing: run scripts/setup.sh")
    from ove_ros.ros.params import PARAMS

    for p in PARAMS:
        d = p.descriptor()
        assert d.description, p.name
        if isinstance(p.default, float):
            assert d.floating_point_range, f"{p.name} needs a range"
            lo, hi = d.floating_point_range[0].from_value, d.floating_point_range[0].to_value
            assert lo <= p.default <= hi, p.name
        elif isinstance(p.default, int) and not isinstance(p.default, bool):
            assert d.integer_range, f"{p.name} needs a range"
            assert d.integer_range[0].from_value <= p.default <= d.integer_range[0].to_value, p.name
        if p.choices is not None:  # list parameters: each entry is one of the choices
            values = p.default if isinstance(p.default, list) else [p.default]
            assert set(values) <= set(p.choices), p.name


def test_engine_choices_are_the_parameters_choices():
    # params.py declares them without importing torch; the engine is what checks them at configure.
    pytest.importorskip("rcl_interfaces.msg", reason="ROS 2 messages missing: run scripts/setup.sh")
    from ove_ros import engine
    from ove_ros.ros import params

    assert params.DEVICES == engine.DEVICES
    assert params.DTYPES == engine.ENGINE_DTYPES
    assert params.COMPILE_MODES == engine.COMPILE_MODES


# ------------------------------------------------------------------ launch, launch_pytest (real ROS 2 only)


def test_launch_exits_nonzero_when_the_node_fails_at_start(tmp_path):
    if not HAVE_LAUNCH:
        pytest.skip(NO_LAUNCH)
    missing = tmp_path / "no_such_bundle"
    code = f"""
import sys
import launch
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

service = launch.LaunchService()
service.include_launch_description(launch.LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource({str(LAUNCH_FILE)!r}),
    launch_arguments={{"checkpoint": {str(missing)!r}, "device": "cpu"}}.items())]))
sys.exit(service.run())
"""
    result = run_python(code, timeout=300.0)
    log = result.stdout + result.stderr
    assert result.returncode == 1, log
    assert len(re.findall(r"no_such_bundle does not exist", log)) == 1, log  # printed once
    assert "python -m ove_ros.training.convert" in log and "value_estimator exited with code 1" in log, log
    assert "\x1b[" not in log, "colour codes in a piped launch log"


if importlib.util.find_spec("launch_pytest") is None:

    def test_launch_file_with_launch_pytest():
        pytest.importorskip(
            "launch_pytest",
            reason="launch_pytest (and launch, launch_ros) have no PyPI wheels, so the launch file cannot be "
                   "started here; this test runs on a ROS 2 install (apt ros-<distro>-launch-pytest)",
        )

else:
    import launch_pytest
    from launch.actions import ExecuteProcess, IncludeLaunchDescription
    from launch.launch_description import LaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    @pytest.fixture(scope="module")
    def launch_bundle(tmp_path_factory):
        import torch

        from ove_ros.bundle import BundleMetadata, save_bundle
        from ove_ros.model import OpenValueEstimator, ValueModelConfig

        torch.manual_seed(0)
        model = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=2, state_dim=6))
        meta = BundleMetadata.from_model(model, task_normalizers={"pick": 50.0}, n_step=5)
        return save_bundle(tmp_path_factory.mktemp("launch") / "tiny2", model, meta)

    @launch_pytest.fixture
    def launch_description(launch_bundle):
        # The node resolves its relative topics in its namespace (/launched/cam0/image_raw, ...): the robot
        # publishes there too.
        robot = [sys.executable, str(REPO_ROOT / "test" / "fake_robot.py"), "--cameras", "2",
                 "--ros-args", "-r", f"__ns:=/{NAMESPACE}"]
        estimator = IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
            launch_arguments={"checkpoint": str(launch_bundle), "namespace": NAMESPACE,
                              "camera_topics": "cam0/image_raw,cam1/image_raw", "device": "cpu"}.items(),
        )
        return LaunchDescription([ExecuteProcess(cmd=robot, output="screen"), estimator,
                                  launch_pytest.actions.ReadyToTest()])

    @pytest.mark.launch(fixture=launch_description)
    def test_launch_file_with_launch_pytest():
        import time

        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from ove_ros.msg import ValueEstimate

        context = rclpy.Context()
        rclpy.init(context=context)
        node = rclpy.create_node("launch_probe", context=context)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        try:
            received = []
            topic = f"/{NAMESPACE}/value_estimator/value"
            node.create_subscription(ValueEstimate, topic, received.append, 10)
            deadline = time.monotonic() + 120.0
            while not received and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.2)
            assert received, "no ValueEstimate from the launched node"
            assert received[0].task == "pick" and -1.0 <= received[0].value <= 0.0
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.shutdown(context=context)
