# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Write synthetic rosbag2 recordings (mcap or sqlite3) with rosbags, for the converter's tests and benchmark.

Every value is a known function of the message's time or sequence number, so a test can tell which message a
converted frame came from:
- camera ``c``, message ``n`` is a flat image of RGB ``expected_rgb(c, n)`` (``pattern="flat"``), or a
  textured scene with a moving block (``pattern="scene"``, for realistic encoder load);
- joint ``k`` at time ``t`` (seconds since the bag start) has position ``k + t``, velocity ``-k``;
- the action (Float64MultiArray, no header) at time ``t`` is ``[t, -t]``.
Receive times are the stamps plus ``receive_delay_ns``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from ove_ros.training import ros_types

START_NS = 1_700_000_000_000_000_000
NS = 1_000_000_000


@dataclass
class CameraSpec:
    name: str = "front"
    topic: str = "/camera/front/image_raw"
    encoding: str = "rgb8"  # raw encoding, or the compressed format ("jpeg", "png") with compressed=True
    compressed: bool = False
    width: int = 32
    height: int = 24
    rate_hz: float = 30.0
    gaps: tuple[tuple[float, float], ...] = ()  # [from, to) seconds without messages


@dataclass
class EventSpec:
    time_s: float
    event: int  # ros_types.EVENT_START / EVENT_END
    outcome: int = ros_types.OUTCOME_UNKNOWN
    task: str = ""
    episode_id: str = ""


@dataclass
class BagSpec:
    duration_s: float = 1.0
    cameras: list[CameraSpec] = field(default_factory=lambda: [CameraSpec()])
    joint_topic: str = "/joint_states"
    joint_names: tuple[str, ...] = ("j1", "j2", "j3")
    joint_rate_hz: float = 100.0
    action_topic: str | None = "/joint_command"
    action_rate_hz: float = 30.0
    events_topic: str = "/episode_events"
    events: list[EventSpec] = field(default_factory=list)
    receive_delay_ns: int = 2_000_000
    zero_stamp_topics: tuple[str, ...] = ()  # topics whose header stamps are written as 0
    pattern: str = "flat"  # "flat" or "scene"
    start_ns: int = START_NS


def expected_rgb(camera: int, seq: int) -> tuple[int, int, int]:
    """The colour of message ``seq`` of camera number ``camera`` with ``pattern="flat"``."""
    return (seq * 7) % 256, (40 * camera + 20) % 256, 128


def message_times(rate_hz: float, duration_s: float, gaps=()) -> list[float]:
    """Seconds since the bag start of a stream's messages (k / rate within the duration, minus the gaps)."""
    count = int(np.floor(duration_s * rate_hz + 1e-9)) + 1
    times = [k / rate_hz for k in range(count)]
    return [t for t in times if not any(a <= t < b for a, b in gaps)]


def _layout(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """RGB uint8 pixels -> the array layout of a raw ``encoding``."""
    if encoding == "rgb8":
        return rgb
    if encoding == "bgr8":
        return rgb[:, :, ::-1]
    if encoding in ("rgba8", "bgra8"):
        alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
        return np.concatenate([rgb if encoding == "rgba8" else rgb[:, :, ::-1], alpha], axis=2)
    if encoding in ("mono8", "8UC1"):
        return rgb[:, :, 0]
    if encoding in ("mono16", "16UC1"):
        return rgb[:, :, 0].astype(np.uint16) * 257
    return rgb  # unknown encodings are written as RGB bytes (to test the converter's error)


class _Scene:
    """A textured background with a block moving across it (some work for a video encoder)."""

    def __init__(self, camera: int, width: int, height: int):
        rng = np.random.default_rng(camera)
        yy, xx = np.mgrid[0:height, 0:width]
        base = np.stack(
            [xx * 200 // max(width, 1), yy * 200 // max(height, 1), (xx + yy) % 64 + 64 * camera], -1
        )
        texture = rng.integers(0, 16, (height, width, 1))
        self.base = np.clip(base + texture, 0, 255).astype(np.uint8)
        self.width, self.height = width, height

    def frame(self, seq: int) -> np.ndarray:
        img = self.base.copy()
        size = max(self.height // 4, 2)
        x = (seq * 5) % max(self.width - size, 1)
        img[self.height // 3 : self.height // 3 + size, x : x + size] = (230, 40, 40)
        return img


def write_bag(path: str | Path, spec: BagSpec | None = None, storage: str = "mcap") -> Path:
    """Write ``spec`` as a rosbag2 directory at ``path`` (which must not exist) and return it."""
    spec = spec or BagSpec()
    path = Path(path)
    typestore = ros_types.make_typestore()
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    pending: list[tuple[int, int, object, str]] = []  # (receive time, order, message, topic)

    def add(t_s: float, msg, topic: str) -> None:
        pending.append((spec.start_ns + round(t_s * NS) + spec.receive_delay_ns, len(pending), msg, topic))

    def stamp(t_s: float, topic: str) -> int:
        return 0 if topic in spec.zero_stamp_topics else spec.start_ns + round(t_s * NS)

    types: dict[str, str] = {}
    for c, cam in enumerate(spec.cameras):
        types[cam.topic] = ros_types.COMPRESSED_IMAGE if cam.compressed else ros_types.IMAGE
        scene = _Scene(c, cam.width, cam.height) if spec.pattern == "scene" else None
        for seq, t in enumerate(message_times(cam.rate_hz, spec.duration_s, cam.gaps)):
            rgb = scene.frame(seq) if scene else np.empty((cam.height, cam.width, 3), dtype=np.uint8)
            if scene is None:
                rgb[:] = expected_rgb(c, seq)
            if cam.compressed:
                ok, data = cv2.imencode(f".{cam.encoding}", np.ascontiguousarray(rgb[:, :, ::-1]))
                assert ok
                msg = compressed_image_msg(
                    typestore, data.tobytes(), stamp(t, cam.topic), cam.encoding
                )
            else:
                pixels = _layout(rgb, cam.encoding)
                msg = image_msg(typestore, pixels, stamp(t, cam.topic), cam.encoding, cam.name)
            add(t, msg, cam.topic)
    if spec.joint_topic:
        types[spec.joint_topic] = ros_types.JOINT_STATE
        n = len(spec.joint_names)
        for t in message_times(spec.joint_rate_hz, spec.duration_s):
            position = [k + t for k in range(n)]
            msg = joint_state_msg(
                typestore, stamp(t, spec.joint_topic), spec.joint_names, position, [-k for k in range(n)]
            )
            add(t, msg, spec.joint_topic)
    if spec.action_topic:
        types[spec.action_topic] = ros_types.FLOAT64_ARRAY
        for t in message_times(spec.action_rate_hz, spec.duration_s):
            add(t, float64_array_msg(typestore, [t, -t]), spec.action_topic)
    if spec.events:
        types[spec.events_topic] = ros_types.EPISODE_EVENT
        for ev in spec.events:
            msg = episode_event_msg(
                typestore, stamp(ev.time_s, spec.events_topic), ev.event, ev.outcome, ev.task, ev.episode_id
            )
            add(ev.time_s, msg, spec.events_topic)

    pending.sort(key=lambda item: (item[0], item[1]))
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = {
            topic: writer.add_connection(topic, msgtype, typestore=typestore)
            for topic, msgtype in types.items()
        }
        for received, _, msg, topic in pending:
            writer.write(conns[topic], received, typestore.serialize_cdr(msg, types[topic]))
    return path


def storage_file(bag: str | Path) -> Path:
    """The single .mcap / .db3 file of a bag written by ``write_bag``."""
    files = [p for p in Path(bag).iterdir() if p.suffix in (".mcap", ".db3")]
    assert len(files) == 1, files
    return files[0]


def truncate_bag(bag: str | Path, keep_fraction: float = 0.5) -> Path:
    """Cut the bag's storage file short, as a crashed recorder or an interrupted copy leaves it."""
    target = storage_file(bag)
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * keep_fraction)])
    return target


def corrupt_bag(bag: str | Path, offset_fraction: float = 0.5, length: int = 4096) -> Path:
    """Overwrite bytes in the middle of the storage file with garbage (same size)."""
    target = storage_file(bag)
    data = bytearray(target.read_bytes())
    start = int(len(data) * offset_fraction)
    data[start : start + length] = bytes((i * 37 + 11) % 256 for i in range(min(length, len(data) - start)))
    target.write_bytes(bytes(data))
    return target


def split_bag(bag: str | Path, out: str | Path, parts: int = 2) -> Path:
    """The recording ``bag`` (mcap) rewritten as one bag of ``parts`` storage files, in order, with one
    metadata.yaml listing them all: what ``ros2 bag record --max-bag-size`` / ``--max-bag-duration`` write."""
    out = Path(out)
    typestore = ros_types.make_typestore()
    with Reader(bag) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        messages = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
    out.mkdir()
    infos = []
    for k in range(parts):
        part = out.parent / f".{out.name}_part{k}"
        with Writer(part, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
            conns = {t: writer.add_connection(t, m, typestore=typestore) for t, m in topics.items()}
            for topic, stamp, raw in messages[k * len(messages) // parts : (k + 1) * len(messages) // parts]:
                writer.write(conns[topic], stamp, raw)
        name = f"{out.name}_{k}.mcap"
        (part / f"{part.name}.mcap").rename(out / name)
        info = yaml.safe_load((part / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        info["files"][0]["path"] = name
        infos.append(info)
        for f in part.iterdir():
            f.unlink()
        part.rmdir()
    merged = infos[0]
    merged["files"] = [info["files"][0] for info in infos]
    merged["relative_file_paths"] = [f["path"] for f in merged["files"]]
    merged["message_count"] = sum(info["message_count"] for info in infos)
    counts: dict[str, int] = {}
    for info in infos:
        for entry in info["topics_with_message_count"]:
            topic = entry["topic_metadata"]["name"]
            counts[topic] = counts.get(topic, 0) + entry["message_count"]
    for entry in merged["topics_with_message_count"]:
        entry["message_count"] = counts[entry["topic_metadata"]["name"]]
    files = merged["files"]
    end = max(f["starting_time"]["nanoseconds_since_epoch"] + f["duration"]["nanoseconds"] for f in files)
    merged["duration"]["nanoseconds"] = end - merged["starting_time"]["nanoseconds_since_epoch"]
    (out / "metadata.yaml").write_text(yaml.safe_dump({"rosbag2_bagfile_information": merged}))
    return out


# Message builders: plain values -> rosbags message objects.


def header(typestore, stamp_ns: int, frame_id: str = ""):
    """``std_msgs/Header`` for a stamp in integer nanoseconds."""
    time_t = typestore.types["builtin_interfaces/msg/Time"]
    header_t = typestore.types["std_msgs/msg/Header"]
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return header_t(stamp=time_t(sec=sec, nanosec=nanosec), frame_id=frame_id)


def image_msg(typestore, pixels: np.ndarray, stamp_ns: int, encoding: str, frame_id: str = ""):
    """``sensor_msgs/Image`` from an HxW or HxWxC array whose layout already matches ``encoding``."""
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    step = pixels.strides[0]
    data = pixels.reshape(-1).view(np.uint8)
    return typestore.types[ros_types.IMAGE](
        header=header(typestore, stamp_ns, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=int(pixels.dtype.byteorder == ">"),
        step=step,
        data=data,
    )


def compressed_image_msg(typestore, data: bytes, stamp_ns: int, fmt: str, frame_id: str = ""):
    """``sensor_msgs/CompressedImage`` from already encoded bytes (``fmt`` e.g. ``"jpeg"`` or ``"png"``)."""
    return typestore.types[ros_types.COMPRESSED_IMAGE](
        header=header(typestore, stamp_ns, frame_id), format=fmt, data=np.frombuffer(data, dtype=np.uint8)
    )


def joint_state_msg(
    typestore,
    stamp_ns: int,
    names: Sequence[str],
    position: Sequence[float],
    velocity: Sequence[float] = (),
    effort: Sequence[float] = (),
):
    """``sensor_msgs/JointState``."""
    return typestore.types[ros_types.JOINT_STATE](
        header=header(typestore, stamp_ns),
        name=list(names),
        position=np.asarray(position, dtype=np.float64),
        velocity=np.asarray(velocity, dtype=np.float64),
        effort=np.asarray(effort, dtype=np.float64),
    )


def float64_array_msg(typestore, values: Sequence[float]):
    """``std_msgs/Float64MultiArray`` with an empty layout (a flat vector)."""
    layout_t = typestore.types["std_msgs/msg/MultiArrayLayout"]
    return typestore.types[ros_types.FLOAT64_ARRAY](
        layout=layout_t(dim=[], data_offset=0), data=np.asarray(values, dtype=np.float64)
    )


def episode_event_msg(
    typestore,
    stamp_ns: int,
    event: int,
    outcome: int = ros_types.OUTCOME_UNKNOWN,
    task: str = "",
    episode_id: str = "",
):
    """``ove_ros/EpisodeEvent`` (``event`` START=0 / END=1, ``outcome`` UNKNOWN=0 / SUCCESS=1 / FAILURE=2)."""
    return typestore.types[ros_types.EPISODE_EVENT](
        header=header(typestore, stamp_ns), event=event, outcome=outcome, task=task, episode_id=episode_id
    )
