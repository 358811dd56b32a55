# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's executor hands a callback to its thread pool once, even while every pool thread is busy.

Real rclpy entities over DDS, in one process with a private context.
"""

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import Int32  # noqa: E402

from ove_ros.ros.executor import NodeExecutor, track_submissions  # noqa: E402

WAIT = 60.0


def _busy_pool_run(executor_type):
    """One pool thread, held by a callback while a second message waits: (pool, callbacks run)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("executor_probe", context=context)
    executor = executor_type(num_threads=1, context=context)
    pool = track_submissions(executor)  # counts what the stock executor submits too
    release, holding, probed = threading.Event(), threading.Event(), threading.Event()
    runs = []

    def hold(_msg):
        runs.append("hold")
        holding.set()
        release.wait(WAIT)

    def probe(_msg):
        runs.append("probe")
        probed.set()

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(Int32, "hold", hold, qos, callback_group=MutuallyExclusiveCallbackGroup())
    node.create_subscription(Int32, "probe", probe, qos, callback_group=MutuallyExclusiveCallbackGroup())
    hold_pub = node.create_publisher(Int32, "hold", qos)
    probe_pub = node.create_publisher(Int32, "probe", qos)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + WAIT
        while not holding.is_set() and time.monotonic() < deadline:
            hold_pub.publish(Int32(data=1))
            holding.wait(0.2)
        assert holding.is_set(), "the hold callback never ran: no DDS delivery within the process"
        probe_pub.publish(Int32(data=2))
        # The probe's task now waits in the pool behind the held thread for a while.
        waited_from = pool.submitted
        deadline = time.monotonic() + WAIT
        while pool.submitted == waited_from and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        submitted_while_held = pool.submitted - waited_from
        release.set()
        assert probed.wait(WAIT), "the probe callback never ran after the pool thread was free"
        return submitted_while_held, runs
    finally:
        release.set()
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.try_shutdown(context=context)
        spinner.join(WAIT)


def test_a_callback_waiting_for_a_busy_pool_is_submitted_once():
    submitted, runs = _busy_pool_run(NodeExecutor)
    assert submitted == 1, f"the waiting probe was handed to the pool {submitted} times while it waited"
    assert runs.count("probe") == 1


def test_the_stock_executor_hands_a_waiting_callback_out_again_and_again():
    """Why NodeExecutor exists; when this fails, the installed rclpy has fixed it and NodeExecutor can go."""
    submitted, _ = _busy_pool_run(MultiThreadedExecutor)
    assert submitted > 10, f"stock MultiThreadedExecutor submitted the waiting probe {submitted} times"
