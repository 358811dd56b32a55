# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Start the value_estimator lifecycle node with config/value_estimator.yaml.

    ros2 launch ove_ros value_estimator.launch.py checkpoint:=/path/to/bundle \
        camera_topics:=cam_high/image_raw,wrist/image_raw/compressed
    ros2 launch ove_ros value_estimator.launch.py --show-args

Launch arguments left empty keep the value of the parameters file. With autostart:=false the node waits in
the unconfigured state for a lifecycle manager (e.g. nav2_lifecycle_manager or `ros2 lifecycle set`).
"""

from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.launch_description import LaunchDescription
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare


def _is_true(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def _value_estimator(context, *args, **kwargs):
    cfg = context.launch_configurations
    # Command-line values override the parameters file; empty ones leave it alone.
    overrides = {"use_sim_time": _is_true(cfg["use_sim_time"]), "autostart": _is_true(cfg["autostart"])}
    if cfg["checkpoint"]:
        overrides["checkpoint"] = cfg["checkpoint"]
    if cfg["device"]:
        overrides["device"] = cfg["device"]
    topics = [t.strip() for t in cfg["camera_topics"].split(",") if t.strip()]
    if topics:
        overrides["camera_topics"] = topics
    return [
        LifecycleNode(
            package="ove_ros",
            executable="value_estimator",
            name="value_estimator",
            namespace=cfg["namespace"],
            output="screen",
            emulate_tty=True,
            parameters=[cfg["params_file"], overrides],
            arguments=["--ros-args", "--log-level", cfg["log_level"]],
        )
    ]


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution([FindPackageShare("ove_ros"), "config", "value_estimator.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("checkpoint", default_value="",
                              description="Deploy bundle directory (overrides the parameters file)."),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="Parameters file for the node."),
        DeclareLaunchArgument("camera_topics", default_value="",
                              description="Comma-separated camera topics in the bundle's camera order."),
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node."),
        DeclareLaunchArgument("use_sim_time", default_value="false", choices=["true", "false"],
                              description="Use /clock (simulation or bag replay)."),
        DeclareLaunchArgument("device", default_value="",
                              description="auto, cpu or cuda (overrides the parameters file)."),
        DeclareLaunchArgument("log_level", default_value="info",
                              choices=["debug", "info", "warn", "error", "fatal"],
                              description="Logging level of the node."),
        DeclareLaunchArgument("autostart", default_value="true", choices=["true", "false"],
                              description="Configure + activate at start; false waits for a lifecycle "
                                          "manager."),
        OpaqueFunction(function=_value_estimator),
    ])
