# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ROS 2 message types for rosbags: in-place JointState parsing and image decoders for the bag converter.

This package's message types and the typestore that knows them live in :mod:`ove_ros.bag_types` (the
runtime's recorder and bag player need them without the training package) and are re-exported here.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from ove_ros import images

# The message types, typestore and header helpers live on the runtime side (the simulator's recorder and bag
# player use them without the training package); re-exported here for the converter and older callers.
from ove_ros.bag_types import (  # noqa: F401
    COMPRESSED_IMAGE,
    EPISODE_EVENT,
    EVENT_END,
    EVENT_START,
    FLOAT32_ARRAY,
    FLOAT64_ARRAY,
    IMAGE,
    JOINT_STATE,
    MSG_DIR_ENV,
    OUTCOME_FAILURE,
    OUTCOME_SUCCESS,
    OUTCOME_UNKNOWN,
    PACKAGE,
    find_msg_dir,
    has_header,
    make_typestore,
    peek_header_stamp,
    register_bag_types,
    register_package_types,
)


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
    place, which is cheaper than the generic deserializer. (Uniform messages
    in mapped MCAP files skip even this: bag_reader reads their arrays for the whole topic at once.)
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
# Decoders: rosbags image messages -> RGB uint8 (HxWx3). The rules live in ove_ros.images (shared with the
# live node and used by the converter); these keep the older call signatures for the demo and older tests.

UnsupportedImageError = images.ImageError
jpeg_size = images.jpeg_size


def _spec(depth_max: float, fit: tuple[int, int] | None) -> images.ImagePreprocessing:
    return images.ImagePreprocessing(size=fit, depth_max=int(depth_max))


def raw_image_to_rgb(msg, depth_max: float = images.DEFAULT_DEPTH_MAX) -> np.ndarray:
    """``sensor_msgs/Image`` -> RGB uint8 (see :mod:`ove_ros.images`)."""
    return np.ascontiguousarray(images.decode(msg, _spec(depth_max, None)))


def compressed_image_to_rgb(
    msg, depth_max: float = images.DEFAULT_DEPTH_MAX, fit: tuple[int, int] | None = None
) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` -> RGB uint8; ``fit`` ``(width, height)``: a JPEG is decoded at the
    smallest reduced scale still at least that large (the resize itself is left to the caller)."""
    return images.decode(msg, _spec(depth_max, fit))


def image_to_rgb(
    msg, msgtype: str, depth_max: float = images.DEFAULT_DEPTH_MAX, fit: tuple[int, int] | None = None
) -> np.ndarray:
    """Image or CompressedImage message -> RGB uint8 HxWx3 (``fit``: see :func:`compressed_image_to_rgb`)."""
    if msgtype == COMPRESSED_IMAGE:
        return compressed_image_to_rgb(msg, depth_max, fit)
    return raw_image_to_rgb(msg, depth_max)
