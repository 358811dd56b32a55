# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Simulated robot and runtime bag tools for the main job: MetaWorld episodes, their ROS 2 publisher, recorder
and player, value metrics, and the live-node side of the parity checks.

``ove_ros.sim.episodes`` and ``ove_ros.sim.metrics`` are pure (no rclpy); ``robot``, ``recorder`` and
``bag_player`` are the ROS 2 processes. Nothing here imports the training package: the main job that joins the
two is ``ove_ros.main_job``.
"""
