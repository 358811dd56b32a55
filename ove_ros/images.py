# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Camera message -> RGB frame: the one decoding and resizing path of the bag converter and the live node.

The converter (``training/bag_reader.py``) and the node (``ove_ros/ros/conversions.py``) both call
:func:`preprocess` with a camera's :class:`ImagePreprocessing`, so the same message bytes give the same frame
in the dataset and live. The converter records each camera's spec in the dataset, so whoever deploys a model
trained on it can hand the node exactly what the dataset frames went through.

Messages are read by their fields, so rclpy messages, rosbags messages and in-place views of mapped bags all
work: ``Image`` (height, width, encoding, is_bigendian, step, data), ``CompressedImage`` (format, data).

The rules, versioned by :data:`DECODER`:

* raw encodings :data:`RAW_ENCODINGS`; 8UC3 / 8UC4 carry no colour order and are taken as BGR(A), as
  cv_bridge does; alpha is dropped and grey is copied into three channels;
* 16-bit pixels (mono16, 16UC1, 16-bit PNG, compressedDepth) map to ``min(255, v * 255 // depth_max)`` in
  exact integer arithmetic (the default 65535 gives ``v // 257``);
* CompressedImage: JPEG (decoded as colour; EXIF orientation ignored: the pixels as the camera sent them),
  PNG (as stored: 8 or 16 bit, grey, colour or with alpha), and ``compressedDepth`` PNG of 16UC1 depth (the
  12-byte header of compressed_depth_image_transport skipped). An empty format is told from the data's
  signature;
* resize to ``size`` by ``area_then_linear`` (:func:`shrink_image`); with ``jpeg_scaled_decode`` a JPEG that
  is resized is first decoded by libjpeg at the smallest of 1/2, 1/4, 1/8 scale still at least ``size`` (much
  cheaper than a full decode; not bit-identical to it, which is why the spec names it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

DECODER = "ove_ros.images/1"
RESIZE_METHODS = ("area_then_linear",)
COLOUR_ORDERS = ("rgb",)
DEFAULT_DEPTH_MAX = 65535

# encoding -> (channels, bytes per channel, OpenCV conversion to RGB; None: already RGB)
_RAW: dict[str, tuple[int, int, int | None]] = {
    "rgb8": (3, 1, None),
    "bgr8": (3, 1, cv2.COLOR_BGR2RGB),
    "rgba8": (4, 1, cv2.COLOR_RGBA2RGB),
    "bgra8": (4, 1, cv2.COLOR_BGRA2RGB),
    "mono8": (1, 1, cv2.COLOR_GRAY2RGB),
    "8UC1": (1, 1, cv2.COLOR_GRAY2RGB),
    "8UC3": (3, 1, cv2.COLOR_BGR2RGB),
    "8UC4": (4, 1, cv2.COLOR_BGRA2RGB),
    "mono16": (1, 2, cv2.COLOR_GRAY2RGB),
    "16UC1": (1, 2, cv2.COLOR_GRAY2RGB),
    "yuv422": (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "uyvy": (2, 1, cv2.COLOR_YUV2RGB_UYVY),
    "yuv422_yuy2": (2, 1, cv2.COLOR_YUV2RGB_YUY2),
    "yuyv": (2, 1, cv2.COLOR_YUV2RGB_YUY2),
}
RAW_ENCODINGS = tuple(_RAW)
COMPRESSED_FORMATS = ("jpeg", "png", "16UC1; compressedDepth png")
_COMPRESSED_DEPTH_HEADER = 12  # compressed_depth_image_transport's ConfigHeader: int32 format + 2 float32
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_REDUCED = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
# JPEG start-of-frame markers (baseline, extended, progressive, lossless, ...): they carry the image size.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


class ImageError(ValueError):
    """A camera message or preprocessing spec that cannot be used; says what was found and what works."""


@dataclass(frozen=True)
class ImagePreprocessing:
    """What one camera's messages go through to become frames (see the module docstring for the rules)."""

    size: tuple[int, int] | None = None  # (width, height) of the frames; None keeps the decoded size
    resize: str = "area_then_linear"  # how frames are brought to ``size``
    depth_max: int = DEFAULT_DEPTH_MAX  # 16-bit value that maps to 255
    jpeg_scaled_decode: bool = True  # resized JPEGs are decoded at a reduced scale first
    colour_order: str = "rgb"  # channel order of the frames
    decoder: str = DECODER  # version of the decoding rules

    def __post_init__(self) -> None:
        problems = []
        size = self.size
        if size is not None:
            pair = isinstance(size, tuple | list) and len(size) == 2
            if not pair or not all(_whole(v) and v > 0 for v in size):
                problems.append(f"size must be [width, height] of positive integers or null, got {size!r}")
            else:
                object.__setattr__(self, "size", (int(size[0]), int(size[1])))
        if self.resize not in RESIZE_METHODS:
            problems.append(f"resize must be one of {RESIZE_METHODS}, got {self.resize!r}")
        depth_max = self.depth_max
        if not _whole(depth_max) or not 1 <= depth_max <= 65535:
            problems.append(f"depth_max must be a whole number in [1, 65535], got {depth_max!r}")
        else:
            object.__setattr__(self, "depth_max", int(depth_max))
        if not isinstance(self.jpeg_scaled_decode, bool):
            problems.append(f"jpeg_scaled_decode must be true or false, got {self.jpeg_scaled_decode!r}")
        if self.colour_order not in COLOUR_ORDERS:
            problems.append(f"colour_order must be one of {COLOUR_ORDERS}, got {self.colour_order!r}")
        if self.decoder != DECODER:
            problems.append(
                f"decoder {self.decoder!r} is not this version's {DECODER!r}: the frames were made by other "
                "decoding rules; use the ove_ros version that wrote them or convert the data again"
            )
        if problems:
            raise ImageError("invalid image preprocessing: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (``from_dict`` reads it back)."""
        data = dataclasses.asdict(self)
        data["size"] = list(self.size) if self.size is not None else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImagePreprocessing:
        """Inverse of ``to_dict``; unknown keys are rejected by name, missing ones take the defaults."""
        if not isinstance(data, Mapping):
            raise ImageError(f"image preprocessing must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ImageError(f"image preprocessing has unknown keys {unknown}; known: {sorted(known)}")
        values = dict(data)
        if isinstance(values.get("size"), list):
            values["size"] = tuple(values["size"])
        return cls(**values)


def _whole(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def specs_to_dict(specs: Mapping[str, ImagePreprocessing]) -> dict[str, dict[str, Any]]:
    """``{camera: spec}`` -> JSON-ready ``{camera: spec.to_dict()}``."""
    return {name: spec.to_dict() for name, spec in specs.items()}


def specs_from_dict(data: Mapping[str, Any]) -> dict[str, ImagePreprocessing]:
    """Inverse of :func:`specs_to_dict`; errors name the camera."""
    if not isinstance(data, Mapping):
        raise ImageError(f"per-camera image preprocessing must be a mapping, got {type(data).__name__}")
    specs = {}
    for name, spec in data.items():
        try:
            specs[str(name)] = ImagePreprocessing.from_dict(spec)
        except ImageError as exc:
            raise ImageError(f"camera {name!r}: {exc}") from None
    return specs


DEFAULT = ImagePreprocessing()


# ------------------------------------------------------------------------------------------------ checks


def is_compressed(msg: Any) -> bool:
    """Whether ``msg`` is a CompressedImage (it has ``format``) rather than an Image."""
    return hasattr(msg, "format")


def _buffer(data: Any) -> np.ndarray:
    """A message's ``data`` (bytes, array.array, memoryview, numpy) as a flat uint8 array, without copying."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8)
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def _raw_layout(msg: Any) -> tuple[int, int, int | None]:
    """Header checks of an Image (encoding, size, step, data length) without touching the pixels."""
    layout = _RAW.get(msg.encoding)
    if layout is None:
        hint = " (32FC1 depth: publish 16UC1 millimetres)" if msg.encoding == "32FC1" else ""
        raise ImageError(
            f"unsupported image encoding {msg.encoding!r}{hint}; supported: {', '.join(RAW_ENCODINGS)} "
            "(or publish sensor_msgs/CompressedImage jpeg/png)"
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageError(f"empty image ({width}x{height})")
    channels, depth, _ = layout
    row = width * channels * depth
    if step < row:
        raise ImageError(
            f"image step {step} is smaller than one row ({width} px x {channels * depth} bytes = {row})"
        )
    if len(msg.data) < step * height:
        raise ImageError(
            f"image data has {len(msg.data)} bytes but {height} rows of step {step} need {step * height}"
        )
    return layout


def _codec(fmt: str, data: np.ndarray) -> str:
    """``"jpeg"``, ``"png"`` or ``"depth_png"`` for a CompressedImage format, e.g. ``"rgb8; jpeg compressed
    bgr8"``."""
    text = fmt.lower()
    if "compresseddepth" in text:
        if "rvl" in text:
            raise ImageError(
                f"compressedDepth with RVL ({fmt!r}) is not supported; set the publisher's "
                "compressedDepth format to png"
            )
        if text.split(";")[0].strip() not in ("", "16uc1", "mono16"):
            raise ImageError(
                f"compressedDepth of {fmt.split(';')[0].strip()!r} ({fmt!r}) is not supported (it carries "
                "quantized inverse depth); publish 16UC1 depth"
            )
        return "depth_png"
    if "png" in text:
        return "png"
    if "jpeg" in text or "jpg" in text:
        return "jpeg"
    if not text.strip():  # some drivers leave the format empty: the data says what it is
        head = bytes(data[:8])
        if head[:2] == b"\xff\xd8":
            return "jpeg"
        if head == _PNG_SIGNATURE:
            return "png"
        raise ImageError("compressed image has an empty format and its data is neither JPEG nor PNG")
    raise ImageError(f"unsupported compressed format {fmt!r}; supported: {', '.join(COMPRESSED_FORMATS)}")


def check(msg: Any) -> None:
    """Cheap checks of an Image or CompressedImage header (no decoding); raises ``ImageError``."""
    if is_compressed(msg):
        data = _buffer(msg.data)
        if data.size == 0:
            raise ImageError("compressed image has no data")
        _codec(msg.format, data)
    else:
        _raw_layout(msg)


# ------------------------------------------------------------------------------------------------ pixels


def scale_16bit(values: np.ndarray, depth_max: int = DEFAULT_DEPTH_MAX) -> np.ndarray:
    """uint16 -> uint8: ``min(255, v * 255 // depth_max)``, exact (65535 gives ``v // 257``)."""
    if depth_max == DEFAULT_DEPTH_MAX:  # the same numbers, in 16-bit arithmetic (faster)
        return (values // np.uint16(257)).astype(np.uint8)
    wide = values.astype(np.uint32)
    wide *= 255
    wide //= np.uint32(depth_max)
    np.minimum(wide, 255, out=wide)
    return wide.astype(np.uint8)


def _to_rgb(pixels: np.ndarray, code: int | None, depth_max: int) -> np.ndarray:
    """Decoded uint8 / uint16 pixels -> HxWx3 uint8 RGB by ``code`` (None: already RGB, kept as a view)."""
    if pixels.dtype.kind == "u" and pixels.dtype.itemsize == 2:  # either byte order
        pixels = scale_16bit(pixels, depth_max)
    elif pixels.dtype != np.uint8:
        raise ImageError(f"decoded pixels are {pixels.dtype}; only 8- and 16-bit images are supported")
    if code is None:
        return pixels
    return cv2.cvtColor(np.ascontiguousarray(pixels), code)


def _decode_raw(msg: Any, depth_max: int) -> np.ndarray:
    channels, depth, code = _raw_layout(msg)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    rows = _buffer(msg.data)[: step * height].reshape(height, step)[:, : width * channels * depth]
    if depth == 2:
        dtype = np.dtype(">u2" if msg.is_bigendian else "<u2")
        pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width)
    else:
        pixels = rows.reshape(height, width, channels) if channels > 1 else rows
    return _to_rgb(pixels, code, depth_max)


def jpeg_size(data: Any) -> tuple[int, int] | None:
    """``(width, height)`` from a JPEG's frame header without decoding it; None if there is none."""
    if bytes(data[:2]) != b"\xff\xd8":
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
    ``fit`` in both directions (libjpeg rounds the scaled size up)."""
    for factor in (8, 4, 2):
        if -(-size[0] // factor) >= fit[0] and -(-size[1] // factor) >= fit[1]:
            return factor
    return 1


def _imdecode(data: np.ndarray, flags: int, fmt: str) -> np.ndarray:
    try:
        pixels = cv2.imdecode(data, flags)
    except cv2.error as exc:
        name = fmt or "compressed"
        raise ImageError(f"could not decode the {name} image ({data.size} bytes): {exc}") from None
    if pixels is None:
        raise ImageError(f"could not decode the {fmt or 'compressed'} image ({data.size} bytes)")
    return pixels


def _decode_compressed(msg: Any, spec: ImagePreprocessing) -> np.ndarray:
    data = _buffer(msg.data)
    if data.size == 0:
        raise ImageError("compressed image has no data")
    codec = _codec(msg.format, data)
    if codec == "jpeg":
        flags = cv2.IMREAD_COLOR
        if spec.jpeg_scaled_decode and spec.size is not None and (size := jpeg_size(data)) is not None:
            flags = _REDUCED.get(jpeg_reduction(size, spec.size), flags)
        pixels = _imdecode(data, flags | cv2.IMREAD_IGNORE_ORIENTATION, msg.format)
        return _to_rgb(pixels, cv2.COLOR_BGR2RGB, spec.depth_max)
    if codec == "depth_png":
        if data.size <= _COMPRESSED_DEPTH_HEADER:
            raise ImageError(
                f"compressedDepth image of {data.size} bytes has no PNG after its 12-byte header"
            )
        pixels = _imdecode(data[_COMPRESSED_DEPTH_HEADER:], cv2.IMREAD_UNCHANGED, msg.format)
        if pixels.dtype != np.uint16 or pixels.ndim != 2:
            raise ImageError(
                f"compressedDepth image ({msg.format!r}) decoded to {pixels.dtype} with shape "
                f"{pixels.shape}; expected one 16-bit channel"
            )
        return _to_rgb(pixels, cv2.COLOR_GRAY2RGB, spec.depth_max)
    pixels = _imdecode(data, cv2.IMREAD_UNCHANGED, msg.format)
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    code = {1: cv2.COLOR_GRAY2RGB, 3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}.get(channels)
    if code is None:
        raise ImageError(f"PNG image with {channels} channels is not supported (1, 3 or 4)")
    return _to_rgb(pixels, code, spec.depth_max)


def _decode_array(pixels: np.ndarray, spec: ImagePreprocessing) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        return pixels
    if pixels.ndim == 2 and pixels.dtype in (np.uint8, np.uint16):
        return _to_rgb(pixels, cv2.COLOR_GRAY2RGB, spec.depth_max)
    raise ImageError(
        f"an image array must be HxWx3 uint8 RGB or HxW uint8 / uint16 grey; got {pixels.shape} "
        f"{pixels.dtype}"
    )


def decode(image: Any, spec: ImagePreprocessing = DEFAULT) -> np.ndarray:
    """Image, CompressedImage or array -> HxWx3 uint8 RGB, before the resize (a JPEG to be resized may come
    back at a reduced scale already). rgb8 images and RGB arrays come back as views, not copies."""
    try:
        if isinstance(image, np.ndarray):
            return _decode_array(image, spec)
        if is_compressed(image):
            return _decode_compressed(image, spec)
        return _decode_raw(image, spec.depth_max)
    except cv2.error as exc:  # e.g. a YUV 4:2:2 image of odd width
        raise ImageError(f"cannot convert the image: {exc}") from None


def shrink_image(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``area_then_linear``: area averaging by the largest whole factor, then bilinear for the rest.

    OpenCV's area filter is fast only for whole factors and slow otherwise; averaging by the whole factor
    first leaves a ratio below 2, where bilinear does not alias, and stays within about one grey level of the
    pure area filter. Sizes without a whole factor of at least 2 use the area filter itself.
    """
    h, w = rgb.shape[:2]
    if (w, h) == (width, height):
        return rgb
    k = min(w // width, h // height)
    if k >= 2 and w % k == 0 and h % k == 0:
        rgb = cv2.resize(rgb, (w // k, h // k), interpolation=cv2.INTER_AREA)
        if rgb.shape[1] == width and rgb.shape[0] == height:
            return rgb
        return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def resize(rgb: np.ndarray, spec: ImagePreprocessing = DEFAULT) -> np.ndarray:
    """Bring a decoded frame to ``spec.size`` with ``spec.resize`` (no-op when it already has that size)."""
    if spec.size is None:
        return rgb
    return shrink_image(rgb, *spec.size)


def preprocess(image: Any, spec: ImagePreprocessing = DEFAULT) -> np.ndarray:
    """Image, CompressedImage or array -> the HxWx3 uint8 RGB frame ``spec`` describes."""
    return resize(decode(image, spec), spec)
