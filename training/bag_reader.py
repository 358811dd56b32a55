# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Read a rosbag2 recording into episodes of frames resampled to a fixed rate.

Two passes over the bag, so that nothing is guessed while streaming and images are decoded only when used:

1. ``index_bag`` reads the header stamp of every message on the configured topics (camera messages are not
   deserialized: the stamp is read from the CDR header), decodes the small messages (joint states, actions,
   episode events) and the first image of each camera (to check its encoding and learn its size).
2. ``iter_frames`` reads the camera topics again and yields each kept tick's frame, decoding only the images
   that some tick uses.

In uncompressed MCAP bags (what ``ros2 bag record`` writes by default) both passes take their messages
straight from the memory-mapped files through the files' own index (:mod:`ove_ros.training.mcap_direct`):
pass 1
then reads 12 bytes per image instead of the image, and pass 2 parses images in place and decodes and
resizes them on worker threads. Other bags go through rosbags' reader.

Resampling and episode splitting (which ticks are frames, which START..END windows are episodes) are pure
functions of the stamps pass 1 collects: ``ove_ros.training.episode_plan``. Stamps are header stamps; a zero
header stamp falls back to the bag receive time (with a warning), and messages without a header (MultiArray
actions) always use the receive time. What pass 1 learns is ``ove_ros.training.bag_model``.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys.store import Typestore

from ove_ros import images
from ove_ros.images import ImagePreprocessing
from ove_ros.images import shrink_image as shrink_image  # the converter's resize, kept importable here
from ove_ros.joints import joint_order
from ove_ros.training import ros_types
from ove_ros.training.bag_config import BagConversionConfig, BagConversionError, CameraConfig, image_spec
from ove_ros.training.bag_model import BagContentError, BagIndex, BagReadError, EpisodeEvent, StreamIndex
from ove_ros.training.episode_plan import EpisodePlan, camera_key, plan_episodes, plan_ticks
from ove_ros.training.mcap_direct import McapIndexError, McapMessages, image_view

# Re-exported: the converter and its callers import the bag reader's whole surface from here.
__all__ = ["BagContentError", "BagIndex", "BagReadError", "EpisodeEvent", "EpisodePlan", "StreamIndex",
           "camera_key", "dataset_image_specs", "index_bag", "iter_frames", "plan_episodes", "plan_ticks",
           "shrink_image"]

log = logging.getLogger(__name__)

NS = 1_000_000_000
DECODE_AHEAD = 8  # frames decoded ahead of the one handed out
# Threads decoding and resizing images. Two, even on two cores: with one, resizing 3 x 640x480 @ 30 Hz became
# the pipeline's bottleneck whenever the video encoders held the other core (a 60 s recording converted at
# 224x224: 6.6-7.7 s with one, 6.0-6.6 s with two).
DECODE_THREADS = 2


# ---------------------------------------------------------------------------------------------------------
# Pass 1


@contextlib.contextmanager
def bag_errors(path: Path) -> Iterator[None]:
    """Turn the many ways a damaged bag fails inside rosbags into one ``BagReadError`` naming the bag."""
    try:
        yield
    except BagConversionError:
        raise
    except FileNotFoundError as exc:
        raise BagReadError(
            f"cannot read bag {path}: {exc}. Pass a rosbag2 directory (with metadata.yaml), "
            "or a .mcap / .db3 file."
        ) from exc
    except Exception as exc:  # damaged data fails in many ways inside rosbags (struct, overflow, sqlite...)
        raise BagReadError(
            f"cannot read bag {path}: {type(exc).__name__}: {exc}. The recording is truncated or corrupt; "
            "re-copy it, repair it (`ros2 bag reindex`, `mcap recover`) or leave it out."
        ) from exc


def _open(path: Path) -> Reader:
    reader = Reader(path)
    reader.open()
    return reader


def _open_direct(path: Path, reader: Reader, topics: list[str]) -> McapMessages | None:
    """The messages of ``topics`` straight from the MCAP files, or None where that does not apply."""
    if not topics or reader.compression_mode:
        return None
    if path.is_file():
        files = [path] if path.suffix == ".mcap" else []
    else:
        import yaml

        info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        if info.get("storage_identifier") != "mcap":
            return None
        files = [path / name for name in info.get("relative_file_paths") or []]
    if not files or any(f.suffix != ".mcap" for f in files):
        return None
    return McapMessages.open(files, topics)


Message = tuple[str, str, int, "bytes | memoryview"]  # topic, msgtype, receive time (ns), serialized data


def _reader_messages(reader: Reader, connections: list) -> Iterator[Message]:
    for c, received, raw in reader.messages(connections=connections):
        yield c.topic, c.msgtype, received, raw


def _mapped_messages(
    direct: McapMessages, msgtypes: dict[str, str], select: np.ndarray | None = None
) -> Iterator[Message]:
    """Each message of the mapped files (or the ``select``-ed ones), in order."""
    for i in range(len(direct)) if select is None else select:
        topic = direct.topic_names[int(direct.topics[i])]
        yield topic, msgtypes[topic], int(direct.log_times[i]), direct.data(i)


def _bulk_topic(
    direct: McapMessages, topic: str, msgtype: str, parser: ros_types.JointStateParser
) -> tuple[np.ndarray, np.ndarray, np.ndarray, ros_types.JointStateView | None] | None:
    """``(message numbers, receive times, header stamps, JointState arrays [messages, joints] or None)`` of
    every message of ``topic``, read at once from the mapped files; None when the topic must be read message
    by message (other types, big-endian CDR, JointState messages whose layouts differ)."""
    select = np.flatnonzero(direct.topics == direct.topic_names.index(topic))
    if not len(select):
        return None
    msg = None
    if msgtype in (ros_types.IMAGE, ros_types.COMPRESSED_IMAGE):
        rows = direct.heads(select, 12)
        if rows is None or (rows[:, 1] != 1).any():
            return None
    elif msgtype == ros_types.JOINT_STATE:
        rows = direct.heads(select, None)
        if rows is None:
            return None
        layout = parser.layout(rows[0].tobytes())
        if layout is None:
            return None
        _, names, spans = layout
        fixed = np.ones(rows.shape[1], dtype=bool)  # everything but the stamp and the values must match
        fixed[4:12] = False
        for at, count in spans:
            fixed[at : at + 8 * count] = False
        if (rows[:, fixed] != rows[0, fixed]).any():
            return None
        arrays = [np.ascontiguousarray(rows[:, at : at + 8 * count]).view("<f8") for at, count in spans]
        msg = ros_types.JointStateView(0, names, *arrays)
    else:
        return None
    sec = np.ascontiguousarray(rows[:, 4:8]).view("<i4")[:, 0].astype(np.int64)
    nanosec = np.ascontiguousarray(rows[:, 8:12]).view("<u4")[:, 0].astype(np.int64)
    return select, direct.log_times[select], sec * NS + nanosec, msg


def _expect_type(bag: Path, topic: str, role: str, found: str, allowed: tuple[str, ...]) -> None:
    if found not in allowed:
        raise BagContentError(
            f"bag {bag}: topic {topic} ({role}) has type {found}; expected {' or '.join(allowed)}"
        )


class _JointPicker:
    """Picks named joints out of JointState arrays, caching the index map per name list."""

    def __init__(self, bag: Path, topic: str, joints: list[str], config_key: str):
        self.bag, self.topic, self.joints, self.config_key = bag, topic, joints, config_key
        self._cache: dict[tuple[str, ...], np.ndarray] = {}

    def indices(self, names: list[str]) -> np.ndarray:
        key = tuple(names)
        if key not in self._cache:
            indices, absent = joint_order(self.joints, names)
            if absent:
                raise BagContentError(
                    f"bag {self.bag}: joint(s) {absent} not in {self.topic}; "
                    f"its messages name {list(names)}. "
                    f"Fix {self.config_key} in the config."
                )
            self._cache[key] = indices
        return self._cache[key]

    def pick(self, values, names: list[str], field_name: str) -> np.ndarray:
        """``values``: one message's array or ``[messages, joints]``; returns ``[messages, joints]``."""
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if values.shape[1] != len(names):
            raise BagContentError(
                f"bag {self.bag}: a {self.topic} message has {len(names)} names but {values.shape[1]} "
                f"{field_name} values; set {self.config_key.rsplit('.', 1)[0]}.{field_name}=false "
                "if it is not published"
            )
        return values[:, self.indices(names)].astype(np.float32)


def index_bag(path: str | Path, config: BagConversionConfig, typestore: Typestore) -> BagIndex:
    """Pass 1: stamps of every configured stream, decoded vectors and events, image shapes."""
    path = Path(path)
    name = path.stem if path.is_file() else path.name
    if not path.exists():
        raise BagReadError(f"bag {path} does not exist")
    with bag_errors(path):
        reader = _open(path)
        try:
            return _index(reader, path, name, config, typestore)
        finally:
            reader.close()


def _index(
    reader: Reader, path: Path, name: str, config: BagConversionConfig, typestore: Typestore
) -> BagIndex:
    ros_types.register_bag_types(typestore, reader.connections)
    by_topic: dict[str, list] = {}
    for conn in reader.connections:
        by_topic.setdefault(conn.topic, []).append(conn)

    def require(topic: str, role: str, allowed: tuple[str, ...]) -> str:
        if topic not in by_topic:
            raise BagContentError(
                f"bag {path} has no topic {topic} ({role}); its topics are {sorted(by_topic)}. "
                "Fix the topic in the config or leave this bag out."
            )
        msgtype = by_topic[topic][0].msgtype
        _expect_type(path, topic, role, msgtype, allowed)
        return msgtype

    roles: dict[str, str] = {}  # topic -> stream key
    msgtypes: dict[str, str] = {}
    cams: dict[str, CameraConfig] = {}
    for cam in config.cameras:
        key = camera_key(cam.name)
        msgtypes[key] = require(
            cam.topic, f"camera {cam.name}", (ros_types.IMAGE, ros_types.COMPRESSED_IMAGE)
        )
        roles[cam.topic] = key
        cams[key] = cam
    if config.state is not None:
        msgtypes["state"] = require(config.state.topic, "state", (ros_types.JOINT_STATE,))
        roles[config.state.topic] = "state"
    if config.action is not None:
        allowed = (ros_types.JOINT_STATE, ros_types.FLOAT64_ARRAY, ros_types.FLOAT32_ARRAY)
        msgtypes["action"] = require(config.action.topic, "action", allowed)
        roles[config.action.topic] = "action"
    events_topic = config.episodes.events_topic
    has_events_topic = config.episodes.split != "bag" and events_topic in by_topic
    if has_events_topic:
        _expect_type(
            path,
            events_topic,
            "episode events",
            by_topic[events_topic][0].msgtype,
            (ros_types.EPISODE_EVENT,),
        )
    if config.episodes.split == "events" and not has_events_topic:
        raise BagContentError(
            f"bag {path} has no topic {events_topic} with EpisodeEvent messages, but episodes.split=events; "
            "use episodes.split=auto or bag to convert it as one episode"
        )

    headers = {key: ros_types.has_header(typestore, t) for key, t in msgtypes.items()}
    stamps: dict[str, list[int]] = {key: [] for key in msgtypes}
    zero: dict[str, int] = dict.fromkeys(msgtypes, 0)
    vectors: dict[str, dict[str, list[np.ndarray]]] = {key: {} for key in ("state", "action")}
    shapes: dict[str, tuple[int, int, int]] = {}
    events: list[EpisodeEvent] = []
    pickers: dict[str, _JointPicker] = {}
    if config.state is not None:
        pickers["state"] = _JointPicker(path, config.state.topic, list(config.state.joints), "state.joints")
    if config.action is not None:
        pickers["action"] = _JointPicker(
            path, config.action.topic, list(config.action.joints), "action.joints"
        )

    topics = [t for t in [*roles, events_topic if has_events_topic else None] if t]
    direct = _open_direct(path, reader, topics)
    read: dict[str, int] = {}
    joint_parser = ros_types.JointStateParser()
    try:
        if direct is not None:
            # Camera stamps and uniform JointState messages are read for a whole topic at once (12 bytes per
            # image); the other messages (events, MultiArray actions, irregular layouts) one by one below.
            rest = np.ones(len(direct), dtype=bool)
            for topic, key in roles.items():
                try:
                    bulk = _bulk_topic(direct, topic, msgtypes[key], joint_parser)
                except McapIndexError:
                    raise  # named by bag_errors, like a damaged bag read the generic way
                except ValueError as exc:
                    raise _damaged(path, topic, exc) from None
                if bulk is None:
                    continue
                select, received, topic_stamps, msg = bulk
                rest[select] = False
                read[topic] = len(select)
                zeros = topic_stamps == 0
                zero[key] = int(zeros.sum())
                stamps[key] = np.where(zeros, received, topic_stamps)
                if key.startswith("camera:"):
                    first = direct.data(int(select[0]))
                    shapes[key] = _decode_camera(path, cams[key], msgtypes[key], typestore, first).shape
                    first = None
                else:
                    _collect_vectors(key, msg, msgtypes[key], config, pickers[key], vectors[key])
            messages = _mapped_messages(
                direct, {t: by_topic[t][0].msgtype for t in topics}, np.flatnonzero(rest)
            )
        else:
            messages = _reader_messages(reader, [c for t in topics for c in by_topic[t]])
        for topic, msgtype, received, raw in messages:
            read[topic] = read.get(topic, 0) + 1
            if isinstance(raw, memoryview) and not roles.get(topic, "").startswith("camera:"):
                raw = bytes(raw)  # small message: its arrays must not point into the mapping
            if topic == events_topic and has_events_topic:
                msg = typestore.deserialize_cdr(raw, msgtype)
                stamp = _stamp_of(msg.header.stamp) or received
                events.append(EpisodeEvent(stamp, int(msg.event), int(msg.outcome), msg.task, msg.episode_id))
                continue
            key = roles[topic]
            if key.startswith("camera:"):
                stamp = ros_types.peek_header_stamp(raw)
                if key not in shapes:
                    shapes[key] = _decode_camera(path, cams[key], msgtype, typestore, raw).shape
            else:
                msg = None
                if msgtype == ros_types.JOINT_STATE:
                    try:
                        msg = joint_parser.parse(raw)
                    except ValueError as exc:
                        raise _damaged(path, topic, exc) from None
                if msg is not None:
                    stamp = msg.stamp_ns
                else:
                    msg = typestore.deserialize_cdr(raw, msgtype)
                    stamp = _stamp_of(msg.header.stamp) if headers[key] else received
                _collect_vectors(key, msg, msgtype, config, pickers[key], vectors[key])
            if stamp == 0:
                stamp = received
                zero[key] += 1
            stamps[key].append(stamp)
        raw = None  # drop the last view of the mapping before closing it
    finally:
        if direct is not None:
            direct.close()

    _check_counts(path, by_topic, [*roles, events_topic] if has_events_topic else list(roles), read)

    streams: dict[str, StreamIndex] = {}
    for key, values in stamps.items():
        topic = next(t for t, k in roles.items() if k == key)
        if not len(values):
            raise BagContentError(f"bag {path}: topic {topic} ({key}) has no messages")
        raw_stamps = np.asarray(values, dtype=np.int64)
        order = np.argsort(raw_stamps, kind="stable")
        sorted_values = {k: np.concatenate(v)[order] for k, v in vectors.get(key, {}).items()}
        streams[key] = StreamIndex(
            key,
            topic,
            msgtypes[key],
            raw_stamps[order],
            order,
            raw_stamps,
            sorted_values,
            zero[key],
            headers[key],
        )
        if zero[key]:
            log.warning(
                "bag %s: %d message(s) on %s have a zero header stamp; used the bag receive time for them",
                name,
                zero[key],
                topic,
            )
        if not headers[key]:
            log.info("bag %s: %s has no header; its messages are timed by the bag receive time", name, topic)
    events.sort(key=lambda e: e.stamp)
    image_shapes = {key.split(":", 1)[1]: shape for key, shape in shapes.items()}
    require_events = config.episodes.split == "events"
    return BagIndex(path, name, streams, events, image_shapes, has_events_topic, require_events, direct)


def _damaged(path: Path, topic: str, exc: ValueError) -> BagReadError:
    return BagReadError(f"bag {path}: a {topic} message: {exc}; the bag is damaged")


def _check_counts(path: Path, by_topic: dict[str, list], topics: list[str], read: dict[str, int]) -> None:
    """A damaged file can end early without an error: compare with the message counts the bag declares."""
    for topic in topics:
        declared = sum(c.msgcount for c in by_topic[topic])
        if declared and read.get(topic, 0) != declared:
            raise BagReadError(
                f"bag {path}: {topic} declares {declared} messages but {read.get(topic, 0)} could be read; "
                "the recording is truncated or corrupt. Re-copy or repair it (`ros2 bag reindex`, "
                "`mcap recover`), or leave it out."
            )


def _stamp_of(stamp) -> int:
    return int(stamp.sec) * NS + int(stamp.nanosec)


def _collect_vectors(
    key: str,
    msg,
    msgtype: str,
    config: BagConversionConfig,
    picker: _JointPicker,
    out: dict[str, list[np.ndarray]],
) -> None:
    if msgtype == ros_types.JOINT_STATE:
        feature = "observation.state" if key == "state" else "action"
        out.setdefault(feature, []).append(picker.pick(msg.position, msg.name, "position"))
        if key == "state" and config.state.velocity:
            out.setdefault("observation.velocity", []).append(picker.pick(msg.velocity, msg.name, "velocity"))
        if key == "state" and config.state.effort:
            out.setdefault("observation.effort", []).append(picker.pick(msg.effort, msg.name, "effort"))
        return
    data = np.asarray(msg.data, dtype=np.float32)[None]
    if data.shape[1] != len(config.action.joints):
        raise BagContentError(
            f"bag {picker.bag}: {picker.topic} carries {data.shape[1]} values but action.joints names "
            f"{len(config.action.joints)}; list one name per element"
        )
    out.setdefault("action", []).append(data)


def _decode_camera(bag: Path, cam: CameraConfig, msgtype: str, typestore: Typestore, raw) -> np.ndarray:
    """Message -> the camera's RGB uint8 frame through ove_ros.images, the live node's path too. ``raw`` may
    be a view of a mapped file: then the result never refers to it."""
    mapped = isinstance(raw, memoryview)
    msg = None
    if mapped and msgtype == ros_types.IMAGE:
        try:
            msg = image_view(raw)  # the pixels stay in the mapping until resized or copied below
        except ValueError as exc:
            message = f"bag {bag}: camera {cam.name} ({cam.topic}): {exc}; the bag is damaged"
            raise BagReadError(message) from None
    if msg is None:
        msg = typestore.deserialize_cdr(bytes(raw) if mapped else raw, msgtype)
    try:
        rgb = images.preprocess(msg, image_spec(cam))
    except images.ImageError as exc:
        raise BagContentError(f"bag {bag}: camera {cam.name} ({cam.topic}): {exc}") from None
    if (mapped and not rgb.flags.owndata) or not rgb.flags.c_contiguous:
        rgb = rgb.copy()  # rgb8 at its recorded size is a view of the message's data
    return rgb


def dataset_image_specs(
    config: BagConversionConfig, shapes: dict[str, tuple[int, int, int]]
) -> dict[str, ImagePreprocessing]:
    """Per camera, the preprocessing its dataset frames went through, at their size (``shapes``: HxWxC)."""
    return {cam.name: image_spec(cam, (shapes[cam.name][1], shapes[cam.name][0])) for cam in config.cameras}


# ---------------------------------------------------------------------------------------------------------
# Pass 2


def frame_vectors(index: BagIndex, plan: EpisodePlan, i: int) -> dict[str, np.ndarray]:
    """The non-image features of kept tick ``i`` of ``plan``."""
    out = {}
    for key in ("state", "action"):
        stream = index.streams.get(key)
        if stream is not None:
            for feature, values in stream.values.items():
                out[feature] = values[plan.picks[key][i]]
    return out


def iter_frames(
    index: BagIndex, plans: list[EpisodePlan], config: BagConversionConfig, typestore: Typestore
) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """Pass 2: ``(plan number, frame number, features)`` for every kept tick, in order.

    Camera messages arrive in receive order; each decoded image is held until the last frame using it is out.
    """
    cams = {camera_key(c.name): c for c in config.cameras}
    order = [(p, i) for p, plan in enumerate(plans) for i in range(plan.frames)]
    if not cams:
        for p, i in order:
            yield p, i, frame_vectors(index, plans[p], i)
        return
    # Per camera: the receive-order index of the message each frame uses, and how many frames use each.
    use = {
        key: np.concatenate([index.streams[key].order[plan.picks[key]] for plan in plans]).astype(np.int64)
        if order
        else np.zeros(0, dtype=np.int64)
        for key in cams
    }
    refs = {key: dict(zip(*np.unique(use[key], return_counts=True), strict=True)) for key in cams}
    ready: dict[str, dict[int, np.ndarray]] = {key: {} for key in cams}
    seen = dict.fromkeys(cams, 0)
    topic_key = {c.topic: key for key, c in cams.items()}
    shapes = {camera_key(name): shape for name, shape in index.image_shapes.items()}
    arrivals = {key: index.streams[key].arrival_stamps for key in cams}
    done = 0

    def decode(key: str, msgtype: str, raw) -> np.ndarray:
        image = _decode_camera(index.path, cams[key], msgtype, typestore, raw)
        if image.shape != shapes[key]:
            raise BagContentError(
                f"bag {index.path}: camera {cams[key].name} changed size from {shapes[key]} to "
                f"{image.shape}; set cameras[].resize to write one size"
            )
        return image

    def resolve(p: int, i: int, features: dict) -> tuple[int, int, dict[str, np.ndarray]]:
        return p, i, {k: v.result() if isinstance(v, Future) else v for k, v in features.items()}

    # Images are decoded and resized on worker threads while this one reads on and the caller writes the
    # dataset: OpenCV and numpy release the GIL, so they run on separate cores.
    pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode")
    pending: deque[tuple[int, int, dict]] = deque()  # frames handed to the worker, oldest first
    with bag_errors(index.path):
        reader = direct = None
        try:
            if index.direct is not None:
                direct = index.direct.select(list(topic_key))
                cam_types = {cam.topic: index.streams[key].msgtype for key, cam in cams.items()}
                messages = _mapped_messages(direct, cam_types)
            else:
                reader = _open(index.path)
                messages = _reader_messages(reader, [c for c in reader.connections if c.topic in topic_key])
            while done < len(order):
                item = next(messages, None)
                if item is None:
                    raise BagReadError(
                        f"bag {index.path}: its camera messages ended before frame {done} of {len(order)}; "
                        "the bag changed while being converted or is damaged"
                    )
                topic, msgtype, received, raw = item
                key = topic_key[topic]
                j = seen[key]
                seen[key] += 1
                if j not in refs[key]:
                    continue
                stamp = ros_types.peek_header_stamp(raw) or received
                if j >= len(arrivals[key]) or stamp != arrivals[key][j]:
                    raise BagReadError(
                        f"bag {index.path}: camera {cams[key].name} message {j} differs between the two "
                        "reads; the bag changed while being converted"
                    )
                ready[key][j] = pool.submit(decode, key, msgtype, raw)
                raw = None
                while done < len(order) and all(use[k][done] in ready[k] for k in cams):
                    p, i = order[done]
                    features = frame_vectors(index, plans[p], i)
                    for k, cam in cams.items():
                        j_used = int(use[k][done])
                        features[f"observation.images.{cam.name}"] = ready[k][j_used]
                        refs[k][j_used] -= 1
                        if refs[k][j_used] == 0:
                            del ready[k][j_used]
                    pending.append((p, i, features))
                    done += 1
                while len(pending) > DECODE_AHEAD:
                    yield resolve(*pending.popleft())
            while pending:
                yield resolve(*pending.popleft())
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            item = raw = None  # the last views of the mapping
            pending.clear()
            if direct is not None:
                direct.close()
            if reader is not None:
                reader.close()
