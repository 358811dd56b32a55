# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One image path: the same message bytes give the same frame through the bag converter and the live node.

Each case serializes a real rclpy message and feeds its CDR bytes to the converter's per-message decode (both
of its read paths: in place from a mapped MCAP file, and through rosbags' deserializer), and the rclpy
message to the node's conversion with the spec the converter records for the dataset; the arrays must be
identical. A last
test converts a bag into a lossless dataset and checks every stored frame against the node's conversion of the
message it came from, with the spec read back from the dataset.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 Python packages missing: run scripts/setup.sh")
cv2 = pytest.importorskip("cv2")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ove_ros.images import ImagePreprocessing  # noqa: E402
from ove_ros.ros import conversions as conv  # noqa: E402
from ove_ros.training import ros_types  # noqa: E402
from ove_ros.training.bag_config import CameraConfig, load_config  # noqa: E402
from ove_ros.training.bag_reader import _decode_camera, dataset_image_specs  # noqa: E402
from ove_ros.training.contract import read_dataset_image_spec  # noqa: E402

from bag_fixtures import BagSpec, CameraSpec, write_bag  # noqa: E402

RNG = np.random.default_rng(7)
TYPESTORE = ros_types.make_typestore()


def _scene(h: int, w: int) -> np.ndarray:
    """Smooth RGB content, so JPEG and resizing have something to work on."""
    return cv2.GaussianBlur(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 1.5)


def _raw(pixels: np.ndarray, encoding: str, bigendian: bool = False, pad: int = 0) -> Image:
    pixels = np.ascontiguousarray(pixels)
    h, w = pixels.shape[:2]
    rows = pixels.reshape(h, -1).view(np.uint8)
    if pad:
        rows = np.concatenate([rows, np.full((h, pad), 3, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1],
                data=rows.tobytes())
    msg.header.stamp.sec = 12
    return msg


def _compressed(data: bytes, fmt: str) -> CompressedImage:
    msg = CompressedImage(format=fmt, data=bytes(data))
    msg.header.stamp.sec = 12
    return msg


def _depth(h: int, w: int, high: int) -> np.ndarray:
    return RNG.integers(0, high, (h, w)).astype(np.uint16)


RGB = _scene(24, 32)
DEPTH = _depth(24, 32, 6000)
JPEG = cv2.imencode(".jpg", _scene(48, 64))[1].tobytes()
# compressed_depth_image_transport's layout: a 12-byte config header, then the 16-bit PNG
DEPTH_PNG = bytes(12) + cv2.imencode(".png", DEPTH)[1].tobytes()

# (case, message, depth_max, resize [width, height] or None)
CASES = [
    ("rgb8", _raw(RGB, "rgb8"), 65535, None),
    ("rgb8 padded rows", _raw(RGB, "rgb8", pad=5), 65535, None),
    ("rgb8 resized", _raw(RGB, "rgb8"), 65535, [20, 14]),
    ("bgr8", _raw(RGB[..., ::-1], "bgr8"), 65535, None),
    ("rgba8", _raw(np.dstack([RGB, RGB[..., :1]]), "rgba8"), 65535, None),
    ("bgra8 resized", _raw(np.dstack([RGB[..., ::-1], RGB[..., :1]]), "bgra8"), 65535, [16, 12]),
    ("mono8", _raw(RGB[..., 1], "mono8"), 65535, None),
    ("8UC1", _raw(RGB[..., 2], "8UC1"), 65535, None),
    ("8UC3", _raw(RGB[..., ::-1], "8UC3"), 65535, None),
    ("8UC4", _raw(np.dstack([RGB[..., ::-1], RGB[..., :1]]), "8UC4"), 65535, None),
    ("yuv422", _raw(RGB[..., :2], "yuv422"), 65535, None),
    ("yuyv", _raw(RGB[..., :2], "yuyv"), 65535, None),
    ("16UC1", _raw(DEPTH * 9, "16UC1"), 65535, None),
    ("16UC1 depth_max", _raw(DEPTH, "16UC1"), 4000, None),
    ("mono16 big-endian depth_max resized", _raw(DEPTH.astype(">u2"), "mono16", True), 4065, [20, 14]),
    ("jpeg", _compressed(JPEG, "jpeg"), 65535, None),
    ("jpeg resized at 1/2 scale + area", _compressed(JPEG, "rgb8; jpeg compressed bgr8"), 65535, [20, 14]),
    ("jpeg resized at 1/4 scale", _compressed(JPEG, "jpeg"), 65535, [16, 12]),
    ("jpeg without a format", _compressed(JPEG, ""), 65535, [30, 20]),
    ("png", _compressed(cv2.imencode(".png", RGB[..., ::-1])[1], "bgr8; png compressed bgr8"), 65535, None),
    ("png 16-bit", _compressed(cv2.imencode(".png", DEPTH * 9)[1], "mono16; png compressed"), 65535, None),
    ("compressedDepth png", _compressed(DEPTH_PNG, "16UC1; compressedDepth png"), 4000, None),
    ("compressedDepth png resized", _compressed(DEPTH_PNG, "16UC1; compressedDepth"), 5000, [16, 12]),
]


def _converter(msg, depth_max: int, resize: list[int] | None, mapped: bool) -> np.ndarray:
    """The converter's decode of the message's CDR bytes, as read from a bag."""
    cam = CameraConfig(name="cam", topic="/cam", depth_max=float(depth_max), resize=resize)
    msgtype = ros_types.COMPRESSED_IMAGE if isinstance(msg, CompressedImage) else ros_types.IMAGE
    raw = serialize_message(msg)
    return _decode_camera(Path("bag"), cam, msgtype, TYPESTORE, memoryview(raw) if mapped else raw)


@pytest.mark.parametrize("case, msg, depth_max, resize", CASES, ids=[c[0] for c in CASES])
def test_converter_and_node_give_identical_frames(case, msg, depth_max, resize):
    frames = [_converter(msg, depth_max, resize, mapped) for mapped in (True, False)]
    np.testing.assert_array_equal(frames[0], frames[1])
    frame = frames[0]
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and frame.flags.c_contiguous
    if resize is not None:
        assert frame.shape[:2] == (resize[1], resize[0])
    config = load_config(None, [f"cameras=[{{name: cam, topic: /cam, depth_max: {depth_max}}}]"])
    if resize is not None:
        config.cameras[0].resize = resize
    recorded = dataset_image_specs(config, {"cam": frame.shape})["cam"]  # what the dataset says
    assert recorded.size == (frame.shape[1], frame.shape[0]) and recorded.depth_max == depth_max
    received = deserialize_message(serialize_message(msg), type(msg))  # as the node's subscription gets it
    node = conv.to_rgb(received, ImagePreprocessing.from_dict(recorded.to_dict()))
    np.testing.assert_array_equal(node, frame)


def test_converted_dataset_frames_equal_the_nodes_frames(tmp_path):
    """Lossless dataset (PNG frames): every stored frame equals the node's conversion of its source message,
    with the spec read back from the dataset."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from rosbags.rosbag2 import Reader

    from ove_ros.training.bag_to_lerobot import convert_bags

    cams = [
        CameraSpec(name="raw", topic="/raw/image", encoding="bgr8", width=32, height=24),
        CameraSpec(name="jpeg", topic="/jpeg/image", encoding="jpeg", compressed=True, width=64, height=48),
        CameraSpec(name="depth", topic="/depth/image", encoding="16UC1", width=32, height=24),
    ]
    spec = BagSpec(duration_s=0.5, cameras=cams, action_topic=None, pattern="scene")
    bag = write_bag(tmp_path / "rec", spec)
    camera_list = ", ".join(f"{{name: {c.name}, topic: {c.topic}}}" for c in cams)
    config = load_config(None, [
        "fps=30", "task=t", f"cameras=[{camera_list}]", "state={topic: /joint_states, joints: [j1, j2, j3]}",
        "progress=false", "video.use_videos=false", "cameras.1.resize=[20,14]", "cameras.2.depth_max=40000",
    ])
    out = tmp_path / "dataset"
    report = convert_bags([bag], out, "test/parity", config, outcome="success")
    specs = read_dataset_image_spec(out)
    assert specs == {
        "raw": ImagePreprocessing(size=(32, 24)),
        "jpeg": ImagePreprocessing(size=(20, 14)),
        "depth": ImagePreprocessing(size=(32, 24), depth_max=40000),
    }

    messages: dict[str, tuple[np.ndarray, list[bytes]]] = {}
    with Reader(bag) as reader:
        for cam in cams:
            conns = [c for c in reader.connections if c.topic == cam.topic]
            items = [(ros_types.peek_header_stamp(raw), bytes(raw)) for _, _, raw in reader.messages(conns)]
            items.sort(key=lambda item: item[0])
            messages[cam.name] = (np.array([s for s, _ in items]), [r for _, r in items])
    dataset = LeRobotDataset("test/parity", root=out)
    assert dataset.num_frames == report.frames > 10
    for i in range(dataset.num_frames):
        item = dataset[i]
        tick = int(item["source_stamp_ns"])
        for cam in cams:
            stamps, raws = messages[cam.name]
            source = raws[int(np.searchsorted(stamps, tick, side="right")) - 1]
            msg = deserialize_message(source, CompressedImage if cam.compressed else Image)
            live = conv.to_rgb(msg, specs[cam.name])
            stored = (item[f"observation.images.{cam.name}"].numpy() * 255.0).round().astype(np.uint8)
            np.testing.assert_array_equal(stored.transpose(1, 2, 0), live, err_msg=f"frame {i} {cam.name}")


def test_a_dataset_without_a_recorded_spec_reads_as_none(tmp_path):
    assert read_dataset_image_spec(tmp_path) is None
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "ove_ros_episodes.json").write_text('{"format": "ove_ros.episodes.v1"}')
    assert read_dataset_image_spec(tmp_path) is None
    meta = tmp_path / "meta" / "ove_ros_episodes.json"
    meta.write_text('{"image_preprocessing": {"cam": {"size": [1]}}}')
    with pytest.raises(ValueError, match=r"ove_ros_episodes.json, image_preprocessing: camera 'cam'.*size"):
        read_dataset_image_spec(tmp_path)
    # Training reads the contract through the same check: a damaged spec never reaches a checkpoint.
    from ove_ros.training.contract import conversion_contract

    with pytest.raises(ValueError, match=r"image_preprocessing: camera 'cam'.*size"):
        conversion_contract(tmp_path)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8"])
def test_eight_bit_encodings_agree_with_cv_bridge(encoding):
    """An independent reference for the 8-bit layouts (cv_bridge is not used by the package: README)."""
    cv_bridge = pytest.importorskip("cv_bridge")
    layouts = {"rgb8": RGB, "bgr8": RGB[..., ::-1], "rgba8": np.dstack([RGB, RGB[..., :1]]),
               "bgra8": np.dstack([RGB[..., ::-1], RGB[..., :1]]), "mono8": RGB[..., 0]}
    msg = _raw(layouts[encoding], encoding)
    np.testing.assert_array_equal(conv.to_rgb(msg), cv_bridge.CvBridge().imgmsg_to_cv2(msg, "rgb8"))
