# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Stage bookkeeping of the main job: one timed, printed line per stage, and the error a failed stage raises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class StageError(RuntimeError):
    """A stage failed; the message names its log."""


class Stages:
    """Times the stages and prints one line per stage."""

    def __init__(self, console) -> None:
        self.console = console
        self.times: dict[str, dict[str, Any]] = {}

    def run(self, name: str, fn: Callable[[], Any], note: Callable[[Any], str] | None = None) -> Any:
        self.console.rule(f"[bold]{name}")
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        self.times[name] = {"seconds": seconds, "note": note(result) if note else ""}
        self.console.print(f"[green]done[/green] {name} in {seconds:.1f} s {self.times[name]['note']}")
        return result
