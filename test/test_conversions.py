# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Image / CompressedImage / JointState <-> numpy conversions used by the node."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg", reason="ROS 2 message packages missing: run scripts/setup.sh")
cv2 = pytest.importorskip("cv2")

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, JointState  # noqa: E402

from ove_ros.images import ImagePreprocessing  # noqa: E402
from ove_ros.ros import conversions as conv  # noqa: E402

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(6, 5, 3), dtype=np.uint8)


def _image(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: bool = False) -> Image:
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8) if pixels.dtype != np.uint8 else pixels.reshape(h, -1)
    if pad:
        rows = np.concatenate([rows, np.full((h, pad), 7, np.uint8)], axis=1)
    return Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1],
                 data=rows.tobytes())


@pytest.mark.parametrize(
    "encoding, pixels",
    [
        ("rgb8", RGB),
        ("bgr8", RGB[..., ::-1]),
        ("8UC3", RGB[..., ::-1]),
        ("rgba8", np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])),
        ("bgra8", np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9, np.uint8)])),
    ],
)
def test_colour_encodings_give_the_same_rgb(encoding, pixels):
    out = conv.image_to_rgb(_image(pixels, encoding))
    assert out.dtype == np.uint8 and out.shape == RGB.shape
    np.testing.assert_array_equal(out, RGB)


def test_row_padding_is_skipped():
    np.testing.assert_array_equal(conv.image_to_rgb(_image(RGB, "rgb8", pad=3)), RGB)


def test_mono8_is_replicated_to_three_channels():
    mono = RGB[..., 0]
    out = conv.image_to_rgb(_image(mono, "mono8"))
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], mono)


@pytest.mark.parametrize("encoding", ["mono16", "16UC1"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_sixteen_bit_is_scaled_to_eight_bit(encoding, bigendian):
    mono16 = np.array([[0, 257, 65535], [1000, 32768, 65534]], dtype=">u2" if bigendian else "<u2")
    out = conv.image_to_rgb(_image(mono16, encoding, bigendian=bigendian))
    np.testing.assert_array_equal(out[..., 0], [[0, 1, 255], [3, 127, 254]])
    np.testing.assert_array_equal(out[..., 2], out[..., 0])


def test_yuyv_decodes_a_grey_image():
    yuyv = np.tile(np.array([128, 128, 128, 128], np.uint8), (4, 2)).reshape(4, 4, 2)
    out = conv.image_to_rgb(_image(yuyv, "yuv422_yuy2"))
    assert out.shape == (4, 4, 3)
    assert np.all(np.abs(out.astype(int) - 128) <= 2)


@pytest.mark.parametrize(
    "msg, needle",
    [
        (Image(height=2, width=2, encoding="bayer_rggb8", step=2, data=bytes(4)), "unsupported image enc"),
        (Image(height=2, width=2, encoding="rgb8", step=6, data=bytes(5)), "need 12"),
        (Image(height=2, width=2, encoding="rgb8", step=4, data=bytes(8)), "smaller than one row"),
        (Image(height=0, width=2, encoding="rgb8", step=6, data=b""), "empty image"),
    ],
)
def test_bad_images_raise_a_clear_error(msg, needle):
    with pytest.raises(conv.ConversionError, match=needle):
        conv.image_to_rgb(msg)


def test_unsupported_encoding_lists_the_supported_ones():
    with pytest.raises(conv.ConversionError) as err:
        conv.check_frame(Image(height=1, width=1, encoding="32FC1", step=4, data=bytes(4)))
    assert "rgb8" in str(err.value) and "CompressedImage" in str(err.value)


def test_png_round_trip_is_lossless():
    ok, data = cv2.imencode(".png", cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    assert ok
    msg = CompressedImage(format="png", data=data.tobytes())
    np.testing.assert_array_equal(conv.to_rgb(msg), RGB)


def test_jpeg_decodes_close_to_the_source():
    smooth = np.zeros((32, 48, 3), np.uint8)
    smooth[..., 0] = 200
    smooth[..., 1] = np.linspace(0, 255, 48, dtype=np.uint8)[None, :]
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(smooth, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    out = conv.to_rgb(CompressedImage(format="rgb8; jpeg compressed bgr8", data=data.tobytes()))
    assert out.shape == smooth.shape
    assert np.abs(out.astype(int) - smooth.astype(int)).mean() < 4


@pytest.mark.parametrize(
    "fmt, data, needle",
    [
        ("16UC1; compressedDepth rvl", b"\x00" * 20, "RVL"),
        ("32FC1; compressedDepth png", b"\x00" * 20, "inverse depth"),
        ("16UC1; compressedDepth png", b"\x00" * 20, "could not decode"),
        ("webp", b"\x00" * 20, "unsupported compressed format"),
        ("jpeg", b"", "no data"),
        ("jpeg", b"not a jpeg at all", "could not decode"),
    ],
)
def test_bad_compressed_images_raise(fmt, data, needle):
    with pytest.raises(conv.ConversionError, match=needle):
        conv.to_rgb(CompressedImage(format=fmt, data=data))


def test_bad_compressed_images_are_caught_by_the_cheap_check():
    with pytest.raises(conv.ConversionError, match="inverse depth"):
        conv.check_frame(CompressedImage(format="32FC1; compressedDepth", data=bytes(20)))
    with pytest.raises(conv.ConversionError, match="no data"):
        conv.check_frame(CompressedImage(format="jpeg", data=b""))
    conv.check_frame(CompressedImage(format="16UC1; compressedDepth png", data=bytes(20)))  # decoded later


def test_compressed_depth_is_decoded_with_the_specs_depth_range():
    depth = np.array([[0, 1000, 4000, 9000]], np.uint16)
    header = bytes(12)  # compressed_depth_image_transport's config header (format, depth quantization)
    data = header + cv2.imencode(".png", depth)[1].tobytes()
    msg = CompressedImage(format="16UC1; compressedDepth png", data=data)
    out = conv.to_rgb(msg, ImagePreprocessing(depth_max=4000))
    np.testing.assert_array_equal(out[0, :, 0], [0, 63, 255, 255])
    np.testing.assert_array_equal(conv.to_rgb(msg)[0, :, 0], depth[0] // 257)


def test_the_spec_resizes_and_no_spec_keeps_the_size():
    assert conv.to_rgb(_image(RGB, "rgb8")).shape == RGB.shape
    assert conv.to_rgb(_image(RGB, "rgb8"), ImagePreprocessing(size=(5, 6))).shape == RGB.shape
    assert conv.to_rgb(_image(RGB, "bgr8"), ImagePreprocessing(size=(3, 2))).shape == (2, 3, 3)
    assert conv.to_rgb(_image(RGB, "mono8"), ImagePreprocessing(size=(10, 12))).shape == (12, 10, 3)


def test_rgb_to_image_round_trips_with_stamp_and_frame():
    stamp = Time(sec=12, nanosec=345)
    msg = conv.rgb_to_image(RGB, stamp, "cam")
    assert (msg.encoding, msg.height, msg.width, msg.step) == ("rgb8", 6, 5, 15)
    assert msg.header.stamp == stamp and msg.header.frame_id == "cam"
    np.testing.assert_array_equal(conv.image_to_rgb(msg), RGB)
    with pytest.raises(conv.ConversionError):
        conv.rgb_to_image(RGB[..., 0])


def _joints(names, positions) -> JointState:
    return JointState(name=list(names), position=[float(p) for p in positions])


def test_joint_index_follows_the_requested_order():
    msg = _joints(["c", "a", "b", "extra"], [3.0, 1.0, 2.0, 9.0])
    np.testing.assert_array_equal(conv.JointIndex(["a", "b", "c"]).vector(msg), [1.0, 2.0, 3.0])


def test_joint_index_caches_and_adapts_to_a_new_order():
    index = conv.JointIndex(["a", "b"])
    np.testing.assert_array_equal(index.vector(_joints(["b", "a"], [2, 1])), [1, 2])
    np.testing.assert_array_equal(index.vector(_joints(["a", "b"], [5, 6])), [5, 6])


def test_missing_joint_names_are_listed():
    with pytest.raises(conv.ConversionError, match=r"lacks 1 .*\['b'\]"):
        conv.JointIndex(["a", "b"]).vector(_joints(["a", "c"], [1, 2]))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_joint_values_are_rejected(bad):
    with pytest.raises(conv.ConversionError, match=r"non-finite.*\['b'\]"):
        conv.JointIndex(["a", "b"]).vector(_joints(["a", "b"], [0.0, bad]))


def test_non_finite_value_of_an_unused_joint_is_ignored():
    out = conv.JointIndex(["a"]).vector(_joints(["a", "unused"], [0.5, math.nan]))
    np.testing.assert_array_equal(out, [0.5])


def test_joint_state_without_positions_is_rejected():
    with pytest.raises(conv.ConversionError, match="positions"):
        conv.JointIndex(["a"]).vector(JointState(name=["a"]))


def test_stamp_conversions():
    assert conv.stamp_to_sec(Time(sec=3, nanosec=500_000_000)) == 3.5


def test_joint_order_reports_absent_names_and_orders_the_rest():
    from ove_ros.joints import joint_order

    indices, absent = joint_order(["b", "a"], ["a", "b", "c"])
    assert indices.tolist() == [1, 0] and absent == []
    _, absent = joint_order(["a", "z"], ["a", "b"])
    assert absent == ["z"]
