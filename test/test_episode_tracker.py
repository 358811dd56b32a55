# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's worker-side episode bookkeeping, without a ROS graph: frames reach the advantage stream only
once final, an END takes back what lies after it, stale ENDs are ignored, counters add up."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

pytest.importorskip("ove_ros.msg")  # the ROS layer must be importable (built interfaces)

from ove_ros.bundle import BundleMetadata  # noqa: E402
from ove_ros.frame_grid import EpisodeEnd, EpisodeStart  # noqa: E402
from ove_ros.ros.episode_tracker import EpisodeTracker  # noqa: E402
from ove_ros.streaming import StreamingAdvantage  # noqa: E402
from ove_ros.values import RewardConfig  # noqa: E402

PERIOD_NS = 100_000_000  # 10 fps


@dataclass
class EpisodeSettings:
    """The settings the tracker reads (a subset of params.Settings)."""

    task: str = "pick"
    n_step: int = 3
    fps: float = 10.0
    advantage_threshold: float = 0.0
    bootstrap_tolerance: int = 0
    overlay_history: int = 100


class Log:
    def __init__(self):
        self.lines: list[tuple[str, str]] = []

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def warning(self, text: str) -> None:
        self.lines.append(("warning", text))


def meta(**kw) -> BundleMetadata:
    base = dict(camera_names=["head"], joint_names=["j0"], state_low=[0.0], state_high=[1.0],
                task_normalizers={"pick": 40.0}, advantage_thresholds={"pick": 0.01}, n_step=3)
    base.update(kw)
    return BundleMetadata(**base)


def tracker(reward: RewardConfig | None = None, **meta_kw):
    published = []
    log = Log()
    t = EpisodeTracker(meta(**meta_kw), reward or RewardConfig(),
                       lambda ep, rec, stamp_ns: published.append((ep.serial, rec, stamp_ns)), log)
    return t, published, log


def values(n: int) -> list[float]:
    return [-0.9 + 0.05 * i for i in range(n)]


def reference(n_frames: int, success: bool | None, last_frame: int):
    """What StreamingAdvantage gives when every frame up to ``n_frames`` is pushed at once."""
    m, s = meta(), EpisodeSettings()
    stream = StreamingAdvantage(s.n_step, m.scale_for(s.task), RewardConfig(), m.advantage_thresholds[s.task])
    out = []
    for i, v in enumerate(values(n_frames)):
        out += stream.push(i, i * PERIOD_NS * 1e-9, v)
    return out + stream.end_episode(success, last_frame=last_frame)


def test_frames_reach_the_advantage_stream_only_once_final():
    t, published, _ = tracker()
    s = EpisodeSettings()
    t.start(EpisodeStart(episode=1, stamp_ns=0, task=None, reason="test"), s)
    ep = t.current(1)
    vals = values(8)
    for i in range(6):  # no frame final yet: a late END could still take any of them back
        records = t.value(ep, i, i * PERIOD_NS, vals[i], final=0)
        assert records == []
        t.emit(ep, records)
    assert published == [] and len(ep.unconfirmed) == 6
    records = t.value(ep, 6, 6 * PERIOD_NS, vals[6], final=7)  # all seven final at once
    t.emit(ep, records)
    ref = reference(7, None, 6)
    complete = [r for r in ref if r.n_step == s.n_step and not r.truncated]
    assert [r.tick for _, r, _ in published] == [r.tick for r in complete] == [0, 1, 2, 3]
    assert [r.advantage for _, r, _ in published] == pytest.approx([r.advantage for r in complete])
    # Each record goes out with its own frame's stamp, and the stamp is then forgotten.
    assert [stamp for _, _, stamp in published] == [r.tick * PERIOD_NS for _, r, _ in published]
    assert all(tick not in ep.stamps for tick in range(4)) and t.advantages == 4


def test_end_takes_back_frames_after_it_and_flushes_the_rest():
    t, published, log = tracker()
    s = EpisodeSettings()
    t.start(EpisodeStart(episode=2, stamp_ns=0, task="pick", reason="START event"), s)
    ep = t.current(2)
    for i, v in enumerate(values(6)):
        t.emit(ep, t.value(ep, i, i * PERIOD_NS, v, final=3))
    before = len(published)
    flushed = t.end(EpisodeEnd(episode=2, frames=4, success=False, reason="END event"))
    ref = reference(4, False, 3)  # frames 4 and 5 lie after the END: not the episode's
    assert [r.tick for _, r, _ in published] == [r.tick for r in ref] == [0, 1, 2, 3]
    assert [r.advantage for _, r, _ in published] == pytest.approx([r.advantage for r in ref])
    assert published[-1][1].terminal
    assert flushed == t.last_flush == len(published) - before
    assert t.stream_stats().unpublished_tail == 2
    assert t.episode is None and t.episodes == 1 and t.advantages == 4
    assert ("info", "episode ended (END event, outcome failure): 4 frames, 6 valued; "
            f"{flushed} advantages flushed") in log.lines


def test_a_stale_end_leaves_the_running_episode_alone():
    t, published, _ = tracker()
    t.start(EpisodeStart(episode=3, stamp_ns=0, task=None, reason="test"), EpisodeSettings())
    ep = t.current(3)
    t.emit(ep, t.value(ep, 0, 0, -0.5, final=1))
    assert t.end(EpisodeEnd(episode=2, frames=10, success=True, reason="old")) == 0
    assert t.episode is ep and t.current(2) is None and published == []


def test_frames_between_episodes_are_counted_not_streamed():
    t, published, _ = tracker()
    assert t.value(None, None, 0, -0.5, final=0) == []
    t.start(EpisodeStart(episode=1, stamp_ns=0, task=None, reason="test"), EpisodeSettings())
    assert t.value(t.current(1), None, 0, -0.5, final=0) == []
    assert t.outside_frames == 2 and t.current(1).frames == 0 and published == []
    assert t.task("fallback") == "pick"
    t.end(EpisodeEnd(episode=1, frames=0, success=None, reason="reset"))
    assert t.task("fallback") == "fallback"


def test_precomputed_rewards_bundle_values_frames_without_advantages():
    t, published, _ = tracker(RewardConfig(precomputed_rewards=True))
    t.start(EpisodeStart(episode=1, stamp_ns=0, task=None, reason="test"), EpisodeSettings())
    ep = t.current(1)
    assert ep.stream is None
    for i, v in enumerate(values(5)):
        t.emit(ep, t.value(ep, i, i * PERIOD_NS, v, final=i + 1))
    assert list(ep.history) == pytest.approx(values(5))
    # A new sparkline length still applies (there is no threshold to set).
    t.apply_settings(EpisodeSettings(advantage_threshold=0.3, overlay_history=2))
    assert list(ep.history) == pytest.approx(values(5)[-2:])
    assert t.end(EpisodeEnd(episode=1, frames=5, success=True, reason="END event")) == 0
    assert published == [] and t.stream_stats().published == 0


def test_stream_stats_add_the_running_episode_to_the_ended_ones():
    t, _, _ = tracker()
    s = EpisodeSettings()
    t.start(EpisodeStart(episode=1, stamp_ns=0, task=None, reason="test"), s)
    ep = t.current(1)
    for i, v in enumerate(values(6)):
        t.emit(ep, t.value(ep, i, i * PERIOD_NS, v, final=i + 1))
    t.end(EpisodeEnd(episode=1, frames=6, success=None, reason="reset"))
    ended = t.stream_stats()
    assert ended.truncated > 0 and ended.published == t.advantages
    t.start(EpisodeStart(episode=2, stamp_ns=0, task=None, reason="test"), s)
    ep = t.current(2)
    for i, v in enumerate(values(6)):
        t.emit(ep, t.value(ep, i, i * PERIOD_NS, v, final=i + 1))
    running = t.stream_stats()
    assert running.published == ended.published + ep.stream.stats.published > ended.published
    assert t.episodes == 2


def test_settings_reach_the_running_episode_and_unknown_tasks_warn():
    t, _, log = tracker()
    s = EpisodeSettings(overlay_history=3)
    t.start(EpisodeStart(episode=1, stamp_ns=0, task="wipe", reason="START event"), s)
    ep = t.current(1)
    assert ep.task == "wipe" and ep.stream.threshold == 0.0  # not in the bundle: the parameter's
    assert any(level == "warning" and "'wipe' is not in the bundle" in text for level, text in log.lines)
    t.apply_settings(EpisodeSettings(advantage_threshold=0.2, overlay_history=5))
    assert ep.stream.threshold == 0.2 and ep.history.maxlen == 5
