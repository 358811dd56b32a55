# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Stopping a child ROS 2 process as ``ros2 launch`` does: SIGINT first, harder signals only if needed."""

from __future__ import annotations

import signal
import subprocess


def stop_child(proc: subprocess.Popen, grace: float = 10.0) -> int | None:
    """SIGINT (nodes shut down cleanly, recorders close their bags), then SIGTERM after ``grace`` seconds,
    then SIGKILL; returns the exit code (None only if even SIGKILL did not reap it within 5 s)."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    return proc.returncode
