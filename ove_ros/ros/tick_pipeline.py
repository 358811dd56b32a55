# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""From the frame grid to the published value: the grid behind its lock, its output handed to the inference
worker, and on the worker each frame decoded, valued, fed to the episode's advantage stream and published.

Two sides. Executor threads (input callbacks, episode events, services, parameters, transitions) change the
grid through ``apply``, under one lock, and ``dispatch`` what it returns: a frame replaces one still waiting
on the worker (the replaced one is a gap, not a shift; it counts as dropped_busy), episode starts and ends
queue behind the frames before them. The worker runs ``process`` for each frame and the episode changes in
order; it alone touches the ``EpisodeTracker``, whose advantages leave through ``_publish_advantage``.

Made at configure and dropped at cleanup; what changes at run time (settings, the engine, whether the node
is active) is read through the callables it is given, at the moment it is needed.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Float64

from ove_ros.frame_grid import EpisodeEnd, EpisodeStart, FrameGrid, GridFrame
from ove_ros.ros import conversions as conv
from ove_ros.ros.conversions import ConversionError
from ove_ros.ros.episode_tracker import Episode, EpisodeTracker
from ove_ros.ros.inputs import JOINTS
from ove_ros.ros.outputs import Outputs
from ove_ros.ros.publishers import advantage_msg, value_msg
from ove_ros.ros.worker import Worker
from ove_ros.streaming import AdvantageRecord
from ove_ros.values import RewardConfig


@dataclass
class TickJob:
    """One dataset frame handed to the worker."""

    episode: int  # the frame grid's episode serial
    index: int | None  # frame index in the episode; None between episodes
    stamp: Time  # the frame's grid time
    frames: list  # Image / CompressedImage per camera, bundle order
    state: np.ndarray
    skew: float  # spread of the input stamps used, seconds
    fired: float  # perf_counter() when the completing message arrived
    sync_s: float  # time spent in that message's callback
    final: int = 0  # the episode's frames no late END can take back (GridFrame.final)


def tick_job(frame: GridFrame, cameras: list[str], fired: float, start: float | None) -> TickJob | None:
    """The worker's job for a grid frame, or None for a frame re-placed from history after a late START
    (its messages are gone). Payloads are (stamp, message) per camera and (stamp, vector) for the joints;
    ``start`` is when the callback that completed the frame began (None outside an input callback)."""
    if frame.payloads is None:
        return None
    stamps = frame.stamps_ns.values()
    return TickJob(episode=frame.episode, index=frame.index, stamp=conv.ns_to_stamp(frame.stamp_ns),
                   frames=[frame.payloads[c][1] for c in cameras], state=frame.payloads[JOINTS][1],
                   skew=(max(stamps) - min(stamps)) * 1e-9, fired=fired,
                   sync_s=fired - start if start is not None else 0.0, final=frame.final)


class TickPipeline:
    """The frame grid, the worker's ticks and the episode tracker of one configured bundle.

    ``counts`` and ``windows`` are the node's diagnostics counters and sample windows (this writes "ticks",
    "dropped_busy" and every window but "callback"); ``reject`` and ``note_shape`` report a camera frame that
    cannot be decoded and the size of each decoded frame to the input side."""

    def __init__(self, *, grid: FrameGrid, worker: Worker, cameras: list[str], image_specs: list, bins,
                 meta, reward: RewardConfig, log, settings: Callable[[], Any], engine: Callable[[], Any],
                 active: Callable[[], bool], outputs: Callable[[], Outputs | None], counts: dict,
                 windows: dict, reject: Callable[[str, Exception], None],
                 note_shape: Callable[[str, tuple[int, int], int], None]):
        self.grid = grid
        self.lock = threading.Lock()  # the grid: input callbacks, events, services, diagnostics
        self.tracker = EpisodeTracker(meta, reward, self._publish_advantage, log)
        self._worker = worker
        self._cameras = cameras
        self._image_specs = image_specs
        self._bins = bins
        self._settings = settings
        self._engine = engine
        self._active = active
        self._outputs = outputs
        self._counts = counts
        self._win = windows
        self._reject = reject
        self._note_shape = note_shape

    # ---------------------------------------------------------------------------------- executor threads

    def apply(self, change: Callable[[FrameGrid], list], start: float | None = None) -> None:
        """Change the grid under its lock (``change(grid)`` returns the items it completes) and dispatch."""
        with self.lock:
            items = change(self.grid)
        self.dispatch(items, start)

    def dispatch(self, items: list, start: float | None = None) -> None:
        """Hand the frame grid's output to the worker: episode changes in order, frames latest-wins."""
        for item in items:
            if isinstance(item, GridFrame):
                job = tick_job(item, self._cameras, time.perf_counter(), start)
                if job is not None and self._worker.submit_tick(job):
                    self._counts["dropped_busy"] += 1
            elif isinstance(item, EpisodeStart):
                self._worker.submit(partial(self._start_episode, item))
            elif isinstance(item, EpisodeEnd):
                self._worker.submit(partial(self._end_episode, item))

    def task(self) -> str:
        """The running episode's task, else the task parameter's."""
        return self.tracker.task(self._settings().task)

    # ------------------------------------------------------------------------------------ worker thread

    def _start_episode(self, start: EpisodeStart) -> None:
        self.tracker.start(start, self._settings())

    def _end_episode(self, end: EpisodeEnd) -> int:
        return self.tracker.end(end)

    def process(self, job: TickJob) -> None:
        """Value one frame, feed the advantage stream, publish the value and the views for people."""
        engine, s = self._engine(), self._settings()
        if engine is None or not self._active():
            return
        tracker = self.tracker
        ep = tracker.current(job.episode)
        task = ep.task if ep is not None else self.task()
        t0 = time.perf_counter()
        images = []
        for cam, msg, spec in zip(self._cameras, job.frames, self._image_specs, strict=True):
            try:
                images.append(conv.to_rgb(msg, spec))
            except ConversionError as exc:
                return self._reject(cam, exc)
            self._note_shape(cam, images[-1].shape[:2], engine.model.config.image_size)
        t1 = time.perf_counter()
        # A model with elapsed time as an input reads the frame index (frames between episodes: 0).
        out = engine.infer(images, job.state, task, frame_index=job.index or 0)
        t2 = time.perf_counter()
        if not self._active():
            return  # deactivated while the model ran
        # The published float32 value is the one the advantages use, so they can be recomputed offline.
        value = float(np.float32(out.value))
        in_episode = ep is not None and job.index is not None
        records = tracker.value(ep, job.index, conv.stamp_to_ns(job.stamp), value, job.final)
        pubs = self._outputs()
        msg = value_msg(job.stamp, s.frame_id, task, job.index if in_episode else 0, out, self._bins,
                        job.skew, s.publish_distribution)
        msg.in_episode = in_episode
        msg.episode = job.episode
        pubs.value.publish(msg)
        if ep is not None:
            tracker.emit(ep, records)
        cam = s.overlay_camera
        pubs.views(job.stamp, s.frame_id, value, out.std, task, self._bins, s.overlay_enabled, images[cam],
                   job.frames[cam].header.frame_id, ep.history if ep is not None else deque([value]),
                   ep.last_positive if ep else None)
        t3 = time.perf_counter()
        pubs.latency.publish(Float64(data=t3 - job.fired))
        self._counts["ticks"] += 1
        for key, seconds in (("model", t2 - t1), ("e2e", t3 - job.fired), ("wait", t0 - job.fired),
                             ("decode", t1 - t0),
                             ("publish", t3 - t2), ("overhead", job.sync_s + (t1 - t0) + (t3 - t2))):
            self._win[key].add(seconds)

    def _publish_advantage(self, ep: Episode, rec: AdvantageRecord, stamp_ns: int) -> None:
        """The episode tracker's outlet."""
        out = self._outputs()
        if out is not None:
            msg = advantage_msg(rec, conv.ns_to_stamp(stamp_ns), self._settings().frame_id, ep.task)
            msg.episode = ep.serial
            out.advantage.publish(msg)
