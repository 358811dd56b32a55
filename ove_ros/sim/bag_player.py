# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Play a rosbag2 recording onto ROS 2 topics: the part of `ros2 bag play` the parity checks need.

    python -m ove_ros.sim.bag_player BAG [rate=1.0] [topics=[/a,/b]] [done_file=F]   (--help: every key)

Messages go out as the recorded CDR bytes, in receive order, with their original header stamps, reliable
(so a fast replay loses nothing in transit) and transient_local with the whole recording kept: a subscriber
can match the player's publishers some time after the player matched it (discovery is not symmetric), and a
volatile one misses what was sent meanwhile; a transient_local subscriber (the node's
``input_qos.durability``) receives those messages on matching. ``rate`` scales the recorded timing;
``rate=0`` publishes as fast as possible. It waits until every played topic has a subscriber, waits for
every message to be acknowledged before each episode event and at the end, then writes "done" to
``done_file``, so callers wait on events, not on time.
"""

from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.duration import Duration
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader

from ove_ros import typed_cli
from ove_ros.bag_types import EPISODE_EVENT
from ove_ros.typed_cli import REQUIRED
from ove_ros.typed_config import setting

USAGE = "usage: python -m ove_ros.sim.bag_player <bag> [key=value ...]"


@dataclass
class PlayerConfig:
    """What to play and how fast."""

    bag: str = setting(REQUIRED, "Required (also the first bare argument). The rosbag2 folder or file.")
    rate: float = setting(1.0, "Timing factor; 0 = as fast as possible.", ge=0)
    topics: list[str] | None = setting(None, "Play only these topics (default: all).")
    done_file: str | None = setting(None, "Written when every message was delivered.")
    wait_timeout: float = setting(300.0, "Seconds to wait for subscribers and acknowledgements.", gt=0)


def _unacknowledged(topic: str, timeout: float) -> int:
    print(f"{topic}: not every message was acknowledged within {timeout} s", file=sys.stderr)
    return 1


def _message_class(msgtype: str):
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def main(argv: list[str] | None = None) -> int:
    args = typed_cli.parse_or_exit(PlayerConfig, argv, USAGE, __doc__.split("\n\n")[0], positional=["bag"],
                                   what="bag player options", example="rate=2.0")
    if not Path(args.bag).exists():
        typed_cli.fail(f"bag {args.bag} does not exist; give a rosbag2 folder or file")
    rclpy.init()
    node = rclpy.create_node("bag_player")
    qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
    with Reader(Path(args.bag)) as reader:
        played = [c for c in reader.connections if not args.topics or c.topic in args.topics]
        pubs = {c.topic: node.create_publisher(_message_class(c.msgtype), c.topic, qos) for c in played}
        deadline = time.monotonic() + args.wait_timeout
        while any(p.get_subscription_count() == 0 for p in pubs.values()):
            if time.monotonic() > deadline:
                missing = [t for t, p in pubs.items() if p.get_subscription_count() == 0]
                print(f"no subscriber on {missing}", file=sys.stderr)
                return 1
            rclpy.spin_once(node, timeout_sec=0.05)
        first, started = None, time.monotonic()
        for conn, received, raw in reader.messages(connections=played):
            if args.rate > 0:
                first = received if first is None else first
                delay = (received - first) * 1e-9 / args.rate - (time.monotonic() - started)
                if delay > 0:
                    time.sleep(delay)
            if conn.msgtype == EPISODE_EVENT:
                # An episode event refers to the sensor data recorded before it; DDS orders messages only
                # within a topic, and a burst's lost datagrams are repaired on the next heartbeat (seconds),
                # so the event goes out once everything before it has been acknowledged.
                for topic, pub in pubs.items():
                    if not pub.wait_for_all_acked(Duration(seconds=args.wait_timeout)):
                        return _unacknowledged(topic, args.wait_timeout)
            pubs[conn.topic].publish(bytes(raw))
    for topic, pub in pubs.items():  # every message delivered before the process ends
        if not pub.wait_for_all_acked(Duration(seconds=args.wait_timeout)):
            return _unacknowledged(topic, args.wait_timeout)
    if args.done_file:
        Path(args.done_file).write_text("done\n")
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
