# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Live ticks land on the dataset's frame grid by the converter's own resampling rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ove_ros.frame_grid import NS, EpisodeEnd, EpisodeStart, FrameGrid, GridFrame, tolerance_ns
from ove_ros.training.bag_reader import plan_ticks

FAST = settings(max_examples=60, deadline=None)
T0 = 1_700_000_000 * NS


def _stream(rng, rate, duration_s, jitter, drop):
    n = int(duration_s * rate)
    t = T0 + (np.arange(n) / rate * NS).astype(np.int64) + rng.integers(0, max(1, int(jitter * NS)), n)
    t = np.unique(t)
    return t[rng.random(t.size) >= drop]


def _feed(grid, streams):
    """Messages in stamp order across streams (as they would arrive), payload = (stream, stamp)."""
    merged = sorted((int(s), name) for name, arr in streams.items() for s in arr)
    items = []
    for stamp, name in merged:
        items += grid.add(name, stamp, (name, stamp))
    return items


@FAST
@given(
    seed=st.integers(0, 2**31),
    fps=st.sampled_from([5, 10, 15, 30]),
    cam_rate=st.sampled_from([10.0, 15.0, 29.97, 30.0, 60.0]),
    drop=st.floats(0.0, 0.3),
    tolerance_periods=st.sampled_from([0.5, 1.0, 1.5]),
)
def test_kept_ticks_and_picks_equal_the_converters(seed, fps, cam_rate, drop, tolerance_periods):
    rng = np.random.default_rng(seed)
    streams = {
        "cam0": _stream(rng, cam_rate, 4.0, 0.003, drop),
        "cam1": _stream(rng, cam_rate, 4.0, 0.003, drop),
        "joints": _stream(rng, 200.0, 4.0, 0.001, 0.0),
    }
    if any(a.size < 2 for a in streams.values()):
        return
    grid = FrameGrid(list(streams), fps, tolerance_periods, max_wait_s=100.0)
    items = _feed(grid, streams)
    assert isinstance(items[0], EpisodeStart)
    t0 = max(int(a[0]) for a in streams.values())
    t_end = min(int(a[-1]) for a in streams.values())
    ticks, keep, picks, _ = plan_ticks(t0, t_end, fps, tolerance_ns(tolerance_periods, fps), streams)
    frames = [i for i in items if isinstance(i, GridFrame)]
    decided = [f for f in frames if f.stamp_ns < t_end]
    expected = [k for k in np.flatnonzero(keep) if ticks[k] < t_end]
    assert [f.stamp_ns for f in decided] == [int(ticks[k]) for k in expected]
    assert [f.index for f in decided] == list(range(len(decided)))
    for f, k in zip(decided, expected, strict=True):
        for name, arr in streams.items():
            assert f.stamps_ns[name] == int(arr[picks[name][k]])
            assert f.payloads[name] == (name, int(arr[picks[name][k]]))


def test_events_bound_episodes_and_outside_frames_have_no_index():
    grid = FrameGrid(["a", "b"], fps=10, tolerance_periods=1.0, max_wait_s=100.0)
    items = grid.start(T0 + NS // 2, task="pick")
    for k in range(40):  # 4 s of both streams at 10 Hz
        stamp = T0 + k * NS // 10
        items += grid.add("a", stamp, k)
        items += grid.add("b", stamp + 1000, k)
        if k == 19:
            items += grid.end(T0 + 2 * NS, success=True)
    starts = [i for i in items if isinstance(i, EpisodeStart)]
    ends = [i for i in items if isinstance(i, EpisodeEnd)]
    frames = [i for i in items if isinstance(i, GridFrame)]
    assert [s.stamp_ns for s in starts] == [T0 + NS // 2] and ends[0].success is True
    inside = [f for f in frames if f.index is not None]
    # Ticks at 0.5 s .. 2.0 s: 16 frames, indices 0..15; later ticks belong to no episode.
    assert [f.index for f in inside] == list(range(16)) and ends[0].frames == 16
    assert all(f.stamp_ns > T0 + 2 * NS for f in frames if f.index is None)
    assert items.index(ends[0]) > items.index(inside[-1])


def test_a_start_without_an_end_truncates_the_open_episode():
    grid = FrameGrid(["a"], fps=10, tolerance_periods=1.0, max_wait_s=100.0)
    items = []
    for k in range(30):
        items += grid.add("a", T0 + k * NS // 10, k)
    items += grid.start(T0 + 2 * NS)
    ends = [i for i in items if isinstance(i, EpisodeEnd)]
    assert len(ends) == 1 and ends[0].success is None and "START" in ends[0].reason


def test_a_late_start_replaces_the_ticks_from_history():
    grid = FrameGrid(["a"], fps=10, tolerance_periods=1.0, max_wait_s=100.0)
    for k in range(30):
        grid.add("a", T0 + k * NS // 10, k)
    items = grid.start(T0 + 1 * NS)  # arrives after ticks up to 2.9 s were decided
    frames = [i for i in items if isinstance(i, GridFrame)]
    assert frames[0].index == 0 and frames[0].stamp_ns == T0 + NS and grid.stats.late_starts == 1
    assert [f.index for f in frames] == list(range(len(frames))) and frames[-1].stamp_ns == T0 + 29 * NS // 10
    # Messages older than the payload history are no longer held: those frames count but cannot be valued.
    assert frames[-1].payloads == {"a": 29} and frames[0].payloads is None


def test_missing_stream_ticks_are_dropped_like_the_converter_and_counted():
    grid = FrameGrid(["cam", "joints"], fps=10, tolerance_periods=1.0, max_wait_s=0.5)
    items = []
    for k in range(50):
        stamp = T0 + k * NS // 10
        items += grid.add("joints", stamp, k)
        if not 10 <= k < 20:  # the camera is silent for 1 s
            items += grid.add("cam", stamp, k)
    frames = [i for i in items if isinstance(i, GridFrame)]
    assert grid.stats.dropped_missing >= 9 and grid.stats.forced >= 1
    assert [f.index for f in frames] == list(range(len(frames)))  # a dropped tick is no frame


def test_clock_jump_and_out_of_order_messages():
    grid = FrameGrid(["a"], fps=10, tolerance_periods=1.0, clock_jump_s=1.0)
    for k in range(20):
        grid.add("a", T0 + k * NS // 10, k)
    assert grid.add("a", T0 + 18 * NS // 10, "old") == [] and grid.stats.out_of_order == 1
    items = grid.add("a", T0, "rewound")
    assert isinstance(items[0], EpisodeEnd) and items[0].success is None and grid.stats.clock_jumps == 1
    assert isinstance(items[1], EpisodeStart)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="fps"):
        FrameGrid(["a"], fps=0, tolerance_periods=1.0)
    with pytest.raises(ValueError, match="unique"):
        FrameGrid(["a", "a"], fps=10, tolerance_periods=1.0)


def test_an_end_at_the_last_messages_closes_without_later_input():
    """The robot stops publishing at the END: ticks at the last stamps are decided, and settle() closes an
    END whose last ticks no input has passed."""
    grid = FrameGrid(["a", "b"], fps=10, tolerance_periods=1.0, max_wait_s=100.0)
    items = grid.start(T0)
    for k in range(11):
        items += grid.add("a", T0 + k * NS // 10, k)
        items += grid.add("b", T0 + k * NS // 10, k)
    items += grid.end(T0 + NS, success=True)  # stamp of the last messages: every tick is decided
    ends = [i for i in items if isinstance(i, EpisodeEnd)]
    assert len(ends) == 1 and ends[0].frames == 11
    items = grid.start(T0 + 2 * NS)
    items += grid.add("a", T0 + 2 * NS, 0)
    items += grid.add("b", T0 + 2 * NS - NS // 20, 0)
    items += grid.end(T0 + 2 * NS + NS // 2, success=False)  # later than the last messages
    assert grid.end_pending and not any(isinstance(i, EpisodeEnd) and i.success is False for i in items)
    settled = grid.settle()
    ends = [i for i in settled if isinstance(i, EpisodeEnd)]
    assert len(ends) == 1 and ends[0].success is False and not grid.end_pending
    frames = [i for i in items + settled if isinstance(i, GridFrame) and i.stamp_ns >= T0 + 2 * NS]
    assert [f.index for f in frames] == [0] and ends[0].frames == 1  # 2.1 s on: no message within 0.1 s


def _run_with_late_end(event_delay_s: float, end_after_k: int):
    """Both streams at 10 Hz from T0; START at T0, an END stamped 2.0 s that arrives after message k."""
    grid = FrameGrid(["a", "b"], fps=10, tolerance_periods=1.0, max_wait_s=100.0, event_delay_s=event_delay_s)
    items = grid.start(T0)
    for k in range(40):
        stamp = T0 + k * NS // 10
        items += grid.add("a", stamp, k)
        items += grid.add("b", stamp, k)
        if k == end_after_k:
            items += grid.end(T0 + 2 * NS, success=True)
    return grid, items


def test_a_late_end_takes_back_frames_that_are_not_final_yet():
    # The END (2.0 s) arrives with the inputs at 2.3 s: frames 2.1-2.3 s were handed out, none final yet.
    grid, items = _run_with_late_end(event_delay_s=0.5, end_after_k=23)
    frames = [i for i in items if isinstance(i, GridFrame) and i.index is not None]
    end = next(i for i in items if isinstance(i, EpisodeEnd))
    assert end.frames == 21 and grid.stats.retracted == 3 and grid.stats.late_ends == 0
    assert max(f.index for f in frames) == 23  # handed out, then taken back
    # Nothing at or past the END's stamp was final when handed out: no advantage can have used them.
    assert all(f.final <= 21 for f in frames)
    finals = [f.final for f in frames]
    assert finals == sorted(finals) and all(f.final <= f.index for f in frames)


def test_an_end_later_than_the_event_delay_leaves_final_frames_in_the_episode():
    # The END (2.0 s) arrives with the inputs at 3.5 s, more than event_delay (0.5 s) after 2.1-3.0 s.
    grid, items = _run_with_late_end(event_delay_s=0.5, end_after_k=35)
    end = next(i for i in items if isinstance(i, EpisodeEnd))
    frames = [i for i in items if isinstance(i, GridFrame) and i.index is not None]
    final_at_end = max(f.final for f in frames)
    assert grid.stats.late_ends == 1 and end.frames == final_at_end > 21
    assert grid.stats.retracted == 36 - end.frames  # the frames that were not final yet


def test_frames_become_final_event_delay_after_their_tick():
    grid = FrameGrid(["a"], fps=10, tolerance_periods=1.0, max_wait_s=100.0, event_delay_s=0.5)
    items = grid.start(T0)
    for k in range(20):
        items += grid.add("a", T0 + k * NS // 10, k)
    frames = [i for i in items if isinstance(i, GridFrame)]
    # Frame j (tick j/10 s) is final once an input stamped >= j/10 + 0.5 s arrived: when frame k is handed
    # out (input k/10 s), frames up to k - 5 are final, minus the one whose input arrives right after.
    for f in frames:
        assert f.final in (max(0, f.index - 5), max(0, f.index - 4))
    with pytest.raises(ValueError, match="event_delay"):
        FrameGrid(["a"], fps=10, tolerance_periods=1.0, event_delay_s=-1.0)
