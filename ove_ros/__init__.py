# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ove_ros: a learned distributional value function for live ROS 2 robots.

Everything in this package except ``ove_ros.ros`` imports without rclpy or a GPU.
"""

__version__ = "0.1.0"
