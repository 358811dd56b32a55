# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The held-out bags of the live run read back: simulator frames by exact stamp, and the node's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ove_ros.main_job.stages import StageError
from ove_ros.sim.parity import advantage_fields


@dataclass
class RecordedEpisode:
    """One held-out episode as recorded: frames from the simulator and the node's outputs."""

    bag: str
    episode_id: str
    task: str
    success: bool
    stamps: np.ndarray  # frame stamps (ns), ascending
    images: dict[str, list[np.ndarray]]  # camera -> per-frame RGB
    states: np.ndarray  # [T, joints]
    online: dict[int, dict[str, float]] = field(default_factory=dict)  # frame index -> value message fields
    advantages: list[dict[str, Any]] = field(default_factory=list)  # the node's advantage records
    # Every node output recorded in this bag, with its episode serial and stamp: an episode's END flush can
    # land in the next episode's bag, so outputs are assigned to episodes by serial (assign_node_outputs).
    raw_values: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)
    raw_advantages: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    overlay: list[tuple[int, np.ndarray]] = field(default_factory=list)


def read_episode_bag(path: Path, cameras: Sequence[str], joints: Sequence[str], node: str) -> RecordedEpisode:
    """Decode one held-out bag (frames by exact stamp, node outputs by their sensor stamps)."""
    from rosbags.rosbag2 import Reader

    from ove_ros.training import ros_types

    store = ros_types.make_typestore()
    image_topics = {f"/camera/{c}/image_raw": c for c in cameras}
    images: dict[str, dict[int, np.ndarray]] = {c: {} for c in cameras}
    states: dict[int, np.ndarray] = {}
    start = end = None
    episode = RecordedEpisode(str(path), "", "", False, np.zeros(0, np.int64), {}, np.zeros((0, len(joints))))
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            topic = conn.topic
            if topic in image_topics:
                msg = store.deserialize_cdr(raw, conn.msgtype)
                images[image_topics[topic]][_stamp(msg)] = ros_types.raw_image_to_rgb(msg)
            elif topic == "/joint_states":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                order = [list(msg.name).index(j) for j in joints]
                states[_stamp(msg)] = np.asarray(msg.position, dtype=np.float64)[order]
            elif topic == "/episode_events":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                if msg.event == ros_types.EVENT_START:
                    start, episode.task, episode.episode_id = _stamp(msg), msg.task, msg.episode_id
                else:
                    end, episode.success = _stamp(msg), msg.outcome == ros_types.OUTCOME_SUCCESS
            elif topic == f"/{node}/value":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                if msg.in_episode:
                    episode.raw_values.append((int(msg.episode), _stamp(msg), {
                        "value": float(msg.value), "tick": int(msg.tick), "input_skew": float(msg.input_skew),
                        "latency": float(msg.inference_latency)}))
            elif topic == f"/{node}/advantage":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                episode.raw_advantages.append((int(msg.episode), _stamp(msg), advantage_fields(msg)))
            elif topic == f"/{node}/overlay":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                episode.overlay.append((_stamp(msg), ros_types.raw_image_to_rgb(msg)))
    if start is None or end is None:
        raise StageError(f"{path}: no START/END episode events")
    stamps = sorted(s for s in states if start <= s <= end and all(s in images[c] for c in cameras))
    episode.stamps = np.asarray(stamps, dtype=np.int64)
    episode.images = {c: [images[c][s] for s in stamps] for c in cameras}
    episode.states = np.stack([states[s] for s in stamps]) if stamps else np.zeros((0, len(joints)))
    episode.overlay.sort(key=lambda item: item[0])
    return episode


def assign_node_outputs(episodes: Sequence[RecordedEpisode]) -> None:
    """Give each recorded episode the node's outputs of its episode serial, from whichever bag they landed
    in: the serial is the one of the node's values stamped inside the episode's START..END window."""
    from collections import Counter

    values = [item for ep in episodes for item in ep.raw_values]
    advantages = [item for ep in episodes for item in ep.raw_advantages]
    for ep in episodes:
        if not len(ep.stamps):
            continue
        window = (ep.stamps[0], ep.stamps[-1])
        # The episode the END closed is the one whose terminal records lie in the window; without any, the
        # serial most of the window's values carry.
        closed = Counter(s for s, stamp, a in advantages if a["terminal"] and window[0] <= stamp <= window[1])
        inside = closed or Counter(s for s, stamp, _ in values if window[0] <= stamp <= window[1])
        if not inside:
            continue
        serial = inside.most_common(1)[0][0]
        ep.online = {fields["tick"]: fields for s, _, fields in values if s == serial}
        ep.advantages = [fields for s, _, fields in advantages if s == serial]


def _stamp(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
