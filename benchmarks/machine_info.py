# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What a benchmark ran on, recorded beside its figures (every benchmark writes this into its JSON)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo, else what the platform module knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def basic() -> dict[str, Any]:
    """CPU, usable cores, platform, Python and the load average (other jobs make figures pessimistic)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cores_usable": cores,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_1_5_15min": load,
    }
