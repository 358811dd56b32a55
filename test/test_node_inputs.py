# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's input decisions, without a ROS graph: QoS from the parameters, one callback group per input,
camera transport choice, stamp checks and the watchdog's hint for a silent topic."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("ove_ros.msg")  # the ROS layer must be importable (built interfaces)

from builtin_interfaces.msg import Time  # noqa: E402
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup  # noqa: E402
from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy  # noqa: E402

from ove_ros.ros import inputs  # noqa: E402
from ove_ros.ros.conversions import ConversionError  # noqa: E402


def qos_settings(**kw):
    base = dict(reliability="reliable", depth=5, durability="volatile")
    base.update(kw)
    return SimpleNamespace(**base)


def test_input_qos_follows_the_parameters():
    q = inputs.input_qos(qos_settings())
    assert (q.reliability, q.depth, q.history, q.durability) == (
        ReliabilityPolicy.RELIABLE, 5, HistoryPolicy.KEEP_LAST, DurabilityPolicy.VOLATILE)
    q = inputs.input_qos(qos_settings(reliability="best_effort", durability="transient_local", depth=2))
    assert (q.reliability, q.depth, q.durability) == (
        ReliabilityPolicy.BEST_EFFORT, 2, DurabilityPolicy.TRANSIENT_LOCAL)
    # Episode events keep at least 10 (a START and END must not be lost), with the inputs' durability.
    e = inputs.event_qos(qos_settings(depth=2, durability="transient_local"))
    assert (e.depth, e.durability) == (10, DurabilityPolicy.TRANSIENT_LOCAL)
    assert inputs.event_qos(qos_settings(depth=30)).depth == 30


def test_every_input_gets_its_own_mutually_exclusive_group():
    a, b = inputs.own_group(), inputs.own_group()
    assert isinstance(a, MutuallyExclusiveCallbackGroup) and a is not b


@pytest.mark.parametrize("configured, topic, types, expected", [
    ("raw", "cam/image", [], "raw"),
    ("compressed", "cam/image", ["sensor_msgs/msg/Image"], "compressed"),  # configured wins
    ("auto", "cam/image", ["sensor_msgs/msg/CompressedImage"], "compressed"),
    ("auto", "cam/image", ["std_msgs/msg/String", "sensor_msgs/msg/Image"], "raw"),
    ("auto", "cam/image/compressed/", [], "compressed"),  # by name while no publisher exists
    ("auto", "cam/image", [], None),  # unknown yet: the watchdog retries
])
def test_camera_transport(configured, topic, types, expected):
    assert inputs.camera_transport(configured, topic, types) == expected


def test_unstamped_messages_are_rejected_with_the_reason():
    inputs.check_stamp(Time(sec=0, nanosec=1))
    with pytest.raises(ConversionError, match="header.stamp is 0"):
        inputs.check_stamp(Time())
    assert inputs.reject_kind(ConversionError("header.stamp is 0: stamp it")) == "header"
    assert inputs.reject_kind(ValueError("image size 3x4 does not match")) == "image size"


def test_the_watchdog_hint_names_the_likely_cause():
    def never() -> int:
        raise AssertionError("the graph is asked only when the other causes do not apply")

    assert "no publisher yet" in inputs.timeout_hint(True, 0, never, "reliable", 5)
    assert "it delivered 12 messages before" in inputs.timeout_hint(False, 12, never, "reliable", 5)
    assert "no publisher: is the driver running" in inputs.timeout_hint(False, 0, lambda: 0, "reliable", 5)
    hint = inputs.timeout_hint(False, 0, lambda: 2, "best_effort", 3)
    assert "publishers exist but nothing arrives" in hint and "best_effort, depth 3" in hint
