# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pure conversions between ROS messages and numpy: camera images to RGB uint8, joint states to a vector.

Written against the message fields directly (not cv_bridge) because the cv_bridge available from PyPI maps
16-bit encodings wrongly and the distro one is built against a specific NumPy. Every error is a
``ConversionError`` whose text says what was received and what is accepted.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image, JointState

from ove_ros.joints import joint_order


class ConversionError(ValueError):
    """A message that cannot be turned into model input."""


# encoding -> (channels, bytes per channel). 8UC1/8UC3/8UC4 carry no colour order; OpenCV's convention
# (BGR / BGRA) is assumed, as in cv_bridge.
_LAYOUT = {
    "rgb8": (3, 1), "bgr8": (3, 1), "rgba8": (4, 1), "bgra8": (4, 1), "mono8": (1, 1),
    "8UC1": (1, 1), "8UC3": (3, 1), "8UC4": (4, 1),
    "mono16": (1, 2), "16UC1": (1, 2),
    "yuv422": (2, 1), "uyvy": (2, 1), "yuv422_yuy2": (2, 1), "yuyv": (2, 1),
}
_TO_RGB = {
    "bgr8": cv2.COLOR_BGR2RGB, "8UC3": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB, "8UC4": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB, "8UC1": cv2.COLOR_GRAY2RGB,
    "yuv422": cv2.COLOR_YUV2RGB_UYVY, "uyvy": cv2.COLOR_YUV2RGB_UYVY,
    "yuv422_yuy2": cv2.COLOR_YUV2RGB_YUY2, "yuyv": cv2.COLOR_YUV2RGB_YUY2,
}
SUPPORTED_ENCODINGS = tuple(_LAYOUT)
SUPPORTED_COMPRESSED = ("jpeg", "jpg", "png")


# ------------------------------------------------------------------------------------------------ images


def check_image(msg: Image) -> None:
    """Cheap header checks (encoding, size, step, data length) without touching the pixels."""
    layout = _LAYOUT.get(msg.encoding)
    if layout is None:
        raise ConversionError(
            f"unsupported image encoding {msg.encoding!r}; supported: {', '.join(SUPPORTED_ENCODINGS)} "
            "(or publish sensor_msgs/CompressedImage jpeg/png)"
        )
    if msg.height == 0 or msg.width == 0:
        raise ConversionError(f"empty image ({msg.width}x{msg.height})")
    channels, depth = layout
    row = msg.width * channels * depth
    if msg.step < row:
        raise ConversionError(
            f"image step {msg.step} is smaller than one row "
            f"({msg.width} px x {channels * depth} bytes = {row})"
        )
    if len(msg.data) < msg.step * msg.height:
        raise ConversionError(
            f"image data has {len(msg.data)} bytes but {msg.height} rows of step {msg.step} need "
            f"{msg.step * msg.height}"
        )


def image_to_rgb(msg: Image) -> np.ndarray:
    """sensor_msgs/Image -> HxWx3 uint8 RGB.

    rgb8 images come back as a read-only view of ``msg.data`` (no copy: the model's preprocessing copies
    anyway); other encodings as a new array. 16-bit mono images are scaled linearly from the full 0..65535
    range to 0..255 (values / 257).
    """
    check_image(msg)
    channels, depth = _LAYOUT[msg.encoding]
    h, w = msg.height, msg.width
    buf = np.frombuffer(msg.data, dtype=np.uint8, count=msg.step * h).reshape(h, msg.step)
    buf = buf[:, : w * channels * depth]
    if depth == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        mono16 = np.ascontiguousarray(buf).view(dtype).reshape(h, w)
        mono = (mono16 // 257).astype(np.uint8)
        return cv2.cvtColor(mono, cv2.COLOR_GRAY2RGB)
    pixels = buf.reshape(h, w, channels) if channels > 1 else buf.reshape(h, w)
    if msg.encoding == "rgb8":
        return pixels
    return cv2.cvtColor(np.ascontiguousarray(pixels), _TO_RGB[msg.encoding])


def compressed_format(msg: CompressedImage) -> str:
    """The codec named by CompressedImage.format: "jpeg", "png" ("rgb8; jpeg compressed bgr8" -> "jpeg")."""
    fmt = msg.format.lower()
    if "compresseddepth" in fmt:
        raise ConversionError(
            f"compressedDepth images ({msg.format!r}) are not supported; publish a colour or mono image"
        )
    for codec in SUPPORTED_COMPRESSED:
        if codec in fmt:
            return "jpeg" if codec == "jpg" else codec
    if not fmt:
        # Some drivers leave format empty; the decoder recognizes jpeg/png from the data itself.
        return "auto"
    raise ConversionError(f"unsupported compressed format {msg.format!r}; supported: jpeg, png")


def check_compressed(msg: CompressedImage) -> None:
    """Cheap checks of a CompressedImage (format, non-empty data)."""
    compressed_format(msg)
    if len(msg.data) == 0:
        raise ConversionError("compressed image has no data")


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png) -> HxWx3 uint8 RGB."""
    check_compressed(msg)
    data = np.frombuffer(msg.data, dtype=np.uint8)
    rgb = cv2.imdecode(data, cv2.IMREAD_COLOR_RGB)
    if rgb is None:
        raise ConversionError(f"could not decode the {msg.format or 'compressed'} image ({data.size} bytes)")
    return rgb


def to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """Image or CompressedImage -> HxWx3 uint8 RGB."""
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg)
    return image_to_rgb(msg)


def check_frame(msg: Image | CompressedImage) -> None:
    """Image or CompressedImage header checks, see ``check_image`` / ``check_compressed``."""
    if isinstance(msg, CompressedImage):
        check_compressed(msg)
    else:
        check_image(msg)


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
