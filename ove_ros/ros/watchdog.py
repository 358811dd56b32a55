# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The input watchdog's rules, without ROS: which inputs have been silent for longer than input_timeout,
which deliver again after that, and when every input has fallen silent.

The last rule closes an END whose last frames wait for inputs that stopped (the robot stops publishing at the
end of an episode): only once every input has been silent for input_timeout, so that messages still queued
behind a busy executor are not cut off. The node's timer asks these questions every half second and does
the logging; the rules read each input's ``last_wall`` (``time.monotonic()`` of its newest message, None
before the first) and keep its ``timed_out`` flag (``diagnostics.InputStats``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Silence:
    """An input whose watchdog state matters this round: silent too long, or delivering again."""

    stream: str
    silent_s: float  # seconds since its newest message (since activation when it never delivered)
    timed_out: bool  # False: it timed out before and delivers again now


def rearm(stats: Iterable[Any]) -> None:
    """Forget what the inputs delivered before: at activation, silence counts from then on."""
    for st in stats:
        st.last_wall, st.timed_out = None, False


def check(stats: Mapping[str, Any], now: float, since: float, timeout: float) -> list[Silence]:
    """Update each input's ``timed_out`` at ``now`` and return, in input order, those silent for more than
    ``timeout`` seconds and those that timed out before and deliver again. ``since`` stands in for the newest
    message of an input that has not delivered yet (the activation time)."""
    found = []
    for stream, st in stats.items():
        silent = now - (st.last_wall if st.last_wall is not None else since)
        was_out, st.timed_out = st.timed_out, silent > timeout
        if st.timed_out or was_out:
            found.append(Silence(stream, silent, st.timed_out))
    return found


def all_silent(stats: Iterable[Any], now: float, timeout: float) -> bool:
    """Every input has been silent for more than ``timeout`` seconds (False before any message)."""
    last = max((st.last_wall for st in stats if st.last_wall is not None), default=None)
    return last is not None and now - last > timeout
