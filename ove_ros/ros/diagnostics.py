# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Bookkeeping for /diagnostics and the logs: sample windows, per-input counters, throttled warnings."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

# Levels as ints (the message field is a byte; status() converts).
OK, WARN, ERROR = (int.from_bytes(level, "little") for level in
                   (DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR))


class Window:
    """The most recent ``size`` samples of one measurement (bounded; thread-safe appends)."""

    def __init__(self, size: int = 1000):
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, x: float) -> None:
        with self._lock:
            self._samples.append(float(x))

    def __len__(self) -> int:
        return len(self._samples)

    def snapshot(self) -> np.ndarray:
        with self._lock:
            return np.array(self._samples, dtype=np.float64)

    def percentiles(self, *qs: float) -> list[float]:
        data = self.snapshot()
        if data.size == 0:
            return [math.nan] * len(qs)
        return [float(v) for v in np.percentile(data, qs)]

    def mean(self) -> float:
        data = self.snapshot()
        return float(data.mean()) if data.size else math.nan


@dataclass
class InputStats:
    """What one input topic delivered (the synchronizer keeps the synced / dropped counters)."""

    topic: str
    kind: str  # "raw", "compressed", "joint_states" or "auto" while the type is unknown
    received: int = 0
    rejected: int = 0  # messages dropped because they could not be used
    problems: int = 0  # rejections and other warnings (size change, stale stamps, QoS)
    problems_reported: int = 0  # problems at the previous diagnostics message
    last_error: str = ""
    last_wall: float | None = None  # time.monotonic() of the last message
    timed_out: bool = False  # nothing for input_timeout seconds
    shape: tuple[int, int] | None = None  # (height, width) of the first decoded frame


class Throttle:
    """Log a message at most once per ``period`` seconds per key, saying how many were suppressed."""

    def __init__(self, period: float = 5.0):
        self.period = period
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, log, key: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -math.inf) < self.period:
                self._suppressed[key] = self._suppressed.get(key, 0) + 1
                return
            self._last[key] = now
            n = self._suppressed.pop(key, 0)
        log(f"{message} ({n} similar messages suppressed)" if n else message)


def status(name: str, level: int, message: str, hardware_id: str, values: dict) -> DiagnosticStatus:
    """A DiagnosticStatus with the values formatted as strings (floats with 4 significant digits)."""

    def fmt(v) -> str:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else f"{v:.4g}"
        return str(v)

    return DiagnosticStatus(
        level=bytes([level]), name=name, message=message, hardware_id=hardware_id,
        values=[KeyValue(key=k, value=fmt(v)) for k, v in values.items()],
    )
