# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""pip-installable form of ove_ros (no ROS needed for the core and the training module).

On a robot the package is built with colcon (CMakeLists.txt generates the messages); on a GPU training machine
`pip install .[train]` is enough. Metadata lives in setup.cfg.
"""

from glob import glob

from setuptools import setup

setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/ove_ros"]),
        ("share/ove_ros", ["package.xml"]),
        ("share/ove_ros/launch", glob("launch/*.py")),
        ("share/ove_ros/config", glob("config/*.yaml")),
        ("share/ove_ros/msg", glob("msg/*.msg")),
    ],
)
