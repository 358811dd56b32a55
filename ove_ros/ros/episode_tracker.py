# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The running episode on the inference worker: its valued frames, its advantage stream, its counters.

Kept apart from the node so the bookkeeping can be read and tested without a ROS graph: no rclpy here,
advantages leave through the ``publish`` callable and log lines through ``log`` (anything with ``info`` and
``warning``). Only the worker thread calls the mutating methods; other threads read ``task`` and the
counters, as plain attribute reads.

A valued frame reaches the advantage stream only once it is final (``GridFrame.final``): until then a late
END may still take it back, and an advantage already published could not be.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ove_ros.frame_grid import EpisodeEnd, EpisodeStart
from ove_ros.streaming import AdvantageRecord, StreamingAdvantage, StreamStats
from ove_ros.values import RewardConfig


@dataclass
class Episode:
    """Worker-only state of the running episode."""

    serial: int
    task: str
    stream: StreamingAdvantage | None  # None: no advantages (precomputed-rewards bundle)
    history: deque
    frames: int = 0  # frames valued
    stamps: dict[int, int] = field(default_factory=dict)  # frame -> stamp (ns), until its advantage is out
    # Valued frames a late END may still take back: they reach the advantage stream once final.
    unconfirmed: deque = field(default_factory=deque)  # (index, stamp_ns, value)
    last_positive: bool | None = None


# publish(episode, record, stamp_ns of the record's frame)
Publish = Callable[[Episode, AdvantageRecord, int], None]


class EpisodeTracker:
    """Episode starts and ends, valued frames and the advantages they complete, for one configured bundle.

    ``meta`` is the bundle's metadata (task normalizers, advantage thresholds, ``scale_for``, default
    scale); settings (n_step, thresholds, tolerances, sparkline length) are passed per call because some
    of them change at run time.
    """

    def __init__(self, meta: Any, reward: RewardConfig, publish: Publish, log: Any):
        self._meta = meta
        self._reward = reward
        self._publish = publish
        self._log = log
        self.episode: Episode | None = None
        self.episodes = 0  # episodes started
        self.advantages = 0  # advantage records handed to publish
        self.outside_frames = 0  # frames valued between episodes
        self.last_flush = 0  # advantages flushed by the last episode end
        self._totals = StreamStats()  # stream counters of the episodes that ended

    def task(self, default: str) -> str:
        """The running episode's task, or ``default`` between episodes."""
        ep = self.episode
        return ep.task if ep is not None else default

    def current(self, serial: int) -> Episode | None:
        """The running episode when it is the one with this serial (a frame's episode), else None."""
        ep = self.episode
        return ep if ep is not None and ep.serial == serial else None

    def start(self, start: EpisodeStart, s) -> Episode:
        """Begin an episode; ``s`` holds task, n_step, fps, advantage_threshold, bootstrap_tolerance and
        overlay_history (``params.Settings``)."""
        meta = self._meta
        task = start.task or s.task
        if task not in meta.task_normalizers:
            self._log.warning(
                f"task {task!r} is not in the bundle (known: {sorted(meta.task_normalizers)}); using "
                f"default_scale={meta.default_scale}")
        threshold = meta.advantage_thresholds.get(task, s.advantage_threshold)
        stream = None
        if not self._reward.precomputed_rewards:
            stream = StreamingAdvantage(s.n_step, meta.scale_for(task), self._reward, threshold,
                                        bootstrap_tolerance=s.bootstrap_tolerance)
        self.episode = Episode(serial=start.episode, task=task, stream=stream,
                               history=deque(maxlen=s.overlay_history))
        self.episodes += 1
        self._log.info(f"new episode ({start.reason}): task {task!r}, "
                       f"scale {meta.scale_for(task):g}, threshold {threshold:g}, "
                       f"n_step {s.n_step} frames at {s.fps:g} fps")
        return self.episode

    def value(self, ep: Episode | None, index: int | None, stamp_ns: int, value: float,
              final: int) -> list[AdvantageRecord]:
        """Note one valued frame (``ep``: its episode, from ``current``; ``index`` None between episodes).

        Returns the advantage records the frames now final complete; hand them to ``emit`` after the
        frame's own value is out."""
        if ep is None or index is None:
            self.outside_frames += 1
            return []
        ep.frames += 1
        ep.history.append(value)
        if ep.stream is None:
            return []
        ep.unconfirmed.append((index, stamp_ns, value))
        return self._release(ep, final)

    def emit(self, ep: Episode, records: list[AdvantageRecord]) -> None:
        """Publish ``records`` of ``ep`` with their frames' stamps and forget those stamps."""
        for rec in records:
            stamp_ns = ep.stamps.pop(rec.tick)
            ep.last_positive = rec.positive
            self._publish(ep, rec, stamp_ns)
        for old in [k for k in ep.stamps if records and k <= records[-1].tick]:
            del ep.stamps[old]  # frames whose advantage could not be formed (no bootstrap)
        self.advantages += len(records)

    def end(self, end: EpisodeEnd) -> int:
        """End the episode ``end`` names (others are stale: ignored); the advantages it flushed."""
        ep = self.episode
        if ep is None or ep.serial != end.episode:
            return 0
        records = []
        if ep.stream is not None:
            records = self._release(ep, end.frames)
            ep.stream.stats.unpublished_tail += len(ep.unconfirmed)  # valued, then taken back by the END
            ep.unconfirmed.clear()
            records += ep.stream.end_episode(end.success, last_frame=end.frames - 1)
        self.emit(ep, records)
        self._add_stream_stats(ep)
        outcome = {True: "success", False: "failure", None: "none (truncated)"}[end.success]
        self._log.info(f"episode ended ({end.reason}, outcome {outcome}): {end.frames} frames, "
                       f"{ep.frames} valued; {len(records)} advantages flushed")
        self.episode = None
        self.last_flush = len(records)
        return len(records)

    def apply_settings(self, s) -> None:
        """A new fallback threshold or sparkline length for the running episode."""
        ep = self.episode
        if ep is None:
            return
        if ep.stream is not None:  # a precomputed-rewards bundle has no advantages to label
            ep.stream.set_threshold(self._meta.advantage_thresholds.get(ep.task, s.advantage_threshold))
        ep.history = deque(ep.history, maxlen=s.overlay_history)

    def stream_stats(self) -> StreamStats:
        """Advantage stream counters summed over the ended episodes and the running one."""
        total = self._totals
        ep = self.episode
        if ep is not None and ep.stream is not None:
            return StreamStats(**{k: v + getattr(ep.stream.stats, k) for k, v in vars(total).items()})
        return total

    def _release(self, ep: Episode, final: int) -> list[AdvantageRecord]:
        """Hand the valued frames below ``final`` to the advantage stream; the records they complete."""
        records = []
        while ep.unconfirmed and ep.unconfirmed[0][0] < final:
            index, stamp_ns, value = ep.unconfirmed.popleft()
            ep.stamps[index] = stamp_ns
            records += ep.stream.push(index, stamp_ns * 1e-9, value)
        return records

    def _add_stream_stats(self, ep: Episode) -> None:
        if ep.stream is None:
            return
        total, st = self._totals, ep.stream.stats
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(st, name))
        ep.stream.stats = StreamStats()
