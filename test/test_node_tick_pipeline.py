# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The frame grid's output on its way to the inference worker, without a ROS graph: a grid frame becomes the
worker's job, frames are latest-wins (a replaced one counts as dropped_busy), and episode starts queue behind
the frames before them so the episode tracker sees them in order."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

pytest.importorskip("ove_ros.msg")  # the ROS layer must be importable (built interfaces)

from test_episode_tracker import PERIOD_NS, EpisodeSettings, Log, meta  # noqa: E402

from ove_ros.frame_grid import FrameGrid, GridFrame  # noqa: E402
from ove_ros.ros import conversions as conv  # noqa: E402
from ove_ros.ros.inputs import JOINTS  # noqa: E402
from ove_ros.ros.tick_pipeline import TickPipeline, tick_job  # noqa: E402
from ove_ros.ros.worker import Worker  # noqa: E402
from ove_ros.values import RewardConfig  # noqa: E402

T0 = 1_000_000_000


@dataclass
class Settings(EpisodeSettings):
    """The settings the pipeline reads: the episode tracker's and the output frame."""

    frame_id: str = "base"


def test_a_grid_frame_becomes_the_workers_job_in_camera_order():
    frame = GridFrame(episode=2, index=7, stamp_ns=T0 + 5,
                      payloads={"wrist": (None, "wrist-msg"), "head": (None, "head-msg"),
                                JOINTS: (None, [0.5])},
                      stamps_ns={"wrist": T0, "head": T0 + 20_000_000, JOINTS: T0 + 5_000_000}, final=3)
    job = tick_job(frame, ["head", "wrist"], fired=10.25, start=10.0)
    assert job.frames == ["head-msg", "wrist-msg"] and job.state == [0.5]
    assert (job.episode, job.index, job.final) == (2, 7, 3)
    assert conv.stamp_to_ns(job.stamp) == T0 + 5
    assert job.skew == pytest.approx(0.02) and job.sync_s == pytest.approx(0.25)
    # Outside an input callback there is no callback time; a frame whose messages are gone is skipped.
    assert tick_job(frame, ["head", "wrist"], fired=10.25, start=None).sync_s == 0.0
    gone = GridFrame(episode=2, index=1, stamp_ns=T0, payloads=None, stamps_ns={"head": T0, JOINTS: T0})
    assert tick_job(gone, ["head"], fired=1.0, start=None) is None


def pipeline(worker: Worker, counts: dict) -> TickPipeline:
    grid = FrameGrid(["head", JOINTS], 10.0, 1.0, max_wait_s=3600.0, clock_jump_s=0.1, event_delay_s=0.5)
    settings = Settings()
    return TickPipeline(grid=grid, worker=worker, cameras=["head"], image_specs=[None], bins=None,
                        meta=meta(), reward=RewardConfig(), log=Log(), settings=lambda: settings,
                        engine=lambda: None, active=lambda: True, outputs=lambda: None, counts=counts,
                        windows={}, reject=lambda cam, exc: None, note_shape=lambda cam, shape, size: None)


def test_frames_are_latest_wins_and_episode_changes_keep_their_order():
    seen: list = []  # (frame index, serial of the tracker's running episode when the worker took the frame)
    errors: list = []

    def take(job):
        running = ticks.tracker.episode
        seen.append((job.index, running.serial if running is not None else None))

    worker = Worker(take, errors.append)  # started below: until then every tick waits
    counts = {"dropped_busy": 0}
    ticks = pipeline(worker, counts)
    for k in range(4):
        for stream, payload in (("head", f"frame{k}"), (JOINTS, [0.1 * k])):
            ticks.apply(lambda grid, s=stream, k=k, p=payload: grid.add(s, T0 + k * PERIOD_NS, (None, p)))
    # Each frame replaced the one before it (the episode start went ahead of frame 0).
    assert counts["dropped_busy"] == 3
    # The episode ends (no outcome) behind frame 3, which was observed before the restart.
    ticks.apply(lambda grid: grid.restart("reset"))
    worker.start()
    try:
        worker.submit(lambda: None).result(timeout=30)
        assert seen == [(3, 1)] and not errors
        assert ticks.tracker.episode is None and ticks.tracker.episodes == 1
        assert ticks.task() == "pick"
    finally:
        worker.stop()
