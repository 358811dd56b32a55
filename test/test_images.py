# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""ove_ros.images without ROS: the preprocessing spec, the 16-bit rule, the decoding rules, the resize."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from ove_ros import images  # noqa: E402
from ove_ros.images import ImageError, ImagePreprocessing  # noqa: E402

RNG = np.random.default_rng(0)


def raw(pixels: np.ndarray, encoding: str, bigendian: bool = False, pad: int = 0) -> SimpleNamespace:
    """An Image-like message (the fields decoding reads), as rosbags or mcap_direct hand them over."""
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8)
    if pad:
        rows = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1)
    return SimpleNamespace(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian),
                           step=rows.shape[1], data=rows.reshape(-1).copy())


def compressed(data, fmt: str) -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=np.frombuffer(bytes(data), np.uint8))


def depth_png(depth: np.ndarray, fmt: str = "16UC1; compressedDepth png") -> SimpleNamespace:
    """compressed_depth_image_transport's layout: a 12-byte config header, then a 16-bit PNG."""
    header = np.array([0], "<i4").tobytes() + np.array([0.0, 0.0], "<f4").tobytes()
    return compressed(header + cv2.imencode(".png", depth)[1].tobytes(), fmt)


def smooth_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 2)


# ---------------------------------------------------------------------------------------------------- spec


def test_spec_round_trips_through_json():
    spec = ImagePreprocessing(size=(320, 240), depth_max=4000, jpeg_scaled_decode=False)
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["size"] == [320, 240] and data["decoder"] == images.DECODER
    assert ImagePreprocessing.from_dict(data) == spec
    specs = {"front": spec, "wrist": ImagePreprocessing()}
    assert images.specs_from_dict(json.loads(json.dumps(images.specs_to_dict(specs)))) == specs
    assert ImagePreprocessing.from_dict({}) == images.DEFAULT  # missing keys take the defaults
    numpy_ints = ImagePreprocessing(size=np.array([8, 6]).tolist(), depth_max=np.uint16(4000))
    assert json.loads(json.dumps(numpy_ints.to_dict()))["depth_max"] == 4000


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"size": [320]}, "size must be"),
        ({"size": [0, 240]}, "size must be"),
        ({"size": "320x240"}, "size must be"),
        ({"size": 320}, "size must be"),
        ({"resize": "cubic"}, "resize must be one of"),
        ({"depth_max": 0}, "depth_max must be a whole number"),
        ({"depth_max": 4000.5}, "depth_max must be a whole number"),
        ({"depth_max": 70000}, "depth_max must be a whole number"),
        ({"colour_order": "bgr"}, "colour_order"),
        ({"decoder": "ove_ros.images/0"}, "decoding rules"),
        ({"interpolation": "area"}, r"unknown keys \['interpolation'\]"),
    ],
)
def test_bad_specs_are_rejected_by_name(data, needle):
    with pytest.raises(ImageError, match=needle):
        ImagePreprocessing.from_dict(data)


def test_bad_camera_spec_names_the_camera():
    with pytest.raises(ImageError, match="camera 'wrist'.*depth_max"):
        images.specs_from_dict({"front": {}, "wrist": {"depth_max": -1}})


# ---------------------------------------------------------------------------------------------- 16-bit rule


def test_16bit_rule_is_exact_integer_arithmetic_and_defaults_to_div_257():
    values = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(images.scale_16bit(values), values.astype(np.int64) * 255 // 65535)
    np.testing.assert_array_equal(images.scale_16bit(values.astype(">u2")), values // 257)
    # depth_max 4065: the float32 product v * (255 / depth_max) rounds below the integer result at some values
    out = images.scale_16bit(values, 4065)
    np.testing.assert_array_equal(out, np.minimum(values.astype(np.int64) * 255 // 4065, 255))
    float32 = np.clip(values.astype(np.float32) * np.float32(255.0 / 4065), 0, 255).astype(np.uint8)
    assert (float32 != out).sum() > 0


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_16bit_raw_images_use_the_rule_in_either_byte_order(encoding, bigendian):
    depth = np.array([[0, 1000, 2000, 5000], [3999, 4000, 65535, 16]], dtype=">u2" if bigendian else "<u2")
    spec = ImagePreprocessing(depth_max=4000)
    out = images.preprocess(raw(depth, encoding, bigendian, pad=4), spec)
    assert out.shape == (2, 4, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], [[0, 63, 127, 255], [254, 255, 255, 1]])
    assert (out == out[..., :1]).all()


def test_compressed_depth_png_equals_the_raw_16bit_image():
    depth = RNG.integers(0, 6000, (6, 10)).astype(np.uint16)
    spec = ImagePreprocessing(depth_max=5000)
    expected = images.preprocess(raw(depth, "16UC1"), spec)
    for fmt in ("16UC1; compressedDepth png", "16UC1; compressedDepth", "; compressedDepth png"):
        np.testing.assert_array_equal(images.preprocess(depth_png(depth, fmt), spec), expected)


def test_16bit_png_uses_the_16bit_rule():
    depth = RNG.integers(0, 65536, (5, 6)).astype(np.uint16)
    msg = compressed(cv2.imencode(".png", depth)[1], "mono16; png compressed")
    np.testing.assert_array_equal(images.preprocess(msg)[..., 1], depth // 257)


@pytest.mark.parametrize(
    "fmt, needle",
    [
        ("32FC1; compressedDepth png", "inverse depth"),
        ("16UC1; compressedDepth rvl", "RVL"),
    ],
)
def test_compressed_depth_variants_that_cannot_be_decoded_exactly_are_refused(fmt, needle):
    msg = depth_png(np.zeros((2, 2), np.uint16), fmt)
    with pytest.raises(ImageError, match=needle):
        images.check(msg)
    with pytest.raises(ImageError, match=needle):
        images.preprocess(msg)


# ------------------------------------------------------------------------------------------ decoding rules


@pytest.mark.parametrize(
    "encoding, layout",
    [
        ("rgb8", lambda x: x),
        ("bgr8", lambda x: x[..., ::-1]),
        ("8UC3", lambda x: x[..., ::-1]),
        ("rgba8", lambda x: np.dstack([x, np.full(x.shape[:2], 9, np.uint8)])),
        ("bgra8", lambda x: np.dstack([x[..., ::-1], np.full(x.shape[:2], 9, np.uint8)])),
        ("8UC4", lambda x: np.dstack([x[..., ::-1], np.full(x.shape[:2], 9, np.uint8)])),
    ],
)
def test_colour_orders_all_give_rgb(encoding, layout):
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(images.preprocess(raw(layout(rgb), encoding, pad=2)), rgb)


def test_png_with_alpha_and_grey_png_give_rgb():
    rgb = RNG.integers(0, 256, (4, 6, 3), dtype=np.uint8)
    bgra = np.dstack([rgb[..., ::-1], np.full((4, 6), 50, np.uint8)])
    np.testing.assert_array_equal(images.preprocess(compressed(cv2.imencode(".png", bgra)[1], "png")), rgb)
    grey = rgb[..., 0].copy()
    out = images.preprocess(compressed(cv2.imencode(".png", grey)[1], "mono8; png compressed"))
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, axis=2))


def test_empty_format_is_told_from_the_data():
    rgb = smooth_image(8, 8)
    png = cv2.imencode(".png", rgb[..., ::-1])[1]
    jpg = cv2.imencode(".jpg", rgb[..., ::-1])[1]
    np.testing.assert_array_equal(images.preprocess(compressed(png, "")), rgb)
    expected = images.preprocess(compressed(jpg, "jpeg"))
    np.testing.assert_array_equal(images.preprocess(compressed(jpg, "")), expected)
    with pytest.raises(ImageError, match="neither JPEG nor PNG"):
        images.check(compressed(b"GIF89a....", ""))


def test_jpeg_exif_orientation_is_ignored():
    """A JPEG's pixels as the camera sent them, whatever an EXIF tag says (identical on both sides anyway)."""
    rgb = smooth_image(16, 24)
    data = cv2.imencode(".jpg", rgb[..., ::-1])[1].tobytes()
    # APP1 Exif segment with one IFD0 entry: Orientation (0x0112) = 6 (rotate 90 degrees)
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
    tiff += b"\x00\x00\x00\x00"
    app1 = b"\xff\xe1" + (len(tiff) + 8).to_bytes(2, "big") + b"Exif\x00\x00" + tiff
    rotated = data[:2] + app1 + data[2:]
    opencv = cv2.imdecode(np.frombuffer(rotated, np.uint8), cv2.IMREAD_COLOR)
    assert opencv.shape[:2] == (24, 16)  # OpenCV alone applies the tag
    out = images.preprocess(compressed(rotated, "jpeg"))
    np.testing.assert_array_equal(out, images.preprocess(compressed(data, "jpeg")))
    assert out.shape == (16, 24, 3)


def test_arrays_are_accepted_as_decoded_frames():
    rgb = smooth_image(12, 16)
    assert images.preprocess(rgb) is rgb
    out = images.preprocess(rgb, ImagePreprocessing(size=(8, 6)))
    np.testing.assert_array_equal(out, cv2.resize(rgb, (8, 6), interpolation=cv2.INTER_AREA))
    grey16 = RNG.integers(0, 65536, (3, 4)).astype(np.uint16)
    np.testing.assert_array_equal(images.preprocess(grey16)[..., 2], grey16 // 257)
    with pytest.raises(ImageError, match="HxWx3 uint8"):
        images.preprocess(rgb.astype(np.float32))


@pytest.mark.parametrize(
    "msg, needle",
    [
        (raw(np.zeros((2, 2), np.float32), "32FC1"), "32FC1 depth: publish 16UC1"),
        (raw(np.zeros((2, 3, 2), np.uint8), "yuv422"), "cannot convert"),  # odd width for 4:2:2
        (SimpleNamespace(**{**vars(raw(np.zeros((2, 2, 3), np.uint8), "rgb8")), "data": b"1"}), "need 12"),
        (compressed(b"", "jpeg"), "no data"),
        (compressed(b"not a jpeg", "jpeg"), "could not decode"),
        (compressed(b"\x00" * 8, "h264"), "unsupported compressed format 'h264'"),
    ],
)
def test_bad_messages_raise_one_clear_error(msg, needle):
    with pytest.raises(ImageError, match=needle):
        images.preprocess(msg)


# ----------------------------------------------------------------------------------------------- resize


@pytest.mark.parametrize("size", [(224, 224), (320, 240), (200, 150), (640, 480), (700, 500)])
def test_resize_stays_close_to_area_averaging(size):
    smooth = smooth_image(480, 640)
    out = images.preprocess(smooth, ImagePreprocessing(size=size))
    assert out.shape == (size[1], size[0], 3)
    reference = cv2.resize(smooth, size, interpolation=cv2.INTER_AREA)
    assert np.abs(out.astype(int) - reference.astype(int)).mean() < 1.0


def test_a_spec_at_the_recorded_size_gives_the_same_frames_as_no_resize():
    """The dataset records the frames' size even when the converter kept the recorded one: the node, applying
    that spec, must take the same decode (no JPEG reduced scale at factor 1) and no resize."""
    rgb = smooth_image(48, 64)
    for msg in (compressed(cv2.imencode(".jpg", rgb)[1], "jpeg"), raw(rgb, "bgr8"), raw(rgb, "rgb8", pad=3)):
        np.testing.assert_array_equal(
            images.preprocess(msg, ImagePreprocessing(size=(64, 48))), images.preprocess(msg)
        )


def test_jpeg_is_decoded_at_the_smallest_scale_still_covering_the_size():
    jpg = compressed(cv2.imencode(".jpg", smooth_image(96, 128))[1], "jpeg")
    cases = (((32, 24), (24, 32)), ((33, 24), (48, 64)), ((20, 20), (24, 32)), ((128, 96), (96, 128)))
    for size, decoded in cases:
        assert images.decode(jpg, ImagePreprocessing(size=size)).shape[:2] == decoded, size
        assert images.preprocess(jpg, ImagePreprocessing(size=size)).shape[:2] == size[::-1]
        full = images.decode(jpg, ImagePreprocessing(size=size, jpeg_scaled_decode=False))
        assert full.shape[:2] == (96, 128)
    # the fast path is not bit-identical to a full decode + resize: it is part of the spec for that reason
    fast = images.preprocess(jpg, ImagePreprocessing(size=(20, 14)))
    slow = images.preprocess(jpg, ImagePreprocessing(size=(20, 14), jpeg_scaled_decode=False))
    assert not np.array_equal(fast, slow) and np.abs(fast.astype(int) - slow.astype(int)).mean() < 4.0


def test_results_do_not_depend_on_opencvs_thread_count():
    """The converter runs OpenCV single-threaded, the node with its default pool: same frames."""
    rgb = smooth_image(480, 640)
    jpg = compressed(cv2.imencode(".jpg", rgb)[1], "jpeg")
    specs = [ImagePreprocessing(size=s) for s in ((224, 224), (320, 240), (200, 150), (333, 250))]
    previous = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        single = [images.preprocess(m, s) for s in specs for m in (jpg, rgb)]
        cv2.setNumThreads(max(previous, 4))
        pooled = [images.preprocess(m, s) for s in specs for m in (jpg, rgb)]
    finally:
        cv2.setNumThreads(previous)
    for a, b in zip(single, pooled, strict=True):
        np.testing.assert_array_equal(a, b)
