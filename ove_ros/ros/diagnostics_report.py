# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's /diagnostics message, built from a snapshot of its counters (plain data in, message out).

The node gathers the snapshot under its locks (``DiagnosticsSnapshot``); everything said about its health,
the level, summary line and every key users and tests read, is decided here, so it can be checked without
a ROS graph. Keys and wording are an interface: monitoring and the process tests read them by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

from ove_ros.frame_grid import GridStats
from ove_ros.ros.diagnostics import ERROR, OK, WARN, status
from ove_ros.streaming import StreamStats

# Sample windows the node keeps (seconds per tick; "callback" per input message).
WINDOWS = ("model", "e2e", "wait", "overhead", "decode", "publish", "callback")


@dataclass(frozen=True)
class InputSnapshot:
    """One input topic at the time of the report."""

    topic: str  # as configured (the summary line names it so)
    resolved: str  # the full topic name (status names use it)
    kind: str
    received: int
    rejected: int
    last_error: str
    silent_s: float  # since its last message; nan before the first
    timed_out: bool
    new_problems: int  # problems since the previous report


@dataclass(frozen=True)
class DiagnosticsSnapshot:
    """What the node knows about itself at one moment."""

    node: str  # fully qualified node name
    hardware: str  # the engine's device, or "unloaded"
    active: bool
    inputs: list[InputSnapshot]
    input_timeout: float
    error_recent: bool  # a tick failed within the last two diagnostics periods
    last_error: str
    rate_hz: float  # ticks per second since the previous report
    checkpoint: str
    task: str
    episode_frames: int
    fps: float
    n_step: int
    contract: str  # where fps, n_step and tolerance came from
    ticks: int
    windows: dict[str, Any]  # name -> Window (percentiles(), mean())
    dropped_busy: int
    grid: GridStats
    outside_frames: int
    clock_resets: int
    advantage_stats: StreamStats
    advantages: int
    episodes: int
    errors: int


def input_status(snap: DiagnosticsSnapshot, inp: InputSnapshot, synced: int) -> tuple[DiagnosticStatus, str]:
    """One input's status and its problem for the summary line ('' when it is fine)."""
    level, message = OK, "ok"
    if inp.timed_out:
        level, message = WARN, f"no message for more than {snap.input_timeout} s"
    elif inp.new_problems:
        level, message = WARN, f"{inp.new_problems} problem(s), last: {inp.last_error}"
    problem = f"{inp.topic}: {message}" if level != OK else ""
    return status(f"{snap.node}: input {inp.resolved}", level, message, snap.hardware, {
        # Every dataset frame holds one message of every input.
        "type": inp.kind, "received": inp.received, "synced": synced, "rejected": inp.rejected,
        "last_error": inp.last_error, "silent_s": inp.silent_s}), problem


def summary_level(snap: DiagnosticsSnapshot, problems: list[str]) -> tuple[int, str]:
    """The node's level and summary line."""
    level = max(ERROR if snap.error_recent else OK, WARN if problems else OK)
    if not snap.active:
        return level, "inactive"
    if level == ERROR:
        return level, f"tick failed: {snap.last_error}"
    return level, "; ".join(problems) if problems else f"ok, {snap.rate_hz:.1f} ticks/s"


def summary_values(snap: DiagnosticsSnapshot) -> dict:
    """The key-value pairs of the node's own status, in the order they are published."""
    win, grid, adv = snap.windows, snap.grid, snap.advantage_stats
    p = {k: [v * 1e3 for v in win[k].percentiles(50, 99)] for k in win}
    return {
        "state": "active" if snap.active else "inactive", "device": snap.hardware, "model": snap.checkpoint,
        "task": snap.task, "episode_frames": snap.episode_frames,
        "fps": snap.fps, "n_step": snap.n_step, "contract": snap.contract,
        "ticks": snap.ticks, "rate_hz": snap.rate_hz,
        "latency_model_p50_ms": p["model"][0], "latency_model_p99_ms": p["model"][1],
        "latency_e2e_p50_ms": p["e2e"][0], "latency_e2e_p99_ms": p["e2e"][1],
        # Time a tick waited for the worker: at most about one model call when nothing queues up.
        "latency_wait_p50_ms": p["wait"][0], "latency_wait_p99_ms": p["wait"][1],
        "overhead_p50_ms": p["overhead"][0], "overhead_p99_ms": p["overhead"][1],
        "overhead_mean_ms": win["overhead"].mean() * 1e3,
        "decode_p50_ms": p["decode"][0], "publish_p50_ms": p["publish"][0],
        "callback_p50_ms": p["callback"][0], "callback_mean_ms": win["callback"].mean() * 1e3,
        # Frames the model could not value (busy): gaps in the n-step windows, never shifts.
        "dropped_ticks": snap.dropped_busy,
        "grid_frames": grid.kept, "grid_ticks_missing_input": grid.dropped_missing,
        "grid_ticks_decided_by_max_age": grid.forced, "out_of_order_inputs": grid.out_of_order,
        "late_starts": grid.late_starts, "late_ends": grid.late_ends,
        "frames_taken_back_by_end": grid.retracted,
        "frames_outside_episodes": snap.outside_frames,
        "sync_misses": grid.dropped_missing, "clock_resets": snap.clock_resets,
        "advantages_bootstrap_shifted": adv.shifted, "advantages_bootstrap_missing": adv.missing,
        "advantages_truncated": adv.truncated, "advantages_unpublished_tail": adv.unpublished_tail,
        "rejected_inputs": sum(i.rejected for i in snap.inputs), "advantages": snap.advantages,
        "episodes": snap.episodes, "errors": snap.errors,
        "last_error": snap.last_error,
    }


def diagnostic_array(snap: DiagnosticsSnapshot) -> DiagnosticArray:
    """The node's status first, then one per input; the caller stamps the header."""
    statuses, problems = [], []
    for inp in snap.inputs:
        st, problem = input_status(snap, inp, snap.grid.kept)
        statuses.append(st)
        if problem:
            problems.append(problem)
    level, summary = summary_level(snap, problems)
    statuses.insert(0, status(f"{snap.node}: value estimator", level, summary, snap.hardware,
                              summary_values(snap)))
    return DiagnosticArray(status=statuses)
