# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Callbacks of configured entities run only while the configuration exists.

Destroying a subscription or timer does not stop a callback that the executor has already taken: it may
start on another thread after cleanup has freed what it reads (the frame grid, the input table). The gate
is opened once configure has built that state; cleanup closes it first, which waits for the callbacks in
flight, and only then destroys the entities and frees the state. A callback arriving at a closed gate does
nothing. Pure threading, no rclpy.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


class CallbackGate:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open = False
        self._running = 0

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        with self._cond:
            self._open = True

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new callbacks and wait for those in flight; False if they were still running at the
        timeout. Called from a callback that holds the gate, it would wait for itself: don't."""
        with self._cond:
            self._open = False
            return self._cond.wait_for(lambda: self._running == 0, timeout)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` if the gate is open (its result), else None without calling it."""
        with self._cond:
            if not self._open:
                return None
            self._running += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._cond:
                self._running -= 1
                if self._running == 0:
                    self._cond.notify_all()


def gated(method: F) -> F:
    """A method of an object with a ``_gate`` (CallbackGate), run through it."""

    @functools.wraps(method)
    def through_gate(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._gate.run(method, self, *args, **kwargs)

    return through_gate  # type: ignore[return-value]
