# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ove_ros: a learned distributional value function for live ROS 2 robots.

Everything in this package except ``ove_ros.ros`` and ``ove_ros.sim`` imports without rclpy or a GPU.
"""

from pkgutil import extend_path

# The generated messages (ove_ros.msg) live in the colcon install space; extending the package path lets a
# source checkout that comes first on sys.path (e.g. the working directory) still find them.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
