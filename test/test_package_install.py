# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The colcon build installs what `ros2 run` / `ros2 launch` need, and the core imports without ROS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT, run_python

ament_index = pytest.importorskip("ament_index_python.packages", reason="run scripts/setup.sh first")


def test_share_directory_has_launch_and_config():
    share = Path(ament_index.get_package_share_directory("ove_ros"))
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "value_estimator.launch.py").is_file()
    assert (share / "config" / "value_estimator.yaml").is_file()
    assert sorted(p.name for p in (share / "msg").glob("*.msg")) == [
        "Advantage.msg", "EpisodeEvent.msg", "ValueEstimate.msg"]


def test_executables_are_installed_into_lib():
    prefix = Path(ament_index.get_package_prefix("ove_ros"))
    for exe in ("value_estimator", "sim_robot", "bag_recorder"):
        path = prefix / "lib" / "ove_ros" / exe
        assert path.is_file() and os.access(path, os.X_OK), f"{path} missing or not executable"


def test_generated_and_hand_written_modules_share_one_package():
    code = "import ove_ros, ove_ros.msg, ove_ros.values; print(ove_ros.__version__)"
    out = run_python(code, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == __import__("ove_ros").__version__


def test_core_imports_without_rclpy():
    """Everything but ove_ros.ros (and the simulator) must import on a machine without ROS."""
    code = (
        "import sys; sys.modules['rclpy'] = None\n"
        "import ove_ros, ove_ros.values, ove_ros.prompt, ove_ros.frame_grid, ove_ros.streaming\n"
        "import ove_ros.model, ove_ros.bundle, ove_ros.engine, ove_ros.overlay\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO_ROOT),
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_the_main_job_and_the_bag_types_are_installed():
    """The colcon build installs every package under ove_ros/, the main job included (outside a checkout)."""
    code = (
        "import ove_ros.main_job.cli as c, ove_ros.bag_types as b, ove_ros.sim.recorder\n"
        "print(b.EPISODE_EVENT, c.__file__)"
    )
    out = run_python(code, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    event, path = out.stdout.split()
    assert event == "ove_ros/msg/EpisodeEvent"
    assert not Path(path).is_relative_to(REPO_ROOT / "ove_ros"), f"{path} is the checkout's, not installed"


def test_training_is_installed_inside_ove_ros_only():
    """No top-level `training` module lands in the install: it is ove_ros.training (outside a checkout)."""
    code = (
        "import importlib.util, ove_ros.training.train as t\n"
        "print(importlib.util.find_spec('training') is None, t.__name__)"
    )
    out = run_python(code, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "ove_ros.training.train"]


def test_the_old_spelling_still_runs_from_a_checkout_with_a_deprecation_line():
    out = subprocess.run([sys.executable, "-m", "training.convert", "--help"], capture_output=True, text=True,
                         cwd=str(REPO_ROOT), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "deprecated" in out.stderr and "python -m ove_ros.training.<tool>" in out.stderr
    assert "--checkpoint" in out.stdout
