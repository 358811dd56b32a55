# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The input watchdog's rules, without ROS: when an input counts as silent, when it delivers again, and when
every input has fallen silent (a pending END then closes with the messages at hand)."""

from __future__ import annotations

from dataclasses import dataclass

from ove_ros.ros import watchdog


@dataclass
class Stats:
    """The two fields the rules read (a subset of diagnostics.InputStats)."""

    last_wall: float | None = None
    timed_out: bool = False


def test_silence_counts_from_activation_until_the_first_message():
    stats = {"head": Stats(), "joint_states": Stats(last_wall=104.5)}
    # Activated at 100: the camera that never delivered is silent 6 s at 106, past a 5 s timeout.
    found = watchdog.check(stats, now=106.0, since=100.0, timeout=5.0)
    assert found == [watchdog.Silence("head", 6.0, True)]
    assert stats["head"].timed_out and not stats["joint_states"].timed_out
    # Before the timeout nothing is reported.
    assert watchdog.check({"head": Stats()}, now=104.0, since=100.0, timeout=5.0) == []


def test_an_input_that_delivers_again_is_reported_once():
    stats = {"head": Stats(last_wall=100.0), "joint_states": Stats(last_wall=100.0)}
    assert [f.stream for f in watchdog.check(stats, 106.0, 90.0, 5.0)] == ["head", "joint_states"]
    stats["joint_states"].last_wall = 106.5
    found = watchdog.check(stats, 107.0, 90.0, 5.0)
    # In input order: the camera still silent, the joint states back.
    assert found == [watchdog.Silence("head", 7.0, True), watchdog.Silence("joint_states", 0.5, False)]
    assert [f.stream for f in watchdog.check(stats, 107.5, 90.0, 5.0)] == ["head"]


def test_rearm_forgets_earlier_messages_and_timeouts():
    stats = [Stats(last_wall=3.0, timed_out=True), Stats()]
    watchdog.rearm(stats)
    assert all(st.last_wall is None and not st.timed_out for st in stats)


def test_all_silent_needs_every_delivering_input_past_the_timeout():
    assert not watchdog.all_silent([Stats(), Stats()], now=1e6, timeout=1.0)  # nothing ever arrived
    assert not watchdog.all_silent([Stats(last_wall=10.0), Stats(last_wall=14.5)], now=15.0, timeout=1.0)
    assert watchdog.all_silent([Stats(last_wall=10.0), Stats(last_wall=13.5)], now=15.0, timeout=1.0)
    # An input that never delivered does not hold the others back.
    assert watchdog.all_silent([Stats(), Stats(last_wall=13.5)], now=15.0, timeout=1.0)
