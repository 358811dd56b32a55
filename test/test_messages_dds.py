# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The generated messages cross a real DDS link between two processes with every field intact."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from conftest import ros_env

rclpy = pytest.importorskip("rclpy", reason="rclpy is not importable: run scripts/setup.sh, source setup.env")

# Every field set to a value that differs from its default, per message type.
SAMPLES = {
    "ValueEstimate": {
        "header": {"stamp": {"sec": 1234, "nanosec": 567000000}, "frame_id": "base_link"},
        "task": "pick up the bottle",
        "tick": 42,
        "value": -0.25,
        "std": 0.125,
        "entropy": 1.5,
        "v_min": -1.0,
        "v_max": 0.0,
        "num_bins": 5,
        "probabilities": [0.0, 0.25, 0.5, 0.25, 0.0],
        "inference_latency": 0.0078125,
        "input_skew": 0.015625,
        "in_episode": True,
        "episode": 3,
    },
    "Advantage": {
        "header": {"stamp": {"sec": 99, "nanosec": 1000}, "frame_id": "world"},
        "task": "open the drawer",
        "tick": 7,
        "n_step": 50,
        "advantage": 0.0625,
        "value": -0.5,
        "value_next": -0.375,
        "reward_sum": -0.0625,
        "terminal": True,
        "truncated": True,
        "episode": 3,
        "positive": True,
        "threshold": -0.03125,
    },
    "EpisodeEvent": {
        "header": {"stamp": {"sec": 5, "nanosec": 6}, "frame_id": "sim"},
        "event": 1,
        "outcome": 2,
        "task": "push the puck",
        "episode_id": "seed-17",
    },
}

PUBLISHER = textwrap.dedent(
    """
    import json, sys, time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    import ove_ros.msg as m

    def set_message_fields(msg, fields):
        for key, value in fields.items():
            if isinstance(value, dict):
                set_message_fields(getattr(msg, key), value)
            else:
                setattr(msg, key, value)

    name, fields = sys.argv[1], json.loads(sys.argv[2])
    msg = getattr(m, name)()
    set_message_fields(msg, fields)
    rclpy.init()
    node = rclpy.create_node("roundtrip_publisher")
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(type(msg), "roundtrip", qos)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        pub.publish(msg)
        rclpy.spin_once(node, timeout_sec=0.1)
    """
)

SUBSCRIBER = textwrap.dedent(
    """
    import json, sys
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    import ove_ros.msg as m

    def message_to_ordereddict(msg):
        out = {}
        for key in msg.get_fields_and_field_types():
            value = getattr(msg, key)
            out[key] = message_to_ordereddict(value) if hasattr(value, "get_fields_and_field_types") else (
                [float(v) for v in value] if hasattr(value, "tolist") or isinstance(value, list) else value)
        return out

    rclpy.init()
    node = rclpy.create_node("roundtrip_subscriber")
    got = []
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(getattr(m, sys.argv[1]), "roundtrip", got.append, qos)
    while not got:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(message_to_ordereddict(got[0])))
    """
)


def _approx_equal(expected, actual) -> bool:
    if isinstance(expected, dict):
        return set(expected) == set(actual) and all(_approx_equal(expected[k], actual[k]) for k in expected)
    if isinstance(expected, list):
        if len(expected) != len(actual):
            return False
        return all(_approx_equal(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, float):
        return abs(expected - actual) <= 1e-6 * max(1.0, abs(expected))
    return expected == actual


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_message_round_trip_over_dds(name):
    fields = SAMPLES[name]
    env = ros_env()
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER, name, json.dumps(fields)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sub = subprocess.run([sys.executable, "-c", SUBSCRIBER, name], env=env, capture_output=True,
                             text=True, timeout=60)
    finally:
        pub.kill()
        pub.communicate()
    assert sub.returncode == 0, sub.stderr
    received = json.loads(sub.stdout.strip().splitlines()[-1])
    assert _approx_equal(fields, received), f"sent {fields}\nreceived {received}"


def test_every_field_of_every_message_is_covered():
    """The samples above must set every field: a new .msg field without a test fails here."""
    import ove_ros.msg as m

    for name, fields in SAMPLES.items():
        declared = set(getattr(m, name).get_fields_and_field_types())
        assert declared == set(fields), f"{name}: untested fields {declared - set(fields)}"


def test_episode_event_constants():
    from ove_ros.msg import EpisodeEvent

    assert (EpisodeEvent.START, EpisodeEvent.END) == (0, 1)
    outcomes = (EpisodeEvent.OUTCOME_UNKNOWN, EpisodeEvent.OUTCOME_SUCCESS, EpisodeEvent.OUTCOME_FAILURE)
    assert outcomes == (0, 1, 2)
