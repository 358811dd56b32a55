# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pure conversions between ROS messages and numpy: camera images to RGB uint8, joint states to a vector.

Camera messages are decoded by :mod:`ove_ros.images`, the same code the bag converter uses, so a frame the
node sees equals the dataset frame made from the same message when both use the camera's
``ImagePreprocessing``. cv_bridge is not used: it cannot apply that spec (16-bit scale, JPEG reduced-scale
decode, resize), and the converter has to run without ROS. Every error is a ``ConversionError`` whose text
says what was received and what is accepted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image, JointState

from ove_ros import images
from ove_ros.images import ImagePreprocessing
from ove_ros.joints import joint_order


class ConversionError(ValueError):
    """A message that cannot be turned into model input."""


# ------------------------------------------------------------------------------------------------ images


@contextmanager
def _image_errors() -> Iterator[None]:
    try:
        yield
    except images.ImageError as exc:
        raise ConversionError(str(exc)) from None


def check_frame(msg: Image | CompressedImage) -> None:
    """Cheap header checks of an Image or CompressedImage (encoding or format, size, data length)."""
    with _image_errors():
        images.check(msg)


def to_rgb(msg: Image | CompressedImage, spec: ImagePreprocessing | None = None) -> np.ndarray:
    """Image or CompressedImage -> HxWx3 uint8 RGB as ``spec`` (the camera's, from the bundle) prescribes.

    Without a spec: kept at the size it arrives in, 16-bit scaled by ``v // 257``. rgb8 images that need no
    resize come back as a view of ``msg.data``, not a copy.
    """
    with _image_errors():
        return images.preprocess(msg, spec if spec is not None else images.DEFAULT)


def image_to_rgb(msg: Image, spec: ImagePreprocessing | None = None) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 uint8 RGB; see ``to_rgb``."""
    return to_rgb(msg, spec)


def rgb_to_image(rgb: np.ndarray, stamp: Time | None = None, frame_id: str = "") -> Image:
    """HxWx3 uint8 RGB -> sensor_msgs/Image (rgb8)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConversionError(f"rgb_to_image needs an HxWx3 uint8 array, got {rgb.shape} {rgb.dtype}")
    msg = Image()
    if stamp is not None:
        msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = "rgb8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


# ---------------------------------------------------------------------------------------------- joints


class JointIndex:
    """Maps incoming JointState messages to a fixed joint order; caches the mapping per name list."""

    def __init__(self, joint_names: Sequence[str]):
        if not joint_names:
            raise ValueError("JointIndex needs at least one joint name")
        if len(set(joint_names)) != len(joint_names):
            raise ValueError(f"joint names must be unique, got {list(joint_names)}")
        self.joint_names = tuple(joint_names)
        self._cache_key: tuple[str, ...] | None = None
        self._cache_idx: np.ndarray | None = None

    def indices(self, names: Sequence[str]) -> np.ndarray:
        key = tuple(names)
        if key != self._cache_key:
            indices, missing = joint_order(self.joint_names, key)
            if missing:
                raise ConversionError(
                    f"JointState lacks {len(missing)} of the {len(self.joint_names)} expected joints: "
                    f"{missing}; it names {list(key)[:12]}{' ...' if len(key) > 12 else ''} "
                    "(set joint_names to match)"
                )
            self._cache_idx = indices
            self._cache_key = key
        return self._cache_idx

    def vector(self, msg: JointState) -> np.ndarray:
        """Positions in this index's order (float64); rejects missing joints and non-finite values."""
        idx = self.indices(msg.name)
        position = np.frombuffer(msg.position, dtype=np.float64) if len(msg.position) else np.empty(0)
        if position.size != len(msg.name):
            raise ConversionError(
                f"JointState has {len(msg.name)} names but {position.size} positions; positions are required"
            )
        out = position[idx]
        if not np.all(np.isfinite(out)):
            bad = [self.joint_names[i] for i in np.flatnonzero(~np.isfinite(out))]
            raise ConversionError(f"JointState has non-finite positions (NaN/inf) for joints {bad}")
        return out.copy()


# ----------------------------------------------------------------------------------------------- stamps


def stamp_to_sec(stamp: Time) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def stamp_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds (exact: the frame grid works in them)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int) -> Time:
    """Integer nanoseconds -> builtin_interfaces/Time."""
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))
