# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Simulated robot for the main job: MetaWorld episodes, their ROS 2 publisher and recorder, the demo driver.

``ove_ros.sim.episodes`` and ``ove_ros.sim.metrics`` are pure (no rclpy); ``robot`` and ``recorder`` are the
ROS 2 processes; ``demo`` runs the whole pipeline end to end.
"""
