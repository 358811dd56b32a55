# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Camera messages read straight from mapped MCAP files: same frames as the generic reader, safe fallbacks."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ove_ros.training import bag_reader, ros_types  # noqa: E402
from ove_ros.training.bag_config import load_config  # noqa: E402
from ove_ros.training.bag_reader import BagReadError, index_bag, iter_frames, plan_episodes  # noqa: E402
from ove_ros.training.bag_to_lerobot import convert_bags  # noqa: E402
from ove_ros.training.mcap_direct import McapMessages, image_view  # noqa: E402

from bag_fixtures import (  # noqa: E402
    BagSpec,
    CameraSpec,
    EventSpec,
    image_msg,
    joint_state_msg,
    split_bag,
    storage_file,
    write_bag,
)

CAMS = [
    CameraSpec(name="front", topic="/front/image", encoding="rgb8", width=40, height=30),
    CameraSpec(name="side", topic="/side/image", encoding="bgr8", width=32, height=24),
    CameraSpec(name="depth", topic="/depth/image", encoding="mono16", width=20, height=16),
    CameraSpec(name="wrist", topic="/wrist/image", encoding="jpeg", compressed=True, width=32, height=24),
]


def config(cams=CAMS, *extra: str):
    listed = ", ".join(f"{{name: {c.name}, topic: {c.topic}}}" for c in cams)
    return load_config(None, ["fps=30", "task=t", f"cameras=[{listed}]", "state={topic: /joint_states, "
                              "joints: [j1, j2]}", "progress=false", *extra])


def all_frames(bag: Path, cfg) -> tuple[bool, list[dict[str, np.ndarray]]]:
    typestore = ros_types.make_typestore()
    index = index_bag(bag, cfg, typestore)
    plans = plan_episodes(index, cfg)
    return index.direct_cameras, [features for _, _, features in iter_frames(index, plans, cfg, typestore)]


def test_direct_reads_give_the_generic_readers_frames(tmp_path, monkeypatch):
    spec = BagSpec(cameras=CAMS, duration_s=1.0, pattern="scene", action_topic=None)
    bag = write_bag(tmp_path / "bag", spec)
    cfg = config()
    direct, frames = all_frames(bag, cfg)
    monkeypatch.setattr(bag_reader, "_open_direct", lambda *args: None)
    generic, reference = all_frames(bag, cfg)
    assert (direct, generic) == (True, False)
    assert len(frames) == len(reference) > 20
    for got, want in zip(frames, reference, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
            if key.startswith("observation.images."):
                assert got[key].flags.owndata, key  # never a view of the mapped file


def test_frames_outlive_the_mapping(tmp_path):
    # A frame kept after the conversion's reads must not point into the (closed) mapped file.
    bag = write_bag(tmp_path / "bag", BagSpec(cameras=CAMS[:1], duration_s=0.5, action_topic=None))
    _, frames = all_frames(bag, config(CAMS[:1]))
    image = frames[-1]["observation.images.front"]
    assert image.flags.owndata
    assert int(image.sum()) > 0  # readable


@pytest.mark.parametrize("frame_id", ["", "a", "ab", "abc", "abcd", "front_camera_optical"])
@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "bgra8"])
def test_image_view_reads_the_fields_rosbags_reads(frame_id, encoding):
    typestore = ros_types.make_typestore()
    channels = {"rgb8": 3, "mono16": 2, "bgra8": 4}[encoding]
    pixels = np.arange(5 * 7 * channels, dtype=np.uint8).reshape(5, 7 * channels)
    msg = image_msg(typestore, pixels, 123_456_789_012, encoding, frame_id)
    raw = typestore.serialize_cdr(msg, ros_types.IMAGE)
    want = typestore.deserialize_cdr(raw, ros_types.IMAGE)
    got = image_view(memoryview(raw))
    assert (got.height, got.width, got.encoding, got.step, got.is_bigendian) == (
        want.height, want.width, want.encoding, want.step, want.is_bigendian)
    np.testing.assert_array_equal(got.data, want.data)
    with pytest.raises(ValueError, match="cut short|shorter"):
        image_view(memoryview(raw[: len(raw) - 3]))
    assert image_view(memoryview(b"\x00\x00\x00\x00" + raw[4:])) is None  # big-endian CDR: generic path


def test_rosbag2_compression_falls_back_to_the_generic_reader(tmp_path):
    src = write_bag(tmp_path / "plain", BagSpec(cameras=CAMS[:1], duration_s=0.5, action_topic=None))
    dst = tmp_path / "compressed"
    writer = Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    with Reader(src) as reader, writer:
        conns = {c.id: writer.add_connection(c.topic, c.msgtype, typestore=ros_types.make_typestore())
                 for c in reader.connections}
        for conn, stamp, raw in reader.messages():
            writer.write(conns[conn.id], stamp, raw)
    cfg = config(CAMS[:1])
    direct, frames = all_frames(dst, cfg)
    plain_direct, plain = all_frames(src, cfg)
    assert (direct, plain_direct) == (False, True)
    assert len(frames) == len(plain)
    np.testing.assert_array_equal(frames[3]["observation.images.front"], plain[3]["observation.images.front"])


def test_index_lists_every_message_in_log_time_order(tmp_path):
    bag = write_bag(tmp_path / "bag", BagSpec(cameras=CAMS[:2], duration_s=0.5, action_topic=None))
    direct = McapMessages.open([storage_file(bag)], [c.topic for c in CAMS[:2]])
    try:
        with Reader(bag) as reader:
            declared = {c.topic: c.msgcount for c in reader.connections if c.topic in direct.counts()}
            generic = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()
                       if c.topic in declared]
        assert direct.counts() == declared
        assert np.all(np.diff(direct.log_times) >= 0)
        mine = [(direct.topic_names[direct.topics[i]], int(direct.log_times[i]), bytes(direct.data(i)))
                for i in range(len(direct))]
        assert mine == generic
    finally:
        direct.close()


def test_a_broken_record_where_the_index_points_is_named(tmp_path):
    bag = write_bag(tmp_path / "broken", BagSpec(cameras=CAMS[:1], duration_s=0.5, action_topic=None))
    direct = McapMessages.open([storage_file(bag)], [CAMS[0].topic])
    position = int(direct.positions[len(direct) // 2])
    direct.close()
    with open(storage_file(bag), "r+b") as f:
        f.seek(position)
        f.write(b"\xff")  # the message record's opcode
    with pytest.raises(BagReadError, match=r"broken.*no message record"):
        convert_bags([bag], tmp_path / "out", "test/broken", config(CAMS[:1]), outcome="success")
    assert not (tmp_path / "out").exists()


def both_indexes(bag: Path, cfg, monkeypatch):
    """The index pass through the mapped files and through the generic reader, and the topics the first
    read a whole topic at a time."""
    typestore = ros_types.make_typestore()
    bulk_topics = []
    bulk_topic = bag_reader._bulk_topic

    def spy(direct, topic, *args):
        found = bulk_topic(direct, topic, *args)
        if found is not None:
            bulk_topics.append(topic)
        return found

    with monkeypatch.context() as patch:
        patch.setattr(bag_reader, "_bulk_topic", spy)
        direct = index_bag(bag, cfg, typestore)
    with monkeypatch.context() as patch:
        patch.setattr(bag_reader, "_open_direct", lambda *args: None)
        generic = index_bag(bag, cfg, typestore)
    assert (direct.direct is not None, generic.direct) == (True, None)
    return direct, generic, bulk_topics


def assert_same_index(got, want) -> None:
    assert got.streams.keys() == want.streams.keys()
    for key, stream in want.streams.items():
        mine = got.streams[key]
        for name in ("stamps", "order", "arrival_stamps"):
            np.testing.assert_array_equal(getattr(mine, name), getattr(stream, name), err_msg=f"{key} {name}")
        assert mine.values.keys() == stream.values.keys()
        for feature, values in stream.values.items():
            assert mine.values[feature].dtype == values.dtype == np.float32
            np.testing.assert_array_equal(mine.values[feature], values, err_msg=feature)
        assert (mine.zero_stamps, mine.has_header) == (stream.zero_stamps, stream.has_header)
    assert got.image_shapes == want.image_shapes
    assert got.events == want.events


def test_index_pass_reads_what_the_generic_reader_reads(tmp_path, monkeypatch):
    # Camera stamps and joint states are read a whole topic at a time from the mapped files; MultiArray
    # actions and episode events one by one. Zero stamps fall back to the receive time in both ways.
    events = [EventSpec(0.1, ros_types.EVENT_START, task="pick"),
              EventSpec(0.8, ros_types.EVENT_END, ros_types.OUTCOME_SUCCESS)]
    spec = BagSpec(cameras=CAMS, duration_s=1.0, events=events,
                   zero_stamp_topics=("/joint_states", CAMS[0].topic))
    bag = write_bag(tmp_path / "bag", spec)
    cfg = config(CAMS, "state.velocity=true", "action={topic: /joint_command, joints: [a1, a2]}")
    direct, generic, bulk = both_indexes(bag, cfg, monkeypatch)
    assert_same_index(direct, generic)
    assert sorted(bulk) == sorted(["/joint_states", *(c.topic for c in CAMS)])
    assert direct.streams["state"].zero_stamps == 101 and direct.streams["camera:front"].zero_stamps == 31
    assert len(direct.events) == 2 and "action" in direct.streams


def test_joint_states_whose_layout_changes_are_read_one_by_one(tmp_path, monkeypatch):
    # A driver that reorders its joints (or renames its frame) mid-recording: each message is still picked by
    # name, so the vectors come out in the configured order.
    typestore = ros_types.make_typestore()
    bag = tmp_path / "bag"
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        joints = writer.add_connection("/joint_states", ros_types.JOINT_STATE, typestore=typestore)
        camera = writer.add_connection(CAMS[0].topic, ros_types.IMAGE, typestore=typestore)
        for k in range(60):
            stamp = 1_000_000_000 + k * 10_000_000
            names = ["j1", "j2"] if k % 3 else ["j2", "extra", "j1"]
            position = [k, k + 0.5] if k % 3 else [k + 0.5, -1.0, k]
            msg = joint_state_msg(typestore, stamp, names, position)
            msg.header.frame_id = "base" if k < 30 else "base_link"
            writer.write(joints, stamp, typestore.serialize_cdr(msg, ros_types.JOINT_STATE))
            if k % 3 == 0:
                image = image_msg(typestore, np.zeros((30, 40, 3), np.uint8), stamp, "rgb8")
                writer.write(camera, stamp, typestore.serialize_cdr(image, ros_types.IMAGE))
    direct, generic, bulk = both_indexes(bag, config(CAMS[:1]), monkeypatch)
    assert_same_index(direct, generic)
    assert bulk == [CAMS[0].topic]
    state = direct.streams["state"].values["observation.state"]
    np.testing.assert_array_equal(state, np.stack([np.arange(60), np.arange(60) + 0.5], 1).astype(np.float32))


@pytest.mark.parametrize("frame_id", ["", "a", "abc", "abcd", "base_link"])
@pytest.mark.parametrize("joints", [0, 1, 3, 7])
@pytest.mark.parametrize("with_velocity", [False, True])
def test_joint_state_parser_reads_the_fields_rosbags_reads(frame_id, joints, with_velocity):
    typestore = ros_types.make_typestore()
    names = [f"joint_{k}" * (k + 1) for k in range(joints)]  # names of several lengths: CDR padding
    velocity = np.arange(joints) * -0.25 if with_velocity else ()
    msg = joint_state_msg(typestore, 123_456_789_012, names, np.arange(joints) * 0.5, velocity)
    msg.header.frame_id = frame_id
    raw = typestore.serialize_cdr(msg, ros_types.JOINT_STATE)
    want = typestore.deserialize_cdr(raw, ros_types.JOINT_STATE)
    parser = ros_types.JointStateParser()
    for _ in range(2):  # the second time from the cached names
        got = parser.parse(raw)
        assert got.stamp_ns == 123_456_789_012 and got.name == tuple(want.name)
        for field in ("position", "velocity", "effort"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
    if joints:
        with pytest.raises(ValueError, match="past the end|cut short"):
            ros_types.JointStateParser().parse(raw[: len(raw) - 5])
    assert parser.parse(b"\x00\x00\x00\x00" + raw[4:]) is None  # big-endian CDR: generic path


def test_a_recording_split_over_several_files_reads_like_one(tmp_path, monkeypatch):
    spec = BagSpec(cameras=CAMS, duration_s=1.0, pattern="scene", action_topic=None)
    whole = write_bag(tmp_path / "whole", spec)
    split = split_bag(whole, tmp_path / "split", parts=3)
    cfg = config(CAMS, "state.velocity=true")
    direct, generic, bulk = both_indexes(split, cfg, monkeypatch)
    assert len(direct.direct.paths) == 3
    assert sorted(bulk) == sorted(["/joint_states", *(c.topic for c in CAMS)])
    assert_same_index(direct, generic)
    assert_same_index(direct, index_bag(whole, cfg, ros_types.make_typestore()))
    _, frames = all_frames(split, cfg)
    _, reference = all_frames(whole, cfg)
    assert len(frames) == len(reference) > 20
    for got, want in zip(frames, reference, strict=True):
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
