# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The main job's child processes: ROS 2 environment, installed executables, parameter files, logged children.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ove_ros.child_process import stop_child
from ove_ros.main_job.config import REPO_ROOT


def ros_child_env(**extra: str) -> dict[str, str]:
    """Environment of the ROS processes: one private domain on loopback for the whole demo."""
    # Chosen once per demo process (above the 1..101 the test sessions use) and inherited by every child.
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(102, 232)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def executable(name: str, module: str) -> list[str]:
    """The installed ``lib/ove_ros/<name>`` (what ``ros2 run`` starts), else ``python -m <module>``."""
    try:
        from ament_index_python.packages import get_package_prefix

        path = Path(get_package_prefix("ove_ros")) / "lib" / "ove_ros" / name
        if path.is_file():
            return [sys.executable, str(path)]
    except (ImportError, LookupError, KeyError):
        pass
    return [sys.executable, "-m", module]


def write_params(path: Path, params: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}, sort_keys=False))
    return path


class Process:
    """A child process whose output goes to a log file; ``on_line`` sees each line (progress bars)."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str],
                 on_line: Callable[[str], None] | None = None) -> None:
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._file = log.open("w")
        self._file.write("$ " + " ".join(cmd) + "\n")
        self._file.flush()
        self.popen = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, bufsize=1,
            start_new_session=True, cwd=REPO_ROOT,
        )
        self._reader = threading.Thread(target=self._pump, args=(on_line,), daemon=True)
        self._reader.start()

    def _pump(self, on_line: Callable[[str], None] | None) -> None:
        for line in self.popen.stdout:
            self._file.write(line)
            self._file.flush()
            if on_line is not None:
                on_line(line)

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGINT (clean shutdown: bags are closed), then SIGTERM, then SIGKILL."""
        code = stop_child(self.popen, grace)
        self._reader.join(timeout=5)
        self._file.close()
        return code

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
