# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""rosbag2 -> LeRobot conversion: resampling, episodes, labels, rewards, bad input, atomic output."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ove_ros.training import ros_types  # noqa: E402
from ove_ros.training.bag_config import ConfigError, load_config, load_labels  # noqa: E402
from ove_ros.training.bag_reader import BagContentError, BagReadError, plan_ticks, shrink_image  # noqa: E402
from ove_ros.training.bag_to_lerobot import EPISODES_META, ConversionError, convert_bags, main  # noqa: E402

from bag_fixtures import (  # noqa: E402
    NS,
    START_NS,
    BagSpec,
    CameraSpec,
    EventSpec,
    compressed_image_msg,
    corrupt_bag,
    episode_event_msg,
    expected_rgb,
    header,
    image_msg,
    joint_state_msg,
    message_times,
    truncate_bag,
    write_bag,
)

FPS = 30
TOL = int(1.5 * NS / FPS)
CAMS = [CameraSpec(), CameraSpec(name="wrist", topic="/wrist/image", encoding="bgr8")]


def make_config(*overrides: str, cameras=CAMS, action: bool = True):
    cams = ", ".join(f"{{name: {c.name}, topic: {c.topic}}}" for c in cameras)
    base = [
        f"fps={FPS}",
        "task=pick the cube",
        f"cameras=[{cams}]",
        "state={topic: /joint_states, joints: [j3, j1], velocity: true}",
        "progress=false",
    ]
    if action:
        base.append("action={topic: /joint_command, joints: [a, b]}")
    return load_config(None, base + list(overrides))


def stamps_of(times_s, delay_ns: int = 0) -> np.ndarray:
    return np.array([START_NS + round(t * NS) + delay_ns for t in times_s], dtype=np.int64)


def latest_at_or_before(stamps: np.ndarray, tick: int) -> int | None:
    """Reference implementation of the pick rule, by a plain scan."""
    best = None
    for i, s in enumerate(stamps):
        if s <= tick and tick - s <= TOL and (best is None or s >= stamps[best]):
            best = i
    return best


def read_frames(root: Path) -> pd.DataFrame:
    files = sorted((root / "data").rglob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def assert_nothing_left(parent: Path, output: Path) -> None:
    assert not output.exists()
    leftovers = [p.name for p in parent.iterdir() if p.name.startswith(f".{output.name}.")]
    assert leftovers == [], leftovers


def load_dataset(root: Path, repo_id: str):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset(repo_id, root=root, video_backend="pyav")


# ---------------------------------------------------------------------------------------------------------
# Resampling rule (pure)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 2 * NS), min_size=1, max_size=40), min_size=1, max_size=3),
    st.integers(0, NS),
    st.integers(1, 60),
)
def test_plan_ticks_accounting_and_pick_rule(raw_streams, t0, fps):
    streams = {f"s{i}": np.sort(np.array(s, dtype=np.int64)) for i, s in enumerate(raw_streams)}
    tol = int(1.5 * NS / fps)
    ticks, keep, picks, missing = plan_ticks(t0, 2 * NS, fps, tol, streams)
    assert len(ticks) == (2 * NS - t0) * fps // NS + 1
    assert keep.sum() + (~keep).sum() == len(ticks)
    for key, stamps in streams.items():
        idx = picks[key]
        assert missing[key] == int((idx < 0).sum())
        for tick, i in zip(ticks, idx, strict=True):
            if i >= 0:
                assert stamps[i] <= tick and tick - stamps[i] <= tol
                assert i == len(stamps) - 1 or stamps[i + 1] > tick  # the latest one
            else:
                assert not np.any((stamps <= tick) & (tick - stamps <= tol))
    assert np.array_equal(keep, np.all([picks[k] >= 0 for k in streams], axis=0))


def test_plan_ticks_boundaries():
    period = NS // 10
    # A message exactly `tolerance` old still counts; one nanosecond older does not; a future one never does.
    streams = {"a": np.array([0, 2 * period + 1], dtype=np.int64), "b": np.array([0, 10], dtype=np.int64)}
    ticks, keep, picks, missing = plan_ticks(0, 2 * period, 10, period, streams)
    assert ticks.tolist() == [0, period, 2 * period]
    assert picks["a"].tolist() == [0, 0, -1]  # at 2*period: 0 is too old, 2*period+1 is in the future
    assert picks["b"].tolist() == [0, 1, -1]  # the latest at or before the tick; 2*period-10 > tolerance
    assert keep.tolist() == [True, True, False] and missing == {"a": 1, "b": 1}
    _, keep, picks, _ = plan_ticks(0, 2 * period, 10, 2 * period - 10, streams)
    assert picks["b"].tolist() == [0, 1, 1] and keep.tolist() == [
        True,
        True,
        False,
    ]  # b exactly tolerance old
    assert len(plan_ticks(5, 4, 10, period, streams)[0]) == 0  # empty window


# ---------------------------------------------------------------------------------------------------------
# Image decoding (pure)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "16UC1", "mono16"])
def test_raw_encodings_decode_to_rgb(encoding):
    from bag_fixtures import _layout

    ts = ros_types.make_typestore()
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    msg = image_msg(ts, _layout(rgb, encoding), 1, encoding)
    msg = ts.deserialize_cdr(ts.serialize_cdr(msg, ros_types.IMAGE), ros_types.IMAGE)
    out = ros_types.raw_image_to_rgb(msg)
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    if encoding in ("mono8", "16UC1", "mono16"):
        assert np.array_equal(out, np.repeat(rgb[:, :, :1], 3, axis=2))  # 16-bit: v*257 * 255/65535 == v
    else:
        assert np.array_equal(out, rgb)


def test_16bit_depth_scaling_step_padding_and_big_endian():
    ts = ros_types.make_typestore()
    depth = np.array([[0, 1000, 2000, 5000]], dtype=">u2")  # big endian, 4 px wide
    padded = np.zeros((1, 12), dtype=np.uint8)  # step 12 > 8 bytes of pixels
    padded[0, :8] = depth.view(np.uint8).reshape(-1)
    msg = ts.types[ros_types.IMAGE](
        header=header(ts, 1),
        height=1,
        width=4,
        encoding="16UC1",
        is_bigendian=1,
        step=12,
        data=padded.reshape(-1),
    )
    out = ros_types.raw_image_to_rgb(msg, depth_max=2000.0)
    assert out[0, :, 0].tolist() == [0, 127, 255, 255]  # scaled to [0, depth_max], then clipped


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_images_decode_to_rgb(fmt):
    ts = ros_types.make_typestore()
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    ok, data = cv2.imencode(f".{fmt}", rgb[:, :, ::-1])
    assert ok
    out = ros_types.image_to_rgb(
        compressed_image_msg(ts, data.tobytes(), 1, fmt), ros_types.COMPRESSED_IMAGE
    )
    assert np.abs(out.astype(int) - rgb).max() <= (0 if fmt == "png" else 4)


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_size_is_read_from_the_frame_header(progressive):
    for width, height, channels in ((640, 480, 3), (65, 47, 3), (60, 40, 1)):
        pixels = np.full((height, width, channels), 90, np.uint8).squeeze()
        ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)])
        assert ok and ros_types.jpeg_size(data) == (width, height)
    assert ros_types.jpeg_size(cv2.imencode(".png", np.zeros((4, 4), np.uint8))[1]) is None
    assert ros_types.jpeg_size(data[:4]) is None  # cut short before the frame header
    assert ros_types.jpeg_size(b"\xff\xd8\xff\xda\x00\x02") is None  # scan data without a frame header


def test_jpeg_is_decoded_at_the_smallest_scale_still_larger_than_the_resize():
    ts = ros_types.make_typestore()
    rgb = cv2.resize(np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8), (128, 96))
    msg = compressed_image_msg(ts, cv2.imencode(".jpg", rgb[:, :, ::-1])[1].tobytes(), 1, "jpeg")
    full = ros_types.compressed_image_to_rgb(msg)
    assert full.shape == (96, 128, 3)
    for fit, shape in (((32, 24), (24, 32, 3)), ((33, 24), (48, 64, 3)), ((20, 20), (24, 32, 3)),
                       ((128, 96), (96, 128, 3)), ((10, 5), (12, 16, 3))):
        reduced = ros_types.compressed_image_to_rgb(msg, fit=fit)
        assert reduced.shape == shape, fit
        # what the full decode gives after shrinking to the same size, within JPEG's rounding
        reference = cv2.resize(full, shape[1::-1], interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(reduced.astype(int) - reference).mean() < 4.0, fit
    png = compressed_image_msg(ts, cv2.imencode(".png", rgb)[1].tobytes(), 1, "png")
    assert ros_types.compressed_image_to_rgb(png, fit=(32, 24)).shape == (96, 128, 3)  # no scaled PNG decode


def test_unknown_image_encodings_are_named():
    ts = ros_types.make_typestore()
    msg = image_msg(ts, np.zeros((2, 2), np.uint8), 1, "bayer_rggb8")  # yuv422 decodes now
    with pytest.raises(ros_types.UnsupportedImageError, match="bayer_rggb8"):
        ros_types.raw_image_to_rgb(msg)
    msg = compressed_image_msg(ts, b"\x00" * 8, 1, "h264")
    with pytest.raises(ros_types.UnsupportedImageError, match="h264"):
        ros_types.compressed_image_to_rgb(msg)


def test_package_types_are_registered_from_msg_files():
    ts = ros_types.make_typestore()
    assert {"ove_ros/msg/EpisodeEvent", "ove_ros/msg/ValueEstimate", "ove_ros/msg/Advantage"} <= set(ts.types)
    msg = episode_event_msg(
        ts, 5 * NS + 7, ros_types.EVENT_END, ros_types.OUTCOME_FAILURE, "t", "e"
    )
    raw = ts.serialize_cdr(msg, ros_types.EPISODE_EVENT)
    assert ros_types.peek_header_stamp(raw) == 5 * NS + 7
    back = ts.deserialize_cdr(raw, ros_types.EPISODE_EVENT)
    assert (back.event, back.outcome, back.task, back.END) == (1, 2, "t", 1)


# ---------------------------------------------------------------------------------------------------------
# Conversion


@pytest.mark.parametrize("storage,use_videos", [("mcap", True), ("sqlite3", False)])
def test_single_bag_conversion(tmp_path, storage, use_videos):
    spec = BagSpec(cameras=CAMS)
    bag = write_bag(tmp_path / f"rec_{storage}", spec, storage)
    out = tmp_path / "dataset"
    config = make_config(f"video.use_videos={str(use_videos).lower()}")
    report = convert_bags([bag], out, "test/single", config, outcome="failure")

    # Independent expectation: action has no header, so it is timed by receive time (stamp + delay).
    cam_stamps = stamps_of(message_times(30.0, 1.0))
    joint_times = message_times(100.0, 1.0)
    joint_stamps = stamps_of(joint_times)
    action_times = message_times(30.0, 1.0)
    action_stamps = stamps_of(action_times, spec.receive_delay_ns)
    t0 = max(cam_stamps[0], joint_stamps[0], action_stamps[0])
    t_end = min(cam_stamps[-1], joint_stamps[-1], action_stamps[-1])
    ticks = [t0 + round(k * NS / FPS) for k in range((t_end - t0) * FPS // NS + 1)]
    picks = [
        (
            latest_at_or_before(cam_stamps, t),
            latest_at_or_before(joint_stamps, t),
            latest_at_or_before(action_stamps, t),
        )
        for t in ticks
    ]
    kept = [(t, p) for t, p in zip(ticks, picks, strict=True) if None not in p]
    assert (
        report.ticks == len(ticks) and report.frames == len(kept) and report.dropped == len(ticks) - len(kept)
    )

    ds = load_dataset(out, "test/single")
    assert ds.num_episodes == 1 and ds.num_frames == len(kept)
    kind = "video" if use_videos else "image"
    assert ds.features["observation.images.front"]["dtype"] == kind
    assert tuple(ds.features["observation.images.wrist"]["shape"]) == (24, 32, 3)
    assert ds.features["observation.state"]["names"] == ["j3", "j1"]
    assert tuple(ds.features["observation.velocity"]["shape"]) == (2,)
    assert tuple(ds.features["action"]["shape"]) == (2,)
    assert ds.features["reward"]["dtype"] == "float32" and tuple(ds.features["reward"]["shape"]) == (1,)
    assert ds.features["is_done"]["dtype"] == "bool"

    frames = read_frames(out)
    n = len(kept)
    assert frames["reward"].tolist() == [0.0] * (n - 1) + [-1.0]
    assert frames["is_done"].tolist() == [False] * (n - 1) + [True]
    assert frames["success"].tolist() == [False] * n
    assert frames["source_stamp_ns"].tolist() == [t for t, _ in kept]
    state = np.stack(frames["observation.state"].to_numpy())
    expected_state = [[2 + joint_times[j], 0 + joint_times[j]] for _, (_, j, _) in kept]
    assert np.allclose(state, expected_state, atol=1e-5)
    assert np.allclose(np.stack(frames["observation.velocity"].to_numpy()), [[-2, 0]] * n)
    expected_action = [[action_times[a], -action_times[a]] for _, (_, _, a) in kept]
    assert np.allclose(np.stack(frames["action"].to_numpy()), expected_action, atol=1e-5)

    # Images: lossless storage shows exactly which message each frame took; video is checked approximately.
    for f in (0, n // 2, n - 1):
        item = ds[f]
        seq = kept[f][1][0]
        for c, cam in enumerate(CAMS):
            pixels = item[f"observation.images.{cam.name}"].numpy() * 255.0
            assert pixels.shape == (3, 24, 32)
            colour = pixels.reshape(3, -1).mean(axis=1)
            assert np.allclose(colour, expected_rgb(c, seq), atol=0.5 if not use_videos else 12.0)

    meta = json.loads((out / EPISODES_META).read_text())
    (episode,) = meta["episodes"]
    assert (episode["outcome"], episode["outcome_source"], episode["source_bag"]) == (
        "failure",
        "cli",
        bag.name,
    )
    assert episode["frames"] + episode["dropped_ticks"] == episode["ticks"] == len(ticks)


@pytest.mark.parametrize("size", [(224, 224), (320, 240), (200, 150), (640, 480)])
def test_shrink_image_matches_area_averaging(size):
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    out = shrink_image(smooth, *size)
    reference = cv2.resize(smooth, size, interpolation=cv2.INTER_AREA)
    assert out.shape == reference.shape == (size[1], size[0], 3)
    assert np.abs(out.astype(int) - reference.astype(int)).mean() < 1.0


def test_resized_cameras_are_encoded_at_the_new_size_with_statistics(tmp_path):
    jpeg = CameraSpec(name="jpeg", topic="/jpeg/image", encoding="jpeg", compressed=True, width=64, height=48)
    cams = [*CAMS, jpeg]
    bag = write_bag(tmp_path / "rec", BagSpec(cameras=cams), "mcap")
    out = tmp_path / "dataset"
    # front: a whole factor (32x24 -> 16x12); wrist: not one (32x24 -> 20x14); jpeg: decoded at 1/4 scale
    config = make_config(
        "cameras.0.resize=[16,12]", "cameras.1.resize=[20,14]", "cameras.2.resize=[16,12]",
        "video.stats_every=3", cameras=cams,
    )
    report = convert_bags([bag], out, "test/resized", config, outcome="success")
    ds = load_dataset(out, "test/resized")
    assert ds.num_frames == report.frames
    for c, (cam, shape) in enumerate(zip(cams, [(12, 16, 3), (14, 20, 3), (12, 16, 3)], strict=True)):
        key = f"observation.images.{cam.name}"
        assert ds.features[key]["dtype"] == "video" and tuple(ds.features[key]["shape"]) == shape
        pixels = ds[report.frames // 2][key].numpy() * 255.0
        assert pixels.shape == (3, *shape[:2])
        # green and blue are constant per camera in the fixture (red follows the message number)
        _, green, blue = expected_rgb(c, 0)
        assert np.allclose(pixels[1:].reshape(2, -1).mean(axis=1), [green, blue], atol=6.0)
        stats = ds.meta.stats[key]
        assert np.asarray(stats["mean"]).shape == (3, 1, 1) and 0.0 <= float(np.min(stats["mean"])) <= 1.0
        std = np.asarray(stats["std"]).ravel()
        # red varies over the episode; JPEG's colour conversion lets a little of it into green and blue
        assert std[0] > 0.01 and np.allclose(std[1:], 0.0, atol=0.01 if cam.compressed else 1e-6)


def test_gaps_drop_ticks_and_are_counted_exactly(tmp_path):
    cams = [CameraSpec(gaps=((0.30, 0.55),))]
    bag = write_bag(tmp_path / "gappy", BagSpec(cameras=cams, action_topic=None), "mcap")
    out = tmp_path / "dataset"
    report = convert_bags(
        [bag],
        out,
        "test/gaps",
        make_config("video.use_videos=false", cameras=cams, action=False),
        outcome="success",
    )
    cam_stamps = stamps_of(message_times(30.0, 1.0, cams[0].gaps))
    joint_stamps = stamps_of(message_times(100.0, 1.0))
    t0, t_end = max(cam_stamps[0], joint_stamps[0]), min(cam_stamps[-1], joint_stamps[-1])
    ticks = [t0 + round(k * NS / FPS) for k in range((t_end - t0) * FPS // NS + 1)]
    missing = [t for t in ticks if latest_at_or_before(cam_stamps, t) is None]
    assert len(missing) > 0
    (episode,) = report.episodes
    assert episode.dropped_ticks == len(missing)
    assert episode.dropped_by_stream == {"camera:front": len(missing), "state": 0}
    assert episode.frames + episode.dropped_ticks == episode.ticks == len(ticks)
    stamps = read_frames(out)["source_stamp_ns"].to_numpy()
    assert sorted(set(ticks) - set(stamps.tolist())) == missing  # dropped, never filled
    assert read_frames(out)["reward"].iloc[-1] == 1.0


def test_zero_header_stamps_fall_back_to_receive_time_with_a_warning(tmp_path, caplog):
    spec = BagSpec(cameras=CAMS[:1], action_topic=None, zero_stamp_topics=("/joint_states",))
    bag = write_bag(tmp_path / "zero", spec, "sqlite3")
    config = make_config("video.use_videos=false", cameras=CAMS[:1], action=False)
    with caplog.at_level(logging.WARNING, logger="ove_ros.training.bag_reader"):
        report = convert_bags([bag], tmp_path / "dataset", "test/zero", config, outcome="success")
    assert any(
        "zero header stamp" in r.getMessage() and "/joint_states" in r.getMessage() for r in caplog.records
    )
    state = next(t for t in report.topics if t.stream == "state")
    assert state.zero_stamps == 101 and report.frames > 0


def _event_bag(tmp_path: Path, name: str, storage: str = "mcap") -> Path:
    events = [
        EventSpec(0.10, ros_types.EVENT_START, task="stack", episode_id="ep-a"),
        EventSpec(0.40, ros_types.EVENT_END, ros_types.OUTCOME_SUCCESS, episode_id="ep-a"),
        EventSpec(0.55, ros_types.EVENT_START, episode_id="ep-b"),
        EventSpec(0.90, ros_types.EVENT_END, ros_types.OUTCOME_FAILURE, episode_id="ep-b"),
    ]
    return write_bag(tmp_path / name, BagSpec(cameras=CAMS[:1], action_topic=None, events=events), storage)


def test_video_files_hold_the_configured_number_of_episodes(tmp_path):
    # LeRobot rewrites a camera's whole video file to append an episode; past video.episodes_per_file a new
    # file starts. The frames decode the same either way.
    events = []
    for k in range(5):
        events.append(EventSpec(0.1 + 0.3 * k, ros_types.EVENT_START, episode_id=f"ep{k}"))
        events.append(EventSpec(0.3 + 0.3 * k, ros_types.EVENT_END, ros_types.OUTCOME_SUCCESS))
    spec = BagSpec(cameras=CAMS[:1], action_topic=None, events=events, duration_s=1.7)
    bag = write_bag(tmp_path / "five", spec)
    datasets = {}
    for per_file in (2, None):
        out = tmp_path / f"dataset_{per_file}"
        config = make_config(f"video.episodes_per_file={'null' if per_file is None else per_file}",
                             cameras=CAMS[:1], action=False)
        assert len(convert_bags([bag], out, "test/files", config).episodes) == 5
        datasets[per_file] = load_dataset(out, "test/files")
        videos = sorted((out / "videos" / "observation.images.front").rglob("*.mp4"))
        assert len(videos) == (3 if per_file == 2 else 1), videos
    key = "videos/observation.images.front/file_index"
    assert list(datasets[2].meta.episodes[key]) == [0, 0, 1, 1, 2]
    assert datasets[2].num_frames == datasets[None].num_frames
    for i in range(datasets[2].num_frames):
        a, b = (datasets[k][i]["observation.images.front"] for k in (2, None))
        assert float((a - b).abs().max()) < 1e-6, i
    with pytest.raises(ConfigError, match="episodes_per_file"):
        make_config("video.episodes_per_file=0")


def test_episodes_are_split_by_events(tmp_path):
    bag = _event_bag(tmp_path, "events", "sqlite3")
    out = tmp_path / "dataset"
    config = make_config("video.use_videos=false", cameras=CAMS[:1], action=False)
    report = convert_bags([bag], out, "test/events", config)
    # Ticks run from START to END; every stream is dense, so none is dropped.
    windows = [(0.10, 0.40), (0.55, 0.90)]
    expected = [(round(b * NS) - round(a * NS)) * FPS // NS + 1 for a, b in windows]
    assert [e.frames for e in report.episodes] == expected == [10, 11]
    assert [(e.outcome, e.outcome_source, e.episode_id) for e in report.episodes] == [
        ("success", "event", "ep-a"),
        ("failure", "event", "ep-b"),
    ]
    assert [e.task for e in report.episodes] == ["stack", "pick the cube"]  # event task, else the config's
    frames = read_frames(out)
    assert frames["source_stamp_ns"].min() >= START_NS + round(0.10 * NS)  # nothing before the first START
    stamps = frames["source_stamp_ns"].to_numpy()
    assert not np.any((stamps > START_NS + round(0.40 * NS)) & (stamps < START_NS + round(0.55 * NS)))
    for ep, sign in zip(sorted(frames["episode_index"].unique()), (1.0, -1.0), strict=True):
        rows = frames[frames["episode_index"] == ep]
        assert rows["reward"].tolist() == [0.0] * (len(rows) - 1) + [sign]
        assert rows["is_done"].sum() == 1 and bool(rows["is_done"].iloc[-1])
    ds = load_dataset(out, "test/events")
    assert ds.num_episodes == 2 and ds.num_frames == sum(e.frames for e in report.episodes)
    tasks = set(ds.meta.tasks.index)
    assert tasks == {"stack", "pick the cube"}


def test_episode_without_any_complete_frame_is_left_out_and_reported(tmp_path):
    events = [
        EventSpec(0.10, ros_types.EVENT_START),
        EventSpec(0.30, ros_types.EVENT_END, ros_types.OUTCOME_SUCCESS),
        EventSpec(0.50, ros_types.EVENT_START),
        EventSpec(0.70, ros_types.EVENT_END, ros_types.OUTCOME_FAILURE),
    ]
    cams = [CameraSpec(gaps=((0.40, 0.80),))]  # the camera is silent during the second episode
    bag = write_bag(tmp_path / "silent", BagSpec(cameras=cams, action_topic=None, events=events), "mcap")
    config = make_config("video.use_videos=false", cameras=cams, action=False)
    report = convert_bags([bag], tmp_path / "dataset", "test/silent", config)
    assert [e.outcome for e in report.episodes] == ["success"]
    (reason,) = report.skipped
    assert reason.startswith("silent/1: no complete frame in 7 ticks") and "'camera:front': 7" in reason
    meta = json.loads((tmp_path / "dataset" / EPISODES_META).read_text())
    assert meta["skipped"] == report.skipped and len(meta["episodes"]) == 1


def test_labels_file_overrides_events_and_cli(tmp_path):
    bag_a = _event_bag(tmp_path, "bag_a")
    bag_b = write_bag(tmp_path / "bag_b", BagSpec(cameras=CAMS[:1], action_topic=None), "mcap")
    labels = tmp_path / "labels.csv"
    labels.write_text("key,outcome\nbag_a/ep-b,success\n# comment\n", encoding="utf-8")
    config = make_config("video.use_videos=false", cameras=CAMS[:1], action=False)
    report = convert_bags(
        [bag_a, bag_b],
        tmp_path / "dataset",
        "test/labels",
        config,
        outcome="failure",
        labels=load_labels(labels),
    )
    got = [(e.source_bag, e.outcome, e.outcome_source) for e in report.episodes]
    assert got == [
        ("bag_a", "success", "event"),
        ("bag_a", "success", "labels:bag_a/ep-b"),  # the label beats the END event's failure
        ("bag_b", "failure", "cli"),
    ]
    rewards = read_frames(tmp_path / "dataset").groupby("episode_index")["reward"].last().tolist()
    assert rewards == [1.0, 1.0, -1.0]


def test_unlabelled_episodes_fail_or_are_skipped(tmp_path):
    bag_a = write_bag(tmp_path / "bag_a", BagSpec(cameras=CAMS[:1], action_topic=None), "mcap")
    bag_b = write_bag(tmp_path / "bag_b", BagSpec(cameras=CAMS[:1], action_topic=None), "mcap")
    config = make_config("video.use_videos=false", cameras=CAMS[:1], action=False)
    out = tmp_path / "dataset"
    with pytest.raises(ConversionError, match=r"no outcome: bag_a/0, bag_b/0.*skip_unlabelled=true"):
        convert_bags([bag_a, bag_b], out, "test/unlabelled", config)
    assert_nothing_left(tmp_path, out)
    labels = tmp_path / "labels.yaml"
    labels.write_text("bag_b: failure\n", encoding="utf-8")
    report = convert_bags(
        [bag_a, bag_b], out, "test/unlabelled", config, labels=load_labels(labels), skip_unlabelled=True
    )
    assert [(e.source_bag, e.outcome) for e in report.episodes] == [("bag_b", "failure")]
    assert len(report.skipped) == 1 and "bag_a/0" in report.skipped[0]
    assert load_dataset(out, "test/unlabelled").num_episodes == 1


# ---------------------------------------------------------------------------------------------------------
# Bad input: a named error, and no output left behind


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_damaged_bag_is_named(tmp_path, storage, damage):
    bag = write_bag(
        tmp_path / "broken", BagSpec(cameras=CAMS[:1], action_topic=None, duration_s=2.0), storage
    )
    if damage == "truncated":
        truncate_bag(bag, 0.4)
    else:
        corrupt_bag(bag, 0.3)  # garbage inside the file: some messages can no longer be read
    out = tmp_path / "dataset"
    with pytest.raises(BagReadError, match=r"broken.*(truncated or corrupt)"):
        convert_bags(
            [bag], out, "test/broken", make_config(cameras=CAMS[:1], action=False), outcome="success"
        )
    assert_nothing_left(tmp_path, out)


def test_not_a_bag_is_named(tmp_path):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(BagReadError, match="empty_dir"):
        convert_bags([tmp_path / "empty_dir"], tmp_path / "out", "t/x", make_config(), outcome="success")
    assert_nothing_left(tmp_path, tmp_path / "out")


@pytest.mark.parametrize(
    "case,error,pattern",
    [
        ("missing_topic", BagContentError, r"no topic /wrist/image \(camera wrist\)"),
        ("unknown_encoding", BagContentError, r"camera front .*unsupported image encoding 'bayer_rggb8'"),
        ("absent_joint", BagContentError, r"joint\(s\) \['j3'\] not in /joint_states"),
    ],
)
def test_bad_content_is_named(tmp_path, case, error, pattern):
    spec = BagSpec(cameras=CAMS)
    if case == "missing_topic":
        spec.cameras = CAMS[:1]
    elif case == "unknown_encoding":
        spec.cameras = [CameraSpec(encoding="bayer_rggb8"), CAMS[1]]  # yuv422 decodes now
    elif case == "absent_joint":
        spec.joint_names = ("j1", "j2")
    bag = write_bag(tmp_path / case, spec, "mcap")
    out = tmp_path / "dataset"
    with pytest.raises(error, match=pattern):
        convert_bags([bag], out, "test/bad", make_config(), outcome="success")
    assert_nothing_left(tmp_path, out)


def test_odd_camera_size_for_video_is_named_before_writing(tmp_path):
    odd = [CameraSpec(width=33, height=24), CAMS[1]]
    bag = write_bag(tmp_path / "odd", BagSpec(cameras=odd), "mcap")
    out = tmp_path / "dataset"
    with pytest.raises(ConversionError, match=r"camera front is 33x24.*cameras\.0\.resize=\[34,24\]"):
        convert_bags([bag], out, "test/odd", make_config(cameras=odd), outcome="success")
    assert_nothing_left(tmp_path, out)
    # lossless images have no such constraint
    images = make_config("video.use_videos=false", cameras=odd)
    convert_bags([bag], out, "test/odd", images, outcome="success")
    assert tuple(load_dataset(out, "test/odd").features["observation.images.front"]["shape"][:2]) == (24, 33)


def test_split_by_events_requires_events(tmp_path):
    bag = write_bag(tmp_path / "no_events", BagSpec(cameras=CAMS[:1], action_topic=None), "mcap")
    config = make_config("episodes.split=events", cameras=CAMS[:1], action=False)
    with pytest.raises(BagContentError, match=r"no_events has no topic /episode_events.*split=events"):
        convert_bags([bag], tmp_path / "out", "test/events", config, outcome="success")
    assert_nothing_left(tmp_path, tmp_path / "out")


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    import ove_ros.training.bag_to_lerobot as b2l

    bags = [
        write_bag(tmp_path / f"bag_{i}", BagSpec(cameras=CAMS[:1], action_topic=None), "mcap")
        for i in range(2)
    ]
    real = b2l.iter_frames

    def failing(index, plans, config, typestore):
        for n, item in enumerate(real(index, plans, config, typestore)):
            if index.name == "bag_1" and n == 5:
                raise BagReadError("simulated read failure in the second bag")
            yield item

    monkeypatch.setattr(b2l, "iter_frames", failing)
    out = tmp_path / "dataset"
    config = make_config(cameras=CAMS[:1], action=False)
    with pytest.raises(BagReadError, match="simulated"):
        convert_bags(bags, out, "test/partial", config, outcome="success")  # episode 0 was already saved
    assert_nothing_left(tmp_path, out)


def test_existing_output_is_kept_unless_overwrite(tmp_path):
    bag = write_bag(tmp_path / "rec", BagSpec(cameras=CAMS[:1], action_topic=None), "mcap")
    out = tmp_path / "dataset"
    out.mkdir()
    config = make_config("video.use_videos=false", cameras=CAMS[:1], action=False)
    convert_bags([bag], out, "test/exists", config, outcome="success")  # an empty folder is taken
    first = (out / EPISODES_META).read_text()
    with pytest.raises(ConversionError, match="exists; pass overwrite=true"):
        convert_bags([bag], out, "test/exists", config, outcome="success")
    (out / "marker").write_text("old dataset")
    convert_bags([bag], out, "test/exists", config, outcome="success", overwrite=True)
    assert not (out / "marker").exists() and (out / EPISODES_META).read_text() == first
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dataset.")] == []


# ---------------------------------------------------------------------------------------------------------
# Config, labels and CLI


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="fpz"):
        load_config(None, ["fpz=3"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_config(None, ["fps"])
    with pytest.raises(ConfigError, match=r"video.vcodec must be one of"):
        make_config("video.vcodec=mpeg2")
    with pytest.raises(ConfigError, match=r"joints has duplicates"):
        make_config("state.joints=[a, a]")
    with pytest.raises(ConfigError, match=r"each topic can feed one stream only"):
        make_config("cameras.1.topic=/camera/front/image_raw")
    bad = tmp_path / "labels.csv"
    bad.write_text("bag_a,maybe\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"labels.csv:1: outcome 'maybe'"):
        load_labels(bad)


def test_video_resize_sizes_every_camera_without_its_own():
    config = make_config("video.resize=[32,24]", "cameras.1.resize=[16,12]")
    assert [c.resize for c in config.cameras] == [[32, 24], [16, 12]]
    assert [c.resize for c in make_config().cameras] == [None, None]
    with pytest.raises(ConfigError, match=r"video.resize must be \[width, height\]"):
        make_config("video.resize=[32]")


def test_example_config_loads():
    config = load_config(Path(__file__).resolve().parents[1] / "training/configs/bag_example.yaml")
    assert config.fps == 30 and [c.name for c in config.cameras] == ["corner", "wrist"]
    assert config.episodes.events_topic == "/episode_events" and config.video.vcodec == "h264"


def test_cli_converts_and_reports_errors(tmp_path, capsys):
    bag = _event_bag(tmp_path, "cli_bag")
    config = tmp_path / "bag.yaml"
    config.write_text(
        "fps: 15\ncameras:\n  - {name: front, topic: /camera/front/image_raw}\n"
        "state: {topic: /joint_states, joints: [j1, j2, j3]}\nvideo: {use_videos: false}\n",
        encoding="utf-8",
    )
    out = tmp_path / "dataset"
    args = ["--config", str(config), "--bags", str(bag), "--output", str(out), "--repo-id", "test/cli"]
    code = main(
        [*args[:4], "tolerance_periods=2.0", *args[4:], "--fps", "10", "--task", "stack it", "--no-progress"]
    )
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "Episodes written" in text and "2 episodes" in text
    meta = json.loads((out / EPISODES_META).read_text())
    assert meta["fps"] == 10 and meta["tolerance_periods"] == 2.0
    assert [e["task"] for e in meta["episodes"]] == ["stack", "stack it"]
    code = main(
        [*args[:-4], "--output", str(tmp_path / "other"), "--repo-id", "test/cli", "state.joints=[j9]"]
    )
    assert code == 2
    assert "joint(s) ['j9'] not in /joint_states" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()


def test_opencv_runs_single_threaded_only_while_converting():
    from ove_ros.training.bag_to_lerobot import _single_threaded_opencv

    before = cv2.getNumThreads()
    with pytest.raises(RuntimeError), _single_threaded_opencv():
        assert cv2.getNumThreads() == 1
        raise RuntimeError("conversion failed")
    assert cv2.getNumThreads() == before


def test_conversion_leaves_nothing_in_the_datasets_cache(tmp_path, monkeypatch):
    # Loading the result back makes Arrow copies of its parquet files; they belong to the conversion's scratch
    # folder, not to the shared ~/.cache/huggingface/datasets (one copy per conversion would pile up there).
    import datasets.config

    cache = tmp_path / "hf-datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    bag = write_bag(tmp_path / "bag", BagSpec(cameras=CAMS[:1], action_topic=None, duration_s=0.5))
    config = make_config(cameras=CAMS[:1], action=False)
    convert_bags([bag], tmp_path / "dataset", "test/cache", config, outcome="success")
    assert datasets.config.HF_DATASETS_CACHE == cache  # restored
    assert not cache.exists() or not any(cache.iterdir())
    assert not list(tmp_path.glob(".dataset*"))  # the scratch folder went with the conversion's work folder


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_camera_changing_size_mid_recording_is_named(tmp_path, storage):
    from rosbags.rosbag2 import StoragePlugin, Writer

    typestore = ros_types.make_typestore()
    bag = tmp_path / "resized_midway"
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}[storage]
    with Writer(bag, version=9, storage_plugin=plugin) as writer:
        cam = writer.add_connection(CAMS[0].topic, ros_types.IMAGE, typestore=typestore)
        joints = writer.add_connection("/joint_states", ros_types.JOINT_STATE, typestore=typestore)
        for k in range(30):
            stamp = START_NS + k * NS // FPS
            height, width = (24, 32) if k < 20 else (30, 40)  # the driver switched resolution
            pixels = np.full((height, width, 3), k, np.uint8)
            msg = image_msg(typestore, pixels, stamp, "rgb8")
            writer.write(cam, stamp, typestore.serialize_cdr(msg, ros_types.IMAGE))
            state = joint_state_msg(typestore, stamp, ["j1", "j3"], [0.0, 1.0], [0.0, 0.0])
            writer.write(joints, stamp, typestore.serialize_cdr(state, ros_types.JOINT_STATE))
    config = make_config(cameras=CAMS[:1], action=False)
    out = tmp_path / "dataset"
    changed = r"camera front changed size from \(24, 32, 3\) to \(30, 40, 3\)"
    with pytest.raises(BagContentError, match=changed):
        convert_bags([bag], out, "test/resized", config, outcome="success")
    assert_nothing_left(tmp_path, out)


# ---------------------------------------------------------------------------------------------------------
# Image preprocessing recorded for the live node (ove_ros.images)


def test_depth_max_must_be_a_whole_number_in_the_16bit_range():
    assert make_config("cameras.0.depth_max=4000.0").cameras[0].depth_max == 4000
    needle = r"camera 'front': depth_max must be a whole number in \[1, 65535\]"
    for value in ("4000.5", "0", "70000"):
        with pytest.raises(ConfigError, match=needle):
            make_config(f"cameras.0.depth_max={value}")


def test_the_dataset_records_each_cameras_image_preprocessing(tmp_path):
    from ove_ros.images import ImagePreprocessing
    from ove_ros.training.contract import read_dataset_image_spec

    bag = write_bag(tmp_path / "rec", BagSpec(cameras=CAMS, duration_s=0.3), "mcap")
    config = make_config("cameras.1.resize=[16,12]", "cameras.1.depth_max=4000")
    convert_bags([bag], tmp_path / "dataset", "test/spec", config, outcome="success")
    meta = json.loads((tmp_path / "dataset" / EPISODES_META).read_text())
    assert meta["image_preprocessing"]["wrist"]["size"] == [16, 12]
    assert read_dataset_image_spec(tmp_path / "dataset") == {
        "front": ImagePreprocessing(size=(32, 24)),  # not resized: the recorded size
        "wrist": ImagePreprocessing(size=(16, 12), depth_max=4000),
    }
