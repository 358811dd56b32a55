# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the latest-wins synchronizer."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ove_ros.sync import COUNTERS, LatestWinsSynchronizer, SyncConfig

FAST = settings(max_examples=60, deadline=None)
STREAMS = ["joint_states", "cam_a", "cam_b"]


def feed(sync, messages):
    """Feed (arrival, stream, stamp, payload) in arrival order; return ticks and events."""
    ticks, events = [], []
    for arrival, stream, stamp, payload in sorted(messages, key=lambda m: m[0]):
        res = sync.add(stream, stamp, payload, now=arrival)
        if res is not None:
            assert res.tick is not None or res.events
            events += res.events
            if res.tick is not None:
                ticks.append(res.tick)
    return ticks, events


def robot_messages(seconds=4.0, seed=0, joint_hz=200.0, cam_hz=30.0, latency=0.02):
    """Joint states at 200 Hz (fast, low latency) and two jittered 30 Hz cameras (slower to arrive)."""
    rng = np.random.default_rng(seed)
    msgs = []
    for k in range(int(seconds * joint_hz)):
        s = k / joint_hz
        msgs.append((s + 0.001 + 0.002 * rng.random(), "joint_states", s, ("joint_states", k)))
    for cam, phase in (("cam_a", 0.0), ("cam_b", 0.011)):
        for k in range(int(seconds * cam_hz)):
            s = k / cam_hz + phase + rng.normal(0.0, 0.002)
            msgs.append((s + latency + 0.01 * rng.random(), cam, s, (cam, k)))
    return msgs


def check_accounting(sync):
    st_ = sync.stats()
    for name in sync.cfg.streams:
        c = st_["streams"][name]
        settled = sum(c[k] for k in COUNTERS if k not in ("received", "out_of_order"))
        assert c["received"] == settled + st_["held_unused"][name], (name, c)
    assert st_["stored"] <= len(sync.cfg.streams)


# ------------------------------------------------------------------------------------------------ basics


def test_fires_when_all_streams_are_within_slop():
    sync = LatestWinsSynchronizer(SyncConfig(["a", "b"], slop=0.05))
    assert sync.add("a", 1.00, "a0") is None
    res = sync.add("b", 1.03, "b0")
    assert res.tick.stamp == 1.03 and res.tick.payloads == {"a": "a0", "b": "b0"}
    assert res.tick.skew == pytest.approx(0.03) and res.tick.index == 0 and not res.reset
    assert sync.add("b", 1.03, "b0-again") is None  # same newest stamp: not a new combination
    res = sync.add("a", 1.04, "a1")
    assert res.tick.payloads == {"a": "a1", "b": "b0-again"} and res.tick.index == 1
    check_accounting(sync)


def test_does_not_fire_beyond_slop_and_drops_what_cannot_match():
    sync = LatestWinsSynchronizer(SyncConfig(["a", "b"], slop=0.05))
    sync.add("a", 1.00, None)
    assert sync.add("b", 1.20, None) is None
    # a@1.00 can never match anything again: it was dropped and counted.
    assert sync.stats()["streams"]["a"]["dropped_unmatched"] == 1 and sync.stored == 1
    assert sync.add("a", 1.22, None).tick.stamp == 1.22
    check_accounting(sync)


def test_stale_messages_are_dropped():
    sync = LatestWinsSynchronizer(SyncConfig(["a", "b"], slop=0.05, max_age=0.5))
    assert sync.add("a", 1.0, None, now=2.0) is None
    assert sync.stats()["streams"]["a"]["dropped_stale"] == 1 and sync.stored == 0
    sync.add("a", 2.0, None, now=2.01)
    assert sync.expire(now=3.0) == 1 and sync.stored == 0
    assert sync.add("b", 2.9, None, now=2.95) is None  # a@2.0 is gone, so no tick
    check_accounting(sync)


def test_max_age_zero_disables_staleness():
    sync = LatestWinsSynchronizer(SyncConfig(["a"], max_age=0.0))
    assert sync.add("a", 1.0, None, now=1000.0).tick is not None


# ------------------------------------------------------------------------------------------- clock jumps


def test_backwards_stamp_resets_and_reports():
    sync = LatestWinsSynchronizer(SyncConfig(["a", "b"], fresh="all"))
    sync.add("a", 10.0, None)
    assert sync.add("b", 10.0, None).tick.index == 0
    assert sync.add("a", 10.02, None) is None  # b@10.0 is used, so a@10.02 waits, unused
    res = sync.add("a", 0.0, None)  # bag loop / sim reset
    assert res.reset and res.tick is None
    (event,) = res.events
    assert event.kind == "reset" and event.stream == "a" and "back in time" in event.reason
    stats = sync.stats()
    assert stats["resets"] == 1 and stats["streams"]["a"]["out_of_order"] == 1
    assert stats["streams"]["a"]["dropped_reset"] == 1 and "back in time" in stats["last_reset_reason"]
    # The new timeline works and its tick index restarts.
    res = sync.add("b", 0.01, None)
    assert res.tick is not None and res.tick.index == 0 and not res.reset
    check_accounting(sync)


def test_forward_jump_resets():
    sync = LatestWinsSynchronizer(SyncConfig(["a", "b"], jump_threshold=5.0))
    sync.add("a", 1.0, None)
    sync.add("b", 1.0, None)
    assert sync.add("a", 5.9, None) is None  # a gap below the threshold is not a jump
    res = sync.add("b", 12.0, None)
    assert res.reset and "jumped forward" in res.events[0].reason
    assert sync.add("a", 12.01, None).tick.stamp == 12.01


# --------------------------------------------------------------------------------------------- throttle


def test_max_rate_limits_ticks_by_stamp():
    sync = LatestWinsSynchronizer(SyncConfig(["a"], max_rate=30.0, max_age=0.0))
    ticks, _ = feed(sync, [(k / 200, "a", k / 200, k) for k in range(2000)])  # 10 s at 200 Hz
    assert 290 <= len(ticks) <= 302
    gaps = np.diff([t.stamp for t in ticks])
    assert gaps.min() >= 0.5 / 30 - 1e-9
    assert sync.stats()["throttled"] == 2000 - len(ticks)


def test_max_rate_keeps_a_jittered_input_at_that_rate():
    # A 30 Hz input throttled at 30 Hz must not lose ticks to stamp jitter.
    rng = np.random.default_rng(1)
    stamps = np.arange(600) / 30 + rng.normal(0, 0.003, 600)
    sync = LatestWinsSynchronizer(SyncConfig(["a"], max_rate=30.0, max_age=0.0))
    ticks, _ = feed(sync, [(s, "a", s, None) for s in np.sort(stamps)])
    assert len(ticks) >= 0.97 * 600


# ------------------------------------------------------------------------------------ realistic streams


@pytest.mark.parametrize("fresh", ["any", "all"])
def test_heavy_high_rate_stream_still_produces_ticks(fresh):
    sync = LatestWinsSynchronizer(SyncConfig(STREAMS, slop=0.05, max_age=0.5, fresh=fresh))
    ticks, events = feed(sync, robot_messages(seconds=4.0))
    assert not events
    assert len(ticks) >= 0.95 * 4 * 30  # at least the camera rate
    assert all(t.skew <= 0.05 for t in ticks)
    assert all(set(t.payloads) == set(STREAMS) for t in ticks)
    if fresh == "all":
        # Each message is used at most once: ticks come at the slowest stream's rate.
        for name in STREAMS:
            used = [t.payloads[name] for t in ticks]
            assert len(set(used)) == len(used)
        assert len(ticks) <= 4 * 30
    check_accounting(sync)


def test_too_much_latency_is_visible_in_the_counters():
    # Cameras arriving later than slop behind the joint states can never match a latest-wins set.
    sync = LatestWinsSynchronizer(SyncConfig(STREAMS, slop=0.02, max_age=0.5))
    ticks, _ = feed(sync, robot_messages(seconds=1.0, latency=0.1))
    assert ticks == []
    assert sync.stats()["streams"]["cam_a"]["dropped_unmatched"] >= 25
    check_accounting(sync)


# ------------------------------------------------------------------------------------------ properties

message = st.tuples(st.sampled_from(STREAMS), st.floats(0.0, 0.08), st.floats(0.0, 0.2))


@FAST
@given(
    st.lists(message, min_size=1, max_size=120),
    st.floats(0.0, 0.1),
    st.sampled_from(["any", "all"]),
    st.floats(0.0, 60.0),
)
def test_invariants_on_random_streams(msgs, slop, fresh, max_rate):
    """Forward-only stamps: no resets, ticks within slop, strictly newer, memory bounded, all accounted."""
    cfg = SyncConfig(STREAMS, slop=slop, max_age=0.15, fresh=fresh, max_rate=max_rate)
    sync = LatestWinsSynchronizer(cfg)
    clock = {name: 0.0 for name in STREAMS}
    now, last = 0.0, -math.inf
    for i, (name, step, delay) in enumerate(msgs):
        clock[name] += step
        now = max(now, clock[name] + delay)
        res = sync.add(name, clock[name], (name, i), now=now)
        assert sync.stored <= len(STREAMS)
        if res is None:
            continue
        assert not res.events
        tick = res.tick
        assert tick.skew <= slop and tick.stamp > last
        assert tick.stamp == max(tick.stamps.values())
        assert all(tick.stamps[s] >= now - cfg.max_age for s in STREAMS)
        last = tick.stamp
    check_accounting(sync)
    if fresh == "all":  # every message of every tick is fresh
        assert sync.stats()["totals"]["used"] == len(STREAMS) * sync.stats()["ticks"]


@FAST
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.floats(-1.0, 1.0)), min_size=1, max_size=80))
def test_time_reversals_always_reset(msgs):
    sync = LatestWinsSynchronizer(SyncConfig(["a", "b"], slop=0.05, max_age=0.0, jump_threshold=math.inf))
    clock = {"a": None, "b": None}
    stamp = 100.0
    for name, step in msgs:
        stamp += step
        res = sync.add(name, stamp, None)
        went_back = clock[name] is not None and stamp < clock[name]
        assert (res is not None and res.reset) == went_back
        clock = {"a": None, "b": None} if went_back else clock
        clock[name] = stamp
    check_accounting(sync)


# ------------------------------------------------------------------------------------------- bad input


def test_bad_config_and_input():
    with pytest.raises(ValueError, match="non-empty list"):
        SyncConfig([])
    with pytest.raises(ValueError, match="duplicates"):
        SyncConfig(["a", "a"])
    with pytest.raises(ValueError, match="slop"):
        SyncConfig(["a"], slop=-1.0)
    with pytest.raises(ValueError, match="jump_threshold"):
        SyncConfig(["a"], slop=1.0, jump_threshold=0.5)
    with pytest.raises(ValueError, match="fresh"):
        SyncConfig(["a"], fresh="some")
    sync = LatestWinsSynchronizer(SyncConfig(["a"]))
    with pytest.raises(KeyError, match="'c'.*configured streams"):
        sync.add("c", 0.0, None)
    with pytest.raises(ValueError, match="non-finite stamp"):
        sync.add("a", float("nan"), None)
