# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ROS 2 message types for rosbags: the custom messages, in-place JointState parsing, image decoders.

rosbags reads and writes rosbag2 without a ROS installation, but it only knows the standard messages. The
``ove_ros/msg/*.msg`` definitions are registered from their text, found next to the source checkout or in the
installed package's share directory (ament index), so readers and writers agree on the same definitions.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "ove_ros"
EPISODE_EVENT = f"{PACKAGE}/msg/EpisodeEvent"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
JOINT_STATE = "sensor_msgs/msg/JointState"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
FLOAT32_ARRAY = "std_msgs/msg/Float32MultiArray"

# EpisodeEvent constants (mirrors msg/EpisodeEvent.msg).
EVENT_START = 0
EVENT_END = 1
OUTCOME_UNKNOWN = 0
OUTCOME_SUCCESS = 1
OUTCOME_FAILURE = 2

MSG_DIR_ENV = "OVE_ROS_MSG_DIR"


def find_msg_dir() -> Path:
    """Directory holding this package's ``.msg`` files.

    Looked up in order: ``$OVE_ROS_MSG_DIR``, the source checkout (``<repo>/msg``), the ament index share
    directory of an installed ``ove_ros`` (``share/ove_ros/msg``).
    """
    candidates: list[Path] = []
    if os.environ.get(MSG_DIR_ENV):
        candidates.append(Path(os.environ[MSG_DIR_ENV]))
    candidates.append(Path(__file__).resolve().parents[1] / "msg")
    for path in candidates:
        if (path / "EpisodeEvent.msg").is_file():
            return path
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(PACKAGE)) / "msg"
    except (ImportError, LookupError, OSError):  # no ROS environment, or the package is not installed
        share = None
    if share is not None and (share / "EpisodeEvent.msg").is_file():
        return share
    candidates.append(share or Path(f"<ament index: share/{PACKAGE}/msg>"))
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} message definitions (EpisodeEvent.msg); looked in "
        f"{[str(p) for p in candidates]}. Set {MSG_DIR_ENV} to the package's msg/ directory."
    )


def register_package_types(typestore: Typestore, msg_dir: str | Path | None = None) -> Typestore:
    """Register every ``<msg_dir>/*.msg`` as ``ove_ros/msg/<Name>`` in ``typestore`` and return it."""
    directory = Path(msg_dir) if msg_dir is not None else find_msg_dir()
    types: dict = {}
    for path in sorted(directory.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"{PACKAGE}/msg/{path.stem}"))
    if not types:
        raise FileNotFoundError(f"no .msg files in {directory}")
    typestore.register(types)
    return typestore


def make_typestore(msg_dir: str | Path | None = None) -> Typestore:
    """A ROS 2 Kilted typestore with this package's messages registered."""
    return register_package_types(get_typestore(Stores.ROS2_KILTED), msg_dir)


def register_bag_types(typestore: Typestore, connections: Sequence) -> None:
    """Register message types that a bag defines and the typestore lacks (e.g. other packages' messages)."""
    types: dict = {}
    for conn in connections:
        if conn.msgtype in typestore.types or not conn.msgdef.data:
            continue
        if conn.msgdef.format.name != "MSG":
            continue  # IDL definitions are rare in bags; such a type is reported when it is needed
        types.update(get_types_from_msg(conn.msgdef.data, conn.msgtype))
    if types:
        typestore.register(types)


def has_header(typestore: Typestore, msgtype: str) -> bool:
    """Whether the message's first field is a ``std_msgs/Header`` (so its stamp can be read cheaply)."""
    fields = typestore.get_msgdef(msgtype).fields
    return bool(fields) and fields[0][0] == "header" and fields[0][1][1] == "std_msgs/msg/Header"


def peek_header_stamp(rawdata: bytes | memoryview) -> int:
    """Header stamp (ns) of a CDR message whose first field is a Header, without deserializing the rest."""
    if len(rawdata) < 12:
        raise ValueError(f"message of {len(rawdata)} bytes is too short for a header")
    order = "<" if rawdata[1] == 1 else ">"  # CDR encapsulation id: 0x0001 little endian, 0x0000 big endian
    sec, nanosec = struct.unpack_from(f"{order}iI", rawdata, 4)
    return sec * 1_000_000_000 + nanosec


class JointStateView(NamedTuple):
    """The fields of a ``sensor_msgs/JointState`` that a conversion reads; arrays may view the message."""

    stamp_ns: int
    name: tuple[str, ...]
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class JointStateParser:
    """Reads little-endian CDR ``sensor_msgs/JointState`` messages without building message objects.

    A recording holds thousands of them (200 Hz is common) with the same joint names in every one. This
    parser keeps the last name list's bytes and only compares them, then views the three float64 arrays in
    place, which takes less than half the generic deserializer's time. (Uniform messages in mapped MCAP
    files skip even this: bag_reader reads their arrays for the whole topic at once.)
    """

    def __init__(self) -> None:
        self._names_raw = b""
        self._names: tuple[str, ...] = ()

    def parse(self, raw: bytes | memoryview) -> JointStateView | None:
        """None for big-endian CDR (decode it the generic way); ValueError when the message is malformed."""
        layout = self.layout(raw)
        if layout is None:
            return None
        stamp, names, spans = layout
        arrays = [np.frombuffer(raw, dtype="<f8", count=count, offset=at) for at, count in spans]
        return JointStateView(stamp, names, *arrays)

    def layout(self, raw: bytes | memoryview) -> tuple[int, tuple[str, ...], list[tuple[int, int]]] | None:
        """``(stamp ns, joint names, [(byte offset, count)] of position / velocity / effort)``."""
        if len(raw) < 16 or raw[1] != 1:
            if len(raw) >= 2 and raw[1] == 0:
                return None
            raise ValueError(f"JointState message of {len(raw)} bytes is too short or not CDR")
        try:
            sec, nanosec, frame_len = struct.unpack_from("<iII", raw, 4)
            pos = _align(16 + frame_len, 4)
            start = pos
            cached = self._names_raw
            if cached and bytes(raw[start : start + len(cached)]) == cached:
                names, pos = self._names, start + len(cached)
            else:
                (count,) = struct.unpack_from("<I", raw, pos)
                pos += 4
                parsed = []
                for _ in range(count):
                    pos = _align(pos, 4)
                    (n,) = struct.unpack_from("<I", raw, pos)
                    if n == 0 or pos + 4 + n > len(raw):
                        raise ValueError("a joint name runs past the end of the message")
                    parsed.append(bytes(raw[pos + 4 : pos + 3 + n]).decode("utf-8"))
                    pos += 4 + n
                names = tuple(parsed)
                self._names_raw, self._names = bytes(raw[start:pos]), names
            spans = []
            for _ in range(3):
                pos = _align(pos, 4)
                (count,) = struct.unpack_from("<I", raw, pos)
                pos = _align(pos + 4, 8) if count else pos + 4
                if pos + 8 * count > len(raw):
                    raise ValueError(f"an array of {count} values runs past the end of the message")
                spans.append((pos, count))
                pos += 8 * count
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValueError(f"JointState message of {len(raw)} bytes is cut short or malformed") from exc
        return sec * 1_000_000_000 + nanosec, names, spans


def _align(pos: int, size: int) -> int:
    """CDR aligns each primitive to its size, counted from the payload (after the 4-byte encapsulation)."""
    return 4 + ((pos - 4 + size - 1) & ~(size - 1))


# ---------------------------------------------------------------------------------------------------------
# Decoders: rosbags image messages -> RGB uint8 (HxWx3), the layout LeRobot stores.

RAW_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "mono16", "16UC1")
COMPRESSED_FORMATS = ("jpeg", "jpg", "png")
_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "mono16": 1, "16UC1": 1}
# ROS compressed_depth_image_transport prefixes its PNG with a 12-byte config header (format + 2 floats).
_COMPRESSED_DEPTH_HEADER = 12


class UnsupportedImageError(ValueError):
    """An image message whose encoding or format this converter cannot turn into RGB."""


def _to_rgb(pixels: np.ndarray, order: str, depth_max: float) -> np.ndarray:
    """HxW or HxWxC pixels (``order`` "rgb", "bgr" or "gray"; uint8 or uint16) -> contiguous RGB uint8."""
    if pixels.dtype == np.uint16:
        scaled = pixels.astype(np.float32) * np.float32(255.0 / depth_max)
        pixels = np.clip(scaled, 0.0, 255.0).astype(np.uint8)
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        gray = pixels.reshape(pixels.shape[0], pixels.shape[1], 1)
        return np.ascontiguousarray(np.broadcast_to(gray, (*gray.shape[:2], 3)))
    if order == "bgr":
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(pixels[:, :, :3])


def raw_image_to_rgb(msg, depth_max: float = 65535.0) -> np.ndarray:
    """``sensor_msgs/Image`` -> RGB uint8; 16-bit images scale [0, depth_max] to [0, 255]."""
    encoding = msg.encoding
    if encoding not in _CHANNELS:
        raise UnsupportedImageError(
            f"image encoding {encoding!r} is not supported; supported encodings: {', '.join(RAW_ENCODINGS)}"
        )
    channels = _CHANNELS[encoding]
    depth = 2 if encoding in ("mono16", "16UC1") else 1
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.asarray(msg.data, dtype=np.uint8)
    if step < width * channels * depth or data.size < step * height:
        raise UnsupportedImageError(
            f"image data of {data.size} bytes does not fit {width}x{height} {encoding} with step {step}"
        )
    rows = data[: step * height].reshape(height, step)[:, : width * channels * depth]
    if depth == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        pixels = np.ascontiguousarray(rows).view(dtype).astype(np.uint16).reshape(height, width)
    else:
        pixels = rows.reshape(height, width, channels)
    order = "bgr" if encoding.startswith("bgr") else "gray" if channels == 1 else "rgb"
    return _to_rgb(pixels, order, depth_max)


# JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...): they carry the image size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_size(data) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's frame header without decoding it; None if there is none."""
    head = bytes(data[:2])
    if head != b"\xff\xd8":
        return None
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = int(data[pos + 1])
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
            continue
        if marker == 0xDA:  # start of scan: no frame header before the data
            return None
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                return None
            height = (int(data[pos + 5]) << 8) | int(data[pos + 6])
            width = (int(data[pos + 7]) << 8) | int(data[pos + 8])
            return (width, height) if width and height else None
        pos += 2 + ((int(data[pos + 2]) << 8) | int(data[pos + 3]))
    return None


def jpeg_reduction(size: tuple[int, int], fit: tuple[int, int]) -> int:
    """The largest factor (1, 2, 4 or 8) by which a JPEG of ``size`` can be decoded while staying at least
    ``fit`` in both directions (libjpeg scales while it decodes, which is faster than decoding full size)."""
    for factor in (8, 4, 2):
        if -(-size[0] // factor) >= fit[0] and -(-size[1] // factor) >= fit[1]:
            return factor
    return 1


def compressed_image_to_rgb(
    msg, depth_max: float = 65535.0, fit: tuple[int, int] | None = None
) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (JPEG/PNG, incl. compressedDepth PNG) -> RGB uint8.

    ``fit``: ``(width, height)`` the caller will shrink the image to; a JPEG is then decoded at the smallest
    scale (1/2, 1/4, 1/8) that is still at least that large."""
    import cv2  # imported here: only camera decoding needs OpenCV

    fmt = msg.format.lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise UnsupportedImageError(
            f"compressed image format {msg.format!r} is not supported; "
            f"supported: {', '.join(COMPRESSED_FORMATS)}"
        )
    data = np.asarray(msg.data, dtype=np.uint8)
    flag = cv2.IMREAD_UNCHANGED
    if "compresseddepth" in fmt:
        data = data[_COMPRESSED_DEPTH_HEADER:]
    elif fit is not None and "png" not in fmt and (size := jpeg_size(data)) is not None:
        factor = jpeg_reduction(size, fit)
        if factor > 1:
            flag = getattr(cv2, f"IMREAD_REDUCED_COLOR_{factor}")
    pixels = cv2.imdecode(data, flag)
    if pixels is None:
        raise UnsupportedImageError(
            f"cannot decode compressed image of format {msg.format!r} ({data.size} bytes)"
        )
    return _to_rgb(pixels, "bgr", depth_max)  # OpenCV decodes colour as BGR(A)


def image_to_rgb(
    msg, msgtype: str, depth_max: float = 65535.0, fit: tuple[int, int] | None = None
) -> np.ndarray:
    """Image or CompressedImage message -> RGB uint8 HxWx3 (``fit``: see :func:`compressed_image_to_rgb`)."""
    if msgtype == COMPRESSED_IMAGE:
        return compressed_image_to_rgb(msg, depth_max, fit)
    return raw_image_to_rgb(msg, depth_max)
