# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``bag_recorder``: record ROS 2 topics into rosbag2 (mcap or sqlite3) with ``rosbags``, one bag per episode.

    ros2 run ove_ros bag_recorder --ros-args -p output:=rec -p episodes:=6 \\
        -p topics:="[camera/topview/image_raw, joint_states, episode_events]"

``ros2 bag`` is not always installed; this records what the bag converter and the offline checks need.
Messages are stored as received (serialized CDR, no decode); the log time is the header stamp when the type
has a header (simulated time stays consistent across topics), else the receive time.

Splitting (``split_by_episode``): an EpisodeEvent START opens ``<output>/<NNN>_<episode_id>`` and END closes
it. Topics are delivered independently, so membership goes by stamp, not arrival: a message stamped before
the START of a bag not yet opened waits in a small buffer, and a bag stays open ``close_grace`` seconds after
its END for late messages stamped up to the END. ``recording.json`` in ``output`` lists the bags.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer

from ove_ros import bag_types

STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
PENDING_MAX = 10_000

PARAMS = (
    ("output", "recording", "Output: the bag directory, or with split_by_episode the folder of bags."),
    ("storage", "mcap", "rosbag2 storage: mcap or sqlite3."),
    ("topics", ["camera/topview/image_raw", "camera/gripperPOV/image_raw", "joint_states", "episode_events"],
     "Topics to record (relative names resolve in the node's namespace)."),
    ("types", [""], "Type per topic (e.g. sensor_msgs/msg/Image); [''] discovers them from the ROS graph."),
    ("split_by_episode", True, "One bag per START..END episode; false writes one bag."),
    ("events_topic", "episode_events", "ove_ros/EpisodeEvent topic (also recorded when listed in topics)."),
    ("episodes", 0, "Stop after this many END events; 0 records until shutdown."),
    ("close_grace", 1.0, "Seconds a finished episode's bag stays open for late messages."),
    ("discovery_timeout", 30.0, "Seconds to wait for the topics to appear when types are discovered."),
    ("qos_depth", 1000, "Subscription queue depth (reliable)."),
)


@dataclass
class BagInfo:
    """One written bag, as listed in recording.json."""

    path: str
    episode_id: str = ""
    task: str = ""
    outcome: str = ""
    messages: dict[str, int] = field(default_factory=dict)


class _Bag:
    """An open rosbags writer with one connection per recorded topic."""

    def __init__(self, path: Path, storage: str, topics: dict[str, str], typestore) -> None:
        self.writer = Writer(path, version=9, storage_plugin=STORAGES[storage])
        self.writer.open()
        self.connections = {
            topic: self.writer.add_connection(topic, msgtype, typestore=typestore)
            for topic, msgtype in topics.items()
        }
        self.info = BagInfo(path=str(path), messages=dict.fromkeys(topics, 0))
        self.end_stamp = 0  # set at END
        self.close_at = 0.0

    def write(self, topic: str, stamp: int, raw: bytes) -> None:
        self.writer.write(self.connections[topic], stamp, raw)
        self.info.messages[topic] += 1

    def close(self) -> BagInfo:
        self.writer.close()
        return self.info


def _message_class(msgtype: str):
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class BagRecorder(Node):
    """Raw subscriptions on the configured topics, written into rosbag2 files."""

    def __init__(self) -> None:
        super().__init__("bag_recorder")
        for name, default, description in PARAMS:
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.p = {name: self.get_parameter(name).value for name, _, _ in PARAMS}
        if self.p["storage"] not in STORAGES:
            raise ValueError(f"storage must be one of {list(STORAGES)}, got {self.p['storage']!r}")
        self.output = Path(self.p["output"])
        self.typestore = bag_types.make_typestore()
        self.topics = self._resolve_types()  # fully qualified topic -> type
        self.headers = {t: bag_types.has_header(self.typestore, m) for t, m in self.topics.items()}
        self.events_topic = self.resolve_topic_name(self.p["events_topic"])
        self.headers.setdefault(self.events_topic, True)
        self.split = bool(self.p["split_by_episode"])
        self.current: _Bag | None = None
        self.closing: _Bag | None = None
        self.pending: list[tuple[str, int, bytes]] = []
        self.bags: list[BagInfo] = []
        self.ends = 0
        self.dropped = 0
        self.done = False
        if not self.split:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.current = _Bag(self.output, self.p["storage"], self.topics, self.typestore)
        else:
            self.output.mkdir(parents=True, exist_ok=True)
        qos = QoSProfile(depth=int(self.p["qos_depth"]), reliability=ReliabilityPolicy.RELIABLE)
        subscribed = dict(self.topics)
        if self.events_topic not in subscribed:
            subscribed[self.events_topic] = bag_types.EPISODE_EVENT
        self.subs = [
            self.create_subscription(
                _message_class(msgtype), topic, lambda raw, t=topic: self._on_message(t, raw), qos, raw=True
            )
            for topic, msgtype in subscribed.items()
        ]
        self.create_timer(0.1, self._on_timer)
        self.get_logger().info(f"recording {sorted(self.topics)} into {self.output} ({self.p['storage']})")

    def _resolve_types(self) -> dict[str, str]:
        names = [self.resolve_topic_name(t) for t in self.p["topics"]]
        types = [t for t in self.p["types"] if t]
        if types:
            if len(types) != len(names):
                raise ValueError(f"types has {len(types)} entries for {len(names)} topics")
            return dict(zip(names, types, strict=True))
        deadline = time.monotonic() + float(self.p["discovery_timeout"])
        while True:
            graph = {name: kinds[0] for name, kinds in self.get_topic_names_and_types() if kinds}
            missing = [n for n in names if n not in graph]
            if not missing:
                return {n: graph[n] for n in names}
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not seen within {self.p['discovery_timeout']} s: {missing}")
            time.sleep(0.1)

    # ------------------------------------------------------------------------------------------ messages

    def _stamp(self, topic: str, raw: bytes) -> int:
        if self.headers[topic]:
            stamp = bag_types.peek_header_stamp(raw)
            if stamp > 0:
                return stamp
        return self.get_clock().now().nanoseconds

    def _on_message(self, topic: str, raw: bytes) -> None:
        if self.done:
            return
        stamp = self._stamp(topic, raw)
        recorded = topic in self.topics
        if topic == self.events_topic:
            event = self.typestore.deserialize_cdr(raw, bag_types.EPISODE_EVENT)
            if event.event == bag_types.EVENT_START:
                self._start(event, stamp)
            if recorded:
                self._route(topic, stamp, raw)
            if event.event == bag_types.EVENT_END:
                self._end(event, stamp)
            return
        if recorded:
            self._route(topic, stamp, raw)

    def _route(self, topic: str, stamp: int, raw: bytes) -> None:
        if not self.split:
            self.current.write(topic, stamp, raw)
        elif self.closing is not None and stamp <= self.closing.end_stamp:
            self.closing.write(topic, stamp, raw)
        elif self.current is not None:
            self.current.write(topic, stamp, raw)
        elif len(self.pending) < PENDING_MAX:
            self.pending.append((topic, stamp, raw))
        else:
            self.dropped += 1

    def _start(self, event, stamp: int) -> None:
        if not self.split:
            return
        self._close_closing()
        if self.current is not None:
            self.get_logger().warning(f"START without END: closing {self.current.info.path}")
            self.bags.append(self.current.close())
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", event.episode_id) or "episode"
        path = self.output / f"{len(self.bags):03d}_{name}"
        self.current = _Bag(path, self.p["storage"], self.topics, self.typestore)
        self.current.info.episode_id, self.current.info.task = event.episode_id, event.task
        kept = [m for m in self.pending if m[1] >= stamp]
        self.dropped += len(self.pending) - len(kept)
        self.pending.clear()
        for topic, msg_stamp, raw in kept:
            self.current.write(topic, msg_stamp, raw)

    def _end(self, event, stamp: int) -> None:
        self.ends += 1
        outcome = {bag_types.OUTCOME_SUCCESS: "success", bag_types.OUTCOME_FAILURE: "failure"}
        bag = self.current
        if bag is not None:
            bag.info.outcome = outcome.get(event.outcome, "unknown")
        if self.split and bag is not None:
            self._close_closing()
            bag.end_stamp, bag.close_at = stamp, time.monotonic() + float(self.p["close_grace"])
            self.closing, self.current = bag, None

    def _close_closing(self) -> None:
        if self.closing is not None:
            self.bags.append(self.closing.close())
            self.get_logger().info(f"wrote {self.bags[-1].path}")
            self.closing = None

    def _on_timer(self) -> None:
        if self.closing is not None and time.monotonic() >= self.closing.close_at:
            self._close_closing()
        episodes = int(self.p["episodes"])
        if episodes > 0 and self.ends >= episodes and self.closing is None and not self.done:
            self.done = True

    def finish(self) -> list[BagInfo]:
        """Close every open bag and write recording.json; returns the bags."""
        self._close_closing()
        if self.current is not None:
            self.bags.append(self.current.close())
            self.current = None
        folder = self.output if self.split else self.output.parent
        summary = {"bags": [asdict(b) for b in self.bags], "dropped": self.dropped,
                   "storage": self.p["storage"]}
        name = "recording.json" if self.split else f"{self.output.name}.recording.json"
        (folder / name).write_text(json.dumps(summary, indent=2))
        if self.dropped:
            self.get_logger().warning(f"{self.dropped} messages fell outside every episode (not written)")
        return self.bags


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    code = 0
    executor = SingleThreadedExecutor()
    try:
        node = BagRecorder()
        executor.add_node(node)
        while rclpy.ok() and not node.done:
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, TimeoutError) as exc:
        print(f"bag_recorder: {exc}", file=sys.stderr)
        code = 1
    finally:
        if node is not None:
            node.finish()
            node.destroy_node()
        executor.shutdown()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
