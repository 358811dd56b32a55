# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one thread that owns the model: latest-wins ticks plus ordered control jobs.

Executor callbacks never wait for the model; they hand the newest tick to this thread. A tick that arrives
while another is still pending replaces it (the caller counts it as dropped), so nothing queues up when the
model is slower than the sensors. Control jobs (load, episode end, reset) run in the order they were
submitted; a pending tick is moved ahead of a control job because it was observed before it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class Worker:
    def __init__(self, handle_tick: Callable[[Any], None], on_error: Callable[[BaseException], None],
                 name: str = "inference"):
        self._handle_tick = handle_tick
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: Any = None
        self._jobs: deque[tuple[Callable[[], Any] | None, Any, Future | None]] = deque()
        self._stopping = False
        self._busy = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy

    def submit_tick(self, tick: Any) -> bool:
        """Hand a tick over; returns True when it replaced one that was still waiting (dropped)."""
        with self._cond:
            replaced = self._pending is not None
            self._pending = tick
            self._cond.notify()
        return replaced

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on the worker after the ticks already handed over; the future holds its result."""
        future: Future = Future()
        with self._cond:
            if self._stopping:
                future.set_exception(RuntimeError("the inference worker has stopped"))
                return future
            if self._pending is not None:
                self._jobs.append((None, self._pending, None))
                self._pending = None
            self._jobs.append((fn, None, future))
            self._cond.notify()
        return future

    def stop(self, timeout: float = 10.0) -> bool:
        """Finish the queued control jobs, drop a waiting tick and end the thread; False on timeout."""
        with self._cond:
            self._stopping = True
            self._pending = None
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and self._pending is None and not self._stopping:
                    self._cond.wait()
                if self._jobs:
                    fn, tick, future = self._jobs.popleft()
                elif self._stopping:
                    return
                else:
                    fn, tick, future = None, self._pending, None
                    self._pending = None
                self._busy = True
            try:
                if fn is None:
                    self._handle_tick(tick)
                elif future.set_running_or_notify_cancel():
                    future.set_result(fn())
            except Exception as exc:  # reported to the node; the thread must survive
                if future is not None and not future.done():
                    future.set_exception(exc)
                else:
                    self._on_error(exc)
            finally:
                self._busy = False
