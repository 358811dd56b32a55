# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Typed configuration of the rosbag2 -> LeRobot conversion, and the episode labels file.

The YAML file maps topics to dataset features; ``key=value`` overrides (OmegaConf dotted keys, list items by
index: ``cameras.0.topic=/cam``) are applied on top. Unknown keys and wrong types are rejected by name.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ove_ros.images import DEFAULT_DEPTH_MAX, ImagePreprocessing

OUTCOMES = ("success", "failure", "truncated")
SPLIT_MODES = ("auto", "events", "bag")
VIDEO_CODECS = ("h264", "hevc", "libsvtav1")


class BagConversionError(Exception):
    """Any problem of the conversion that the user can fix (the message says what and how)."""


class ConfigError(BagConversionError):
    """Invalid conversion configuration or labels file."""


@dataclass
class CameraConfig:
    """One camera topic (sensor_msgs/Image or CompressedImage) -> ``observation.images.<name>``."""

    name: str = MISSING
    topic: str = MISSING
    # 16-bit images (16UC1, mono16, 16-bit PNG, compressedDepth): v -> min(255, v * 255 // depth_max), a
    # whole number of the image's units (e.g. 4000 for 4 m of millimetre depth).
    depth_max: float = DEFAULT_DEPTH_MAX
    # Optional [width, height] to resize to (ove_ros.images, area_then_linear); null: video.resize.
    resize: list[int] | None = None


def image_spec(cam: CameraConfig, size: tuple[int, int] | None = None) -> ImagePreprocessing:
    """The preprocessing of ``cam``'s frames; ``size`` ``(width, height)``, when known, replaces its resize
    (what the dataset records: the frames' size, resized or not, gives the same frames)."""
    if size is None and cam.resize is not None:
        size = (int(cam.resize[0]), int(cam.resize[1]))
    return ImagePreprocessing(size=size, depth_max=int(cam.depth_max))


@dataclass
class JointStateConfig:
    """sensor_msgs/JointState -> ``observation.state`` (positions in ``joints`` order)."""

    topic: str = MISSING
    joints: list[str] = MISSING
    velocity: bool = False  # also write observation.velocity
    effort: bool = False  # also write observation.effort


@dataclass
class ActionConfig:
    """Command topic -> ``action``: JointState (positions by name) or Float64/Float32MultiArray (flat)."""

    topic: str = MISSING
    # JointState: the joint names in the order wanted. MultiArray: one name per element (length is checked).
    joints: list[str] = MISSING


@dataclass
class EpisodeConfig:
    """How a bag is split into episodes."""

    events_topic: str = "/episode_events"  # ove_ros/msg/EpisodeEvent
    # auto: split by events when the bag has any on events_topic, else the whole bag is one episode;
    # events: require events; bag: ignore events, one episode per bag.
    split: str = "auto"


@dataclass
class VideoConfig:
    """Camera storage (trade-offs: training/video_encoder.py, benchmarks/bench_bag_to_lerobot.py)."""

    use_videos: bool = True  # false: PNG images inside the parquet files (lossless, slower, larger)
    # [width, height] for every camera without its own ``resize``; null keeps the recorded size. Full-size
    # video encoding bounds the conversion speed; a smaller size converts faster (README, Benchmarks).
    resize: list[int] | None = None
    vcodec: str = "h264"  # h264 | hevc | libsvtav1 (LeRobot's default is libsvtav1)
    # Encode while frames arrive with ove_ros' writer (no PNG round trip, never drops a frame); false:
    # LeRobot's PNG files, encoded per episode at the codec's default preset.
    streaming_encoding: bool = True
    # x264/x265 preset (libsvtav1: 0-13); null: the codec's default. ultrafast encodes much faster than
    # medium and writes larger files (README, Benchmarks); veryfast is in between.
    preset: str | None = "ultrafast"
    crf: int = 30
    gop: int = 2  # keyframe interval: 2 keeps random-access decoding during training cheap
    stats_every: int = 5  # image statistics from every n-th frame
    # Codec threads per camera; null: the usable cores shared among the cameras; 0: the codec decides.
    encoder_threads: int | None = None
    encoder_queue_maxsize: int = 30
    # Episodes per camera video file. LeRobot appends an episode to the current file by rewriting the whole
    # file, so a session of many episodes costs time quadratic in this number (60 two-second episodes in one
    # file: 9.5 s of 27 s); past it a new file starts. null: LeRobot's own rule (files up to 200 MB).
    episodes_per_file: int | None = 4
    image_writer_threads: int = 2  # only without streaming: threads writing the temporary PNG files


@dataclass
class BagConversionConfig:
    """Mapping from a recording's topics to a LeRobot dataset, and the resampling rule."""

    fps: int = 30
    # A stream counts as present at a tick when its latest message at or before the tick is at most
    # tolerance_periods / fps seconds old.
    tolerance_periods: float = 1.5
    task: str | None = None  # default task (an EpisodeEvent's task wins)
    robot_type: str | None = None
    cameras: list[CameraConfig] = field(default_factory=list)
    state: JointStateConfig | None = None
    action: ActionConfig | None = None
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    write_success_column: bool = True  # per-frame bool `success` (the episode's outcome)
    validate_decode: bool = True  # after writing, decode the last frame of every episode
    progress: bool = True


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> BagConversionConfig:
    """Read a YAML config (or defaults when ``path`` is None), apply ``key=value`` overrides, validate."""
    source = str(path) if path is not None else "defaults"
    try:
        cfg = OmegaConf.structured(BagConversionConfig)
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise ConfigError(f"config file {path} does not exist")
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ConfigError(f"config file {path} must hold a mapping, not {type(loaded).__name__}")
            cfg = OmegaConf.merge(cfg, loaded)
        for item in overrides:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"override {item!r} is not of the form key=value (e.g. fps=15)")
            OmegaConf.update(cfg, key.strip(), yaml.safe_load(value), merge=True)
        config = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid conversion config ({source}): {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse YAML ({source}): {exc}") from None
    for cam in config.cameras:  # one place decides each camera's size: its own resize, else video.resize
        if cam.resize is None and config.video.resize is not None:
            cam.resize = list(config.video.resize)
    validate_config(config)
    return config


def _is_size(value: list[int] | None) -> bool:
    """None, or a positive [width, height]."""
    return value is None or (len(value) == 2 and min(value) > 0)


def validate_config(config: BagConversionConfig) -> None:
    """Reject values that would only fail later, naming the key."""
    problems: list[str] = []
    if config.fps <= 0:
        problems.append(f"fps must be positive, got {config.fps}")
    if config.tolerance_periods <= 0:
        problems.append(f"tolerance_periods must be positive, got {config.tolerance_periods}")
    if not config.cameras and config.state is None:
        problems.append("nothing to convert: configure at least one camera or the joint state")
    names = [cam.name for cam in config.cameras]
    for cam in config.cameras:
        if not cam.name or any(ch in cam.name for ch in "./ "):
            problems.append(f"camera name {cam.name!r} must be non-empty without '.', '/' or spaces")
        if names.count(cam.name) > 1:
            problems.append(f"camera name {cam.name!r} is used twice")
        if not (1 <= cam.depth_max <= DEFAULT_DEPTH_MAX and float(cam.depth_max).is_integer()):
            problems.append(
                f"camera {cam.name!r}: depth_max must be a whole number in [1, {DEFAULT_DEPTH_MAX}], "
                f"got {cam.depth_max}"
            )
        if not _is_size(cam.resize):
            problems.append(f"camera {cam.name!r}: resize must be [width, height], got {cam.resize}")
    if not _is_size(config.video.resize):
        problems.append(f"video.resize must be [width, height], got {config.video.resize}")
    topics = [cam.topic for cam in config.cameras]
    topics += [s.topic for s in (config.state, config.action) if s is not None]
    if len(set(topics)) != len(topics):
        problems.append(f"each topic can feed one stream only; configured topics: {topics}")
    for label, stream in (("state", config.state), ("action", config.action)):
        if stream is None:
            continue
        if not stream.joints:
            problems.append(f"{label}.joints is empty: list the joint names in the order wanted")
        elif len(set(stream.joints)) != len(stream.joints):
            problems.append(f"{label}.joints has duplicates: {stream.joints}")
    if config.episodes.split not in SPLIT_MODES:
        problems.append(f"episodes.split must be one of {SPLIT_MODES}, got {config.episodes.split!r}")
    if config.video.vcodec not in VIDEO_CODECS:
        problems.append(f"video.vcodec must be one of {VIDEO_CODECS}, got {config.video.vcodec!r}")
    if config.video.encoder_threads is not None and config.video.encoder_threads < 0:
        problems.append(
            f"video.encoder_threads must be >= 0 (0: the codec decides), got {config.video.encoder_threads}"
        )
    if config.video.episodes_per_file is not None and config.video.episodes_per_file < 1:
        problems.append(f"video.episodes_per_file must be >= 1 or null, got {config.video.episodes_per_file}")
    for name in ("encoder_queue_maxsize", "gop", "stats_every"):
        if getattr(config.video, name) < 1:
            problems.append(f"video.{name} must be >= 1, got {getattr(config.video, name)}")
    preset = config.video.preset
    if config.video.vcodec == "libsvtav1" and preset is not None and not str(preset).isdigit():
        problems.append(f"video.preset for libsvtav1 is a number 0-13 (12 is fast), got {preset!r}")
    if not 0 <= config.video.crf <= 63:
        problems.append(f"video.crf must be in [0, 63], got {config.video.crf}")
    if problems:
        raise ConfigError("invalid conversion config: " + "; ".join(problems))


def parse_outcome(value: object, where: str) -> str:
    """``success``, ``failure`` or ``truncated`` (cut short, no outcome; case-insensitive); anything else is
    an error naming ``where``."""
    text = str(value).strip().lower()
    if text not in OUTCOMES:
        raise ConfigError(f"{where}: outcome {value!r} is not one of {OUTCOMES}")
    return text


def load_labels(path: str | Path) -> dict[str, str]:
    """Episode labels: ``key -> success|failure`` from a CSV (``key,outcome`` rows) or YAML mapping.

    A key is a bag directory name (all its episodes), ``<bag>/<episode_id>``, ``<bag>/<n>`` (the n-th episode
    of the bag, from 0) or a bare episode_id; see ``lookup_label`` for the order they are tried in.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"labels file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    labels: dict[str, str] = {}
    if path.suffix.lower() == ".csv":
        for line_no, row in enumerate(csv.reader(text.splitlines()), start=1):
            cells = [cell.strip() for cell in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if len(cells) != 2:
                raise ConfigError(f"{path}:{line_no}: expected 2 columns 'key,outcome', got {len(cells)}")
            if line_no == 1 and cells[1].lower() == "outcome":
                continue  # header row
            labels[cells[0]] = parse_outcome(cells[1], f"{path}:{line_no}")
    elif path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse labels file {path}: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"labels file {path} must be a mapping 'key: success|failure'")
        for key, value in data.items():
            labels[str(key)] = parse_outcome(value, f"{path} key {key!r}")
    else:
        raise ConfigError(f"labels file {path} must end in .csv, .yaml or .yml")
    return labels


def lookup_label(
    labels: dict[str, str], bag_name: str, episode_id: str, ordinal: int
) -> tuple[str, str] | None:
    """The most specific matching label as ``(key, outcome)``: ``<bag>/<episode_id>``, ``<bag>/<n>``,
    ``<episode_id>``, then ``<bag>``."""
    keys = []
    if episode_id:
        keys.append(f"{bag_name}/{episode_id}")
    keys.append(f"{bag_name}/{ordinal}")
    if episode_id:
        keys.append(episode_id)
    keys.append(bag_name)
    for key in keys:
        if key in labels:
            return key, labels[key]
    return None
