# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's multi-threaded executor: rclpy's, without its spin while callbacks wait for a thread.

rclpy's ``MultiThreadedExecutor`` (9.x and earlier) hands out every unfinished task that has not *started*.
A task it has already passed to the thread pool, but that no pool thread has begun (all busy, or not yet
scheduled), is handed out again at once, without waiting, and submitted again; the spin thread loops that
way, holding the GIL, until a pool thread starts the task. Under load that loop is what keeps the pool
threads from starting: the node's input callbacks fell seconds behind, a frame's END closed before its
frames had been read and the model thread was starved (values dropped as busy).

``NodeExecutor`` remembers which tasks wait in the pool and does not hand them out again, so the spin
thread blocks in the wait set until a message, a timer or a finished task wakes it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rclpy.executors import MultiThreadedExecutor


class _TrackingPool:
    """The executor's thread pool, remembering the callables submitted but not yet started."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._lock = threading.Lock()
        self._waiting: set[int] = set()  # id() of each callable queued in the pool
        self.submitted = 0  # callables handed to the pool (a test's witness: one per callback run)

    def submit(self, fn: Callable[[], Any]) -> Future:
        with self._lock:
            self._waiting.add(id(fn))
            self.submitted += 1
        return self._pool.submit(self._start, fn)

    def _start(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            self._waiting.discard(id(fn))
        return fn()

    def waiting(self, fn: Any) -> bool:
        with self._lock:
            return id(fn) in self._waiting

    def __getattr__(self, name: str) -> Any:  # shutdown and the rest: the pool's own
        return getattr(self._pool, name)


def track_submissions(executor: MultiThreadedExecutor) -> _TrackingPool:
    """The executor's thread pool, wrapped (once) so that it counts and remembers what it is given; the
    stock executor's too, for the test and the benchmark that compare the two."""
    if not isinstance(executor._executor, _TrackingPool):
        executor._executor = _TrackingPool(executor._executor)
    return executor._executor


class NodeExecutor(MultiThreadedExecutor):
    """``MultiThreadedExecutor`` that hands each task to the pool once per run (see the module text)."""

    def __init__(self, num_threads: int | None = None, **kwargs: Any) -> None:
        super().__init__(num_threads=num_threads, **kwargs)
        self.pool = track_submissions(self)

    def _wait_for_ready_callbacks(self, *args: Any, **kwargs: Any) -> Iterator[tuple]:
        # rclpy's generator yields queued tasks first and then waits once on the wait set. Skipping the
        # queued ones leaves that wait as the only thing a round does, so a round with nothing new blocks.
        while True:
            handed = False
            for handler, entity, node in super()._wait_for_ready_callbacks(*args, **kwargs):
                if self.pool.waiting(handler):
                    continue
                handed = True
                yield handler, entity, node
            if handed:
                return
