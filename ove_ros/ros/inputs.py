# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""How the node listens: input QoS, callback groups, camera transport choice, message checks, and what the
input watchdog tells the user about a silent topic. Small decisions, kept out of the node's wiring."""

from __future__ import annotations

import re
from collections.abc import Callable

from builtin_interfaces.msg import Time
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ove_ros.ros.conversions import ConversionError

JOINTS = "joint_states"  # frame grid stream name of the joint state
IMAGE_TYPES = {"sensor_msgs/msg/Image": "raw", "sensor_msgs/msg/CompressedImage": "compressed"}


def durability(s) -> DurabilityPolicy:
    """The inputs' durability (``params.Settings.durability``)."""
    if s.durability == "transient_local":
        return DurabilityPolicy.TRANSIENT_LOCAL
    return DurabilityPolicy.VOLATILE


def input_qos(s) -> QoSProfile:
    """QoS of the camera and joint-state subscriptions (``params.Settings``)."""
    reliable = s.reliability == "reliable"
    reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=s.depth, reliability=reliability,
                      durability=durability(s))


def event_qos(s) -> QoSProfile:
    """QoS of the episode event subscription: never shallower than 10, so no START or END is lost."""
    return QoSProfile(depth=max(10, s.depth), durability=durability(s))


def own_group() -> MutuallyExclusiveCallbackGroup:
    """A callback group for one input subscription: its messages are handled one at a time, in order.

    Inputs never share a mutually exclusive group: when two ready subscriptions of one group are handed to
    the multi-threaded executor together, the one that finds the group busy gives up without taking its
    message, and with rmw_fastrtps that subscription is not reported ready again until a new message comes
    (a burst then stalls for good). The frame grid's lock orders the streams among each other."""
    return MutuallyExclusiveCallbackGroup()


def camera_transport(configured: str, topic: str, graph_types: list[str]) -> str | None:
    """"raw" or "compressed" for a camera topic; None while "auto" cannot tell yet (no publisher).

    ``graph_types`` are the message types the ROS graph lists for the topic."""
    if configured != "auto":
        return configured
    found = [IMAGE_TYPES[t] for t in graph_types if t in IMAGE_TYPES]
    if found:
        return found[0]
    if topic.rstrip("/").endswith("compressed"):
        return "compressed"
    return None


def check_stamp(stamp: Time) -> None:
    if stamp.sec == 0 and stamp.nanosec == 0:
        raise ConversionError("header.stamp is 0: the publisher must stamp messages with the sensor time")


def reject_kind(exc: Exception) -> str:
    """The leading words of a rejection: warnings are throttled per kind, so a second problem still shows."""
    return re.match(r"[A-Za-z ]*", str(exc)).group(0).strip()


def timeout_hint(waiting_type: bool, received: int, publishers: Callable[[], int], reliability: str,
                 depth: int) -> str:
    """Why an input may be silent, and what to check, for the watchdog's warning (``publishers`` counts
    the topic's publishers; asked only when it matters)."""
    if waiting_type:
        return ("no publisher yet, so its type (Image or CompressedImage) is unknown; it is "
                "subscribed when one appears (or set camera_transports)")
    if received:
        return (f"it delivered {received} messages before: the publisher stopped or stalls "
                "(driver crashed, device unplugged, process paused?)")
    if publishers() == 0:
        return ("no publisher: is the driver running and the topic name right (remap it or set "
                "camera_topics / joint_states_topic)?")
    return (f"publishers exist but nothing arrives: check their QoS (this node subscribes "
            f"{reliability}, depth {depth}; see input_qos.reliability) and the message type")
