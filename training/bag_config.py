# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Typed configuration of the rosbag2 -> LeRobot conversion, and the episode labels file.

The YAML file maps topics to dataset features; ``key=value`` overrides (dotted keys, list items by index:
``cameras.0.topic=/cam``) are applied on top. Unknown keys and wrong types are rejected by name. The fields,
their defaults, descriptions and allowed values are read by ``ove_ros.typed_config`` (loading, checks and the
key listing of ``python -m ove_ros.training.bag_config --help``).
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import MISSING

from ove_ros import typed_config
from ove_ros.images import DEFAULT_DEPTH_MAX, ImagePreprocessing
from ove_ros.typed_config import ConfigError, UserError, setting

__all__ = ["BagConversionConfig", "BagConversionError", "ConfigError", "load_config", "load_labels"]

OUTCOMES = ("success", "failure", "truncated")
SPLIT_MODES = ("auto", "events", "bag")
VIDEO_CODECS = ("h264", "hevc", "libsvtav1")

# Any problem of the conversion that the user can fix (the message says what and how); a ConfigError is one.
BagConversionError = UserError


@dataclass
class CameraConfig:
    """One camera topic (sensor_msgs/Image or CompressedImage) -> ``observation.images.<name>``."""

    name: str = setting(MISSING, "Short name: the feature is observation.images.<name>.")
    topic: str = setting(MISSING, "sensor_msgs/Image or CompressedImage topic.")
    depth_max: float = setting(
        DEFAULT_DEPTH_MAX,
        "16-bit images (16UC1, mono16, 16-bit PNG, compressedDepth): v -> min(255, v * 255 // depth_max), a "
        "whole number of the image's units (e.g. 4000 for 4 m of millimetre depth).",
    )
    resize: list[int] | None = setting(
        None, "[width, height] to resize to (ove_ros.images, area_then_linear); null: video.resize."
    )


def image_spec(cam: CameraConfig, size: tuple[int, int] | None = None) -> ImagePreprocessing:
    """The preprocessing of ``cam``'s frames; ``size`` ``(width, height)``, when known, replaces its resize
    (what the dataset records: the frames' size, resized or not, gives the same frames)."""
    if size is None and cam.resize is not None:
        size = (int(cam.resize[0]), int(cam.resize[1]))
    return ImagePreprocessing(size=size, depth_max=int(cam.depth_max))


@dataclass
class JointStateConfig:
    """sensor_msgs/JointState -> ``observation.state`` (positions in ``joints`` order)."""

    topic: str = setting(MISSING, "sensor_msgs/JointState topic.")
    joints: list[str] = setting(MISSING, "Joint names in the order of the state vector.")
    velocity: bool = setting(False, "Also write observation.velocity.")
    effort: bool = setting(False, "Also write observation.effort.")


@dataclass
class ActionConfig:
    """Command topic -> ``action``: JointState (positions by name) or Float64/Float32MultiArray (flat)."""

    topic: str = setting(MISSING, "JointState or Float64/Float32MultiArray command topic.")
    joints: list[str] = setting(
        MISSING, "JointState: the joint names in the order wanted. MultiArray: one name per element."
    )


@dataclass
class EpisodeConfig:
    """How a bag is split into episodes."""

    events_topic: str = setting("/episode_events", "ove_ros/msg/EpisodeEvent topic.")
    split: str = setting(
        "auto",
        "auto: by events when the bag has any on events_topic, else the whole bag is one episode; "
        "events: require events; bag: ignore events, one episode per bag.",
        choices=SPLIT_MODES,
    )


@dataclass
class VideoConfig:
    """Camera storage (trade-offs: training/video_encoder.py, benchmarks/bench_bag_to_lerobot.py)."""

    use_videos: bool = setting(True, "false: PNG images inside the parquet files (lossless, slower, larger).")
    # Full-size video encoding bounds the conversion speed; smaller converts faster (README, Benchmarks).
    resize: list[int] | None = setting(
        None, "[width, height] for every camera without its own resize; null keeps the recorded size."
    )
    vcodec: str = setting("h264", "Video codec (LeRobot's default is libsvtav1).", choices=VIDEO_CODECS)
    streaming_encoding: bool = setting(
        True,
        "Encode while frames arrive with ove_ros' writer (no PNG round trip, never drops a frame); false: "
        "LeRobot's PNG files, encoded per episode at the codec's default preset.",
    )
    # ultrafast encodes much faster than medium and writes larger files (README, Benchmarks).
    preset: str | None = setting(
        "ultrafast", "x264/x265 preset (libsvtav1: 0-13); null: the codec's default."
    )
    crf: int = setting(30, "Constant rate factor (quality; lower is better and larger).", ge=0, le=63)
    gop: int = setting(
        2, "Keyframe interval: 2 keeps random-access decoding during training cheap.", ge=1
    )
    stats_every: int = setting(5, "Image statistics from every n-th frame.", ge=1)
    encoder_threads: int | None = setting(
        None,
        "Codec threads per camera; null: the usable cores shared among the cameras; 0: the codec decides.",
        ge=0,
    )
    encoder_queue_maxsize: int = setting(30, "Frames queued per camera encoder.", ge=1)
    # LeRobot appends an episode to the current file by rewriting the whole file, so a session of many
    # episodes costs time quadratic in this number (60 two-second episodes in one file: 9.5 s of 27 s).
    episodes_per_file: int | None = setting(
        4,
        "Episodes per camera video file; past it a new file starts. null: LeRobot's rule (files <= 200 MB).",
        ge=1,
    )
    image_writer_threads: int = setting(2, "Only without streaming: threads writing the temporary PNG files.")


@dataclass
class BagConversionConfig:
    """Mapping from a recording's topics to a LeRobot dataset, and the resampling rule."""

    fps: int = setting(30, "Frame rate of the dataset: every stream is resampled to this grid.", gt=0)
    tolerance_periods: float = setting(
        1.5,
        "A stream counts as present at a tick when its latest message at or before the tick is at most "
        "tolerance_periods / fps seconds old.",
        gt=0,
    )
    task: str | None = setting(None, "Default task (an EpisodeEvent's task wins).")
    robot_type: str | None = setting(None, "robot_type recorded in the dataset.")
    cameras: list[CameraConfig] = field(
        default_factory=list, metadata={"help": "Camera streams, in order (cameras.<i>.<key>)."}
    )
    state: JointStateConfig | None = setting(None, "Joint state stream (state.topic, state.joints, ...).")
    action: ActionConfig | None = setting(None, "Action stream (action.topic, action.joints).")
    episodes: EpisodeConfig = field(default_factory=EpisodeConfig, metadata={"help": "Episode splitting."})
    video: VideoConfig = field(default_factory=VideoConfig, metadata={"help": "Camera storage."})
    write_success_column: bool = setting(True, "Per-frame bool `success` (the episode's outcome).")
    validate_decode: bool = setting(True, "After writing, decode the last frame of every episode.")
    progress: bool = setting(True, "Show a progress bar.")


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> BagConversionConfig:
    """Read a YAML config (or defaults when ``path`` is None), apply ``key=value`` overrides, validate."""
    config = typed_config.load(
        BagConversionConfig, path, overrides, what="conversion config", example="fps=15"
    )
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
    problems = typed_config.problems(config)  # declared choices and ranges
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
    preset = config.video.preset
    if config.video.vcodec == "libsvtav1" and preset is not None and not str(preset).isdigit():
        problems.append(f"video.preset for libsvtav1 is a number 0-13 (12 is fast), got {preset!r}")
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


if __name__ == "__main__":  # python -m ove_ros.training.bag_config --help: every key, default and description
    print(typed_config.help_text(
        BagConversionConfig,
        "usage: python -m ove_ros.training.bag_to_lerobot config=<yaml> output=<dir> repo_id=<id> <bag> ... "
        "[key=value ...]",
        "Conversion config keys (YAML file or key=value overrides):",
    ))
    sys.exit(0)
