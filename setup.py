# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""pip-installable form of ove_ros (no ROS needed for the core and the training module).

On a robot the package is built with colcon (CMakeLists.txt generates the messages); on a GPU training machine
`pip install .[train]` is enough. Metadata lives in setup.cfg. The repository's top-level training/ folder is
installed as ove_ros.training, so no top-level `training` module lands in site-packages.
"""

from glob import glob

from setuptools import find_packages, setup

TRAINING = [f"ove_ros.training.{p}" for p in find_packages("training")]

setup(
    packages=find_packages(include=["ove_ros", "ove_ros.*"]) + ["ove_ros.training", *TRAINING],
    package_dir={"ove_ros.training": "training"},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/ove_ros"]),
        ("share/ove_ros", ["package.xml"]),
        ("share/ove_ros/launch", glob("launch/*.py")),
        ("share/ove_ros/config", glob("config/*.yaml")),
        ("share/ove_ros/msg", glob("msg/*.msg")),
    ],
)
