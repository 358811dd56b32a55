# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The rclpy adapters: the only part of ove_ros that imports ROS."""
