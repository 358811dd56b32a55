# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Start the value_estimator lifecycle node with config/value_estimator.yaml.

    ros2 launch ove_ros value_estimator.launch.py checkpoint:=/path/to/bundle \
        camera_topics:=cam_high/image_raw,wrist/image_raw/compressed
    ros2 launch ove_ros value_estimator.launch.py --show-args

Launch arguments left empty keep the value of the parameters file. With autostart:=false the node waits in
the unconfigured state for a lifecycle manager (e.g. nav2_lifecycle_manager or `ros2 lifecycle set`).

The launch ends with the node: when the node fails (a configuration error at start-up exits with code 1),
`ros2 launch` logs why and exits with 1 too, so scripts, CI and systemd units see the failure
(exit_with_node:=false when a larger bringup includes this file and should keep running). Log colours only
appear when the launch writes to a terminal.
"""

import sys

from launch.actions import DeclareLaunchArgument, EmitEvent, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.launch_description import LaunchDescription
from launch.substitutions import PathJoinSubstitution
from launch_ros.actions import LifecycleNode
from launch_ros.substitutions import FindPackageShare


def _is_true(text: str) -> bool:
    return text.strip().lower() in ("true", "1", "yes", "on")


def _colour_output() -> bool:
    """emulate_tty (coloured logs) only on a terminal: piped into a file, journald or a CI log, the colour
    codes would end up in the text."""
    return sys.stdout.isatty()


def _exit_failure(returncode) -> str:
    """Why the launch fails when the node exited with ``returncode`` ('' for a clean exit)."""
    if returncode == 0:
        return ""
    return (f"value_estimator exited with code {returncode} (the reason is in its log above); "
            "stopping the launch")


def _on_node_exit(event, context):
    """Stop the launch with the node. A clean exit emits Shutdown; a failure raises, because a Shutdown
    event alone ends `ros2 launch` with 0: launch logs the raised reason, shuts down with it and exits 1."""
    if context.is_shutdown:
        return None  # already stopping (Ctrl-C): the node's exit is part of that
    failure = _exit_failure(event.returncode)
    if failure:
        raise RuntimeError(failure)
    return [EmitEvent(event=Shutdown(reason="value_estimator exited"))]


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
    node = LifecycleNode(
        package="ove_ros",
        executable="value_estimator",
        name="value_estimator",
        namespace=cfg["namespace"],
        output="screen",
        emulate_tty=_colour_output(),
        parameters=[cfg["params_file"], overrides],
        arguments=["--ros-args", "--log-level", cfg["log_level"]],
    )
    if not _is_true(cfg["exit_with_node"]):
        return [node]
    return [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_on_node_exit))]


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
        DeclareLaunchArgument("exit_with_node", default_value="true", choices=["true", "false"],
                              description="End the launch when the node exits, with exit code 1 when it "
                                          "failed; false keeps an including launch running."),
        OpaqueFunction(function=_value_estimator),
    ])
