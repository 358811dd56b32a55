# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's input callbacks on a real rclpy node, without spinning: where an episode event goes on the
sensors' clock, what an inactive node does with a message, and a rejected message's count and reason."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("ove_ros.msg")  # the ROS layer must be importable (built interfaces)

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from test_node_tick_pipeline import pipeline  # noqa: E402

from ove_ros.ros import conversions as conv  # noqa: E402
from ove_ros.ros.callback_gate import CallbackGate  # noqa: E402
from ove_ros.ros.diagnostics import Throttle, Window  # noqa: E402
from ove_ros.ros.input_callbacks import EVENT_MAX_LAG_NS, InputCallbacks, event_stamp  # noqa: E402
from ove_ros.ros.inputs import JOINTS  # noqa: E402
from ove_ros.ros.worker import Worker  # noqa: E402


def test_an_event_without_a_usable_stamp_happens_at_the_newest_input():
    assert event_stamp(5_000, 6_000) == (5_000, False)
    assert event_stamp(0, 6_000) == (6_000, True)  # unstamped
    newest = 100 * EVENT_MAX_LAG_NS
    assert event_stamp(newest - EVENT_MAX_LAG_NS, newest) == (newest - EVENT_MAX_LAG_NS, False)
    assert event_stamp(newest - EVENT_MAX_LAG_NS - 1, newest) == (newest, True)  # a wrong clock
    assert event_stamp(0, None) == (None, True)  # before any input: cannot be placed


@pytest.fixture
def node():
    context = Context()
    rclpy.init(context=context)
    node = Node("input_callbacks_test", context=context)
    yield node
    node.destroy_node()
    rclpy.shutdown(context=context)


def joints(sec: int, positions=(0.5,)) -> JointState:
    msg = JointState(name=["j0"], position=list(positions))
    msg.header.stamp.sec = sec
    return msg


def test_messages_are_counted_and_offered_only_while_active(node):
    worker = Worker(lambda job: None, lambda exc: None)
    counts = {"dropped_busy": 0, "clock_resets": 0}
    ticks = pipeline(worker, counts)
    settings = SimpleNamespace(camera_transports=("raw",), camera_topics=("head/image",),
                               joint_states_topic="joint_states", max_age=0.0, task="pick")
    active = [False]
    gate = CallbackGate()
    gate.open()
    callbacks = InputCallbacks(node, settings=lambda: settings, cameras=["head"],
                               joint_index=conv.JointIndex(["j0"]), ticks=ticks, counts=counts,
                               callback_window=Window(), throttle=Throttle(5.0), active=lambda: active[0],
                               event_task=lambda task: None, gate=gate)
    callbacks._on_joints(joints(3))
    st = callbacks.stats[JOINTS]
    assert (st.received, st.rejected) == (1, 0) and st.last_wall is not None
    assert ticks.grid.newest_ns is None  # inactive: counted, not offered
    active[0] = True
    callbacks._on_joints(joints(3))
    assert ticks.grid.newest_ns == 3_000_000_000
    # An unstamped message is dropped, counted, and its reason kept for the diagnostics.
    callbacks._on_joints(joints(0))
    assert (st.received, st.rejected, st.problems) == (3, 1, 1)
    assert "header.stamp is 0" in st.last_error
    # The diagnostics see each problem once, with the resolved topic.
    snap = {s.topic: s for s in callbacks.snapshots(st.last_wall + 2.0)}
    assert snap["joint_states"].new_problems == 1 and snap["joint_states"].resolved == "/joint_states"
    assert snap["joint_states"].silent_s == pytest.approx(2.0) and snap["head/image"].received == 0
    assert [s.new_problems for s in callbacks.snapshots(st.last_wall)] == [0, 0]
    # A clock jump on an input restarts the episode and is counted.
    callbacks._on_joints(joints(1))
    assert counts["clock_resets"] == 1
    # After cleanup has closed the gate, a message the executor took before is not even counted.
    assert gate.close(timeout=30.0)
    received = st.received
    callbacks._on_joints(joints(5))
    assert st.received == received
