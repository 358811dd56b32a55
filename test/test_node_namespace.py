# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node in a namespace with a remapped topic, as launch/value_estimator.launch.py starts it.

The launch file runs the node in ``namespace:=...`` with relative topic names, so every input and output
moves into the namespace unless remapped. launch is not installable here, so this starts the same
executable with the same arguments the launch file gives it (``-r __ns:=/launched``), plus a remapping of
the joint states out of the namespace, and a fake robot publishing where such a robot would.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run scripts/setup.sh and source setup.env")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_node_process import START_TIMEOUT, WAIT, make_bundle, start, stop, wait_until  # noqa: E402

from ove_ros.msg import EpisodeEvent, ValueEstimate  # noqa: E402

from conftest import REPO_ROOT, installed_executable  # noqa: E402

NAMESPACE = "/launched"
JOINTS_TOPIC = "/robot/joint_states"  # remapped out of the namespace, on both sides
REMAP = ["-r", f"__ns:={NAMESPACE}", "-r", f"joint_states:={JOINTS_TOPIC}"]
NODE = f"{NAMESPACE}/value_estimator"


@pytest.fixture(scope="module")
def processes(tmp_path_factory):
    """A 2-camera bundle, the fake robot and the node, both in the namespace."""
    logs = tmp_path_factory.mktemp("namespace")
    bundle = make_bundle(logs / "tiny2", cameras=2)
    robot = start([sys.executable, str(REPO_ROOT / "test" / "fake_robot.py"), "--cameras", "2",
                   "--ros-args", *REMAP], logs / "robot.log")
    node = None
    try:
        node = start([sys.executable, str(installed_executable("value_estimator")), "--ros-args",
                      "--params-file", str(REPO_ROOT / "config" / "value_estimator.yaml"), *REMAP,
                      "-p", f"checkpoint:={bundle}", "-p", "camera_topics:=[cam0/image_raw, cam1/image_raw]",
                      "-p", "task:=pick", "-p", "num_threads:=1", "-p", "diagnostics_period:=0.5",
                      "-p", "sync.max_age:=0.0"], logs / "node.log")
        yield {"robot": robot, "node": node, "logs": logs}
    finally:
        if node is not None:
            stop(node)
        stop(robot)


@pytest.fixture
def probe():
    """A node in this process, in the root namespace, that reads the namespaced outputs."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("namespace_probe", context=context)
    out = {"node": node, "values": [], "diagnostics": []}
    node.create_subscription(ValueEstimate, f"{NODE}/value", out["values"].append, QoSProfile(depth=200))
    node.create_subscription(DiagnosticArray, "/diagnostics", out["diagnostics"].append, 50)
    out["events"] = node.create_publisher(EpisodeEvent, f"{NAMESPACE}/episode_events", 10)
    out["reset"] = node.create_client(Trigger, f"{NODE}/reset")
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield out
    finally:
        executor.shutdown(timeout_sec=5)
        node.destroy_node()
        rclpy.shutdown(context=context)
        thread.join(5)


def input_status(diagnostics: list[DiagnosticArray], topic: str) -> dict[str, str] | None:
    """The newest counters of the input ``topic`` (resolved name), or None before the first."""
    for array in reversed(diagnostics):
        for st in array.status:
            if st.name.endswith(f"input {topic}"):
                return {kv.key: kv.value for kv in st.values}
    return None


def test_namespaced_node_reads_namespaced_and_remapped_inputs(processes, probe):
    procs = (processes["node"], processes["robot"])
    wait_until(lambda: len(probe["values"]) >= 3, START_TIMEOUT, f"values on {NODE}/value", procs)
    assert probe["values"][0].task == "pick"
    # Inputs: relative camera topics resolved in the namespace, the joint states where the remapping sends
    # them; each one delivered and took part in ticks.
    for topic in (f"{NAMESPACE}/cam0/image_raw", f"{NAMESPACE}/cam1/image_raw", JOINTS_TOPIC):
        def counted(topic=topic):
            counts = input_status(probe["diagnostics"], topic)
            return counts is not None and int(counts["received"]) > 0 and int(counts["synced"]) > 0

        wait_until(counted, WAIT, f"diagnostics counting {topic}", procs)
    log = Path(processes["logs"] / "node.log").read_text()
    assert f"<- {NAMESPACE}/cam0/image_raw" in log, log[-2000:]


def test_namespaced_services_and_episode_events(processes, probe):
    procs = (processes["node"], processes["robot"])
    values = probe["values"]
    wait_until(lambda: len(values) >= 3, START_TIMEOUT, f"values on {NODE}/value", procs)
    # ~/reset lives under the namespaced node name.
    wait_until(probe["reset"].service_is_ready, WAIT, f"service {NODE}/reset", procs)
    future = probe["reset"].call_async(Trigger.Request())
    wait_until(future.done, WAIT, "the reset response", procs)
    assert future.result().success
    # episode_events is relative too: a START sent into the namespace starts a new episode (a new episode
    # serial; its first valued frame need not be frame 0 when the model is busy).
    index = len(values)
    wait_until(lambda: len(values) >= index + 3, WAIT, "a few frames", procs)
    index = len(values)
    before = values[index - 1].episode
    wait_until(lambda: probe["events"].get_subscription_count() > 0, WAIT,
               f"the node subscribed to {NAMESPACE}/episode_events", procs)
    probe["events"].publish(EpisodeEvent(event=EpisodeEvent.START, task="pick"))
    wait_until(lambda: any(v.in_episode and v.episode > before for v in values[index:]), WAIT,
               "an episode after the START", procs)
