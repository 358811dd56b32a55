# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training side of ove_ros: rosbag2 -> LeRobot conversion, value training, bundles, offline advantages."""
