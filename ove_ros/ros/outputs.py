# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the node publishes, on which topic with which QoS, and the views for people (plot scalar, rviz
marker, image overlay), which are built only while someone listens. Message contents: ``publishers``."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, Float64
from visualization_msgs.msg import Marker

from ove_ros.msg import Advantage, ValueEstimate
from ove_ros.overlay import draw_value_overlay
from ove_ros.ros import conversions as conv
from ove_ros.ros.publishers import marker_msg
from ove_ros.values import BinSupport


class Outputs:
    """The node's publishers, created at configure and destroyed at cleanup."""

    def __init__(self, node, n_step: int):
        self._node = node
        reliable = QoSProfile(depth=10)
        self.value = node.create_publisher(ValueEstimate, "~/value", reliable)
        # END flushes up to n_step records at once.
        self.advantage = node.create_publisher(Advantage, "~/advantage",
                                               QoSProfile(depth=max(10, n_step + 1)))
        self.value_scalar = node.create_publisher(Float32, "~/value_scalar", reliable)
        self.latency = node.create_publisher(Float64, "~/latency", reliable)
        self.overlay = node.create_publisher(Image, "~/overlay", QoSProfile(depth=2))
        self.marker = node.create_publisher(Marker, "~/marker", reliable)
        self.diagnostics = node.create_publisher(DiagnosticArray, "/diagnostics", reliable)

    def destroy(self) -> None:
        for pub in (self.value, self.advantage, self.value_scalar, self.latency, self.overlay, self.marker,
                    self.diagnostics):
            self._node.destroy_publisher(pub)

    def views(self, stamp: Time, frame_id: str, value: float, std: float, task: str, bins: BinSupport,
              overlay: bool, image: np.ndarray, image_frame_id: str, history: Iterable[float],
              last_positive: bool | None) -> None:
        """The tick's value for people: ``image`` (RGB) is the overlay camera's frame, ``history`` the
        episode's values for the sparkline, ``last_positive`` the label of its newest advantage."""
        if self.value_scalar.get_subscription_count():
            self.value_scalar.publish(Float32(data=value))
        if self.marker.get_subscription_count():
            self.marker.publish(marker_msg(stamp, frame_id, value, std, task, bins))
        if overlay and self.overlay.get_subscription_count():
            drawn = draw_value_overlay(image, value, history, last_positive, task[:40], bins.v_min,
                                       bins.v_max)
            self.overlay.publish(conv.rgb_to_image(drawn, stamp, image_frame_id))
