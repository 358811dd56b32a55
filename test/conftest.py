# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Shared test fixtures.

Every test session gets its own ROS domain on loopback so that parallel runs on one machine never see each
other's topics, and its own datasets cache. Process-level tests start real processes with `ros_env()`.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Chosen once per session, inherited by every child process.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
# Loading a LeRobot dataset writes Arrow copies of its parquet files into the datasets cache; the datasets
# that tests write are throwaway, so their copies go to a folder removed with the session, not ~/.cache.
_DATASETS_CACHE = tempfile.mkdtemp(prefix="ove_ros-test-datasets-cache-")
os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE
atexit.register(shutil.rmtree, _DATASETS_CACHE, True)


def ros_env(**extra: str) -> dict[str, str]:
    """Environment for a child process: this session's ROS domain, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def installed_executable(name: str) -> Path:
    """Path of an executable installed by the colcon build into lib/ove_ros (what `ros2 run` starts)."""
    from ament_index_python.packages import get_package_prefix

    path = Path(get_package_prefix("ove_ros")) / "lib" / "ove_ros" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/setup.sh (colcon build) first")
    return path


def run_python(
    code: str, timeout: float = 60.0, cwd: str | None = None, **env: str
) -> subprocess.CompletedProcess:
    """Run a Python snippet in a fresh interpreter (a separate DDS participant); ``cwd="/"`` imports what is
    installed rather than the checkout."""
    return subprocess.run(
        [sys.executable, "-c", code], env=ros_env(**env), capture_output=True, text=True, timeout=timeout,
        cwd=cwd,
    )


def dotted_keys(tree: dict, prefix: str = "") -> dict:
    """Nested mappings -> ``{"a.b.c": leaf}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(dotted_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.fixture
def output_dir(request) -> Path:
    """A per-test folder under test-output/ whose files (PNGs, logs) are kept for people to look at."""
    path = REPO_ROOT / "test-output" / request.node.name.replace("/", "_").replace("[", "_").replace("]", "")
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def shared_data() -> Path:
    """The real LeRobot dataset beside the checkout (../shared/data); skipped where it is absent."""
    if not (SHARED_DATA / "g1_pick_bottle_mini").is_dir():
        pytest.skip(f"real-data fixture {SHARED_DATA}/g1_pick_bottle_mini is absent "
                    "(it lives beside the checkout)")
    return SHARED_DATA
