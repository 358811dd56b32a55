# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Convert rosbag2 recordings (mcap or sqlite3) into a LeRobot v3.0 dataset with reward and done labels.

    python -m ove_ros.training.bag_to_lerobot config=training/configs/bag_example.yaml \\
        output=data/pick repo_id=local/pick rec/ep0 rec/ep1 [fps=30] \\
        [outcome=success|failure|truncated] [labels=labels.csv] [task="pick up the bottle"] \\
        [key=value ...]

(``--help`` lists every key; the older ``--config``/``--bags``/``--repo-id``/... flags are still read.)

Resampling and episode splitting are described in ``training/bag_reader.py``.

Outcome of an episode, the most specific source first: the labels file (a person's judgement), the END
EpisodeEvent's outcome (the recording's), ``truncated`` for an episode the recording cut short (a START
without an END: a new START or the end of the bag), then ``outcome=`` (a default for the whole run). An
episode with none is an error unless ``skip_unlabelled=true``. Task: the EpisodeEvent's task, else ``task``
from the config (which ``task=`` on the command line sets).

Written per frame, as docs/ARCHITECTURE.md fixes: ``reward`` float32 (1,) is 0 except on the last frame (+1
success, -1 failure), ``is_done`` bool (1,) is true on the last frame only (a truncated episode: reward 0 and
is_done false throughout); also ``success`` bool (1,) (the
episode's outcome) and ``source_stamp_ns`` int64 (1,) (the tick's stamp in the bag, showing dropped ticks as
gaps). ``meta/ove_ros_episodes.json`` keeps per episode its outcome, task, source bag and dropped ticks.

The dataset is built in a temporary folder next to ``output``, loaded back to check it, and only then moved
into place; on any error nothing is left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ove_ros import typed_cli
from ove_ros.images import specs_to_dict
from ove_ros.output_guard import OutputRefused, check_output, is_lerobot_dataset
from ove_ros.training import ros_types
from ove_ros.training.bag_config import (
    OUTCOMES,
    BagConversionConfig,
    BagConversionError,
    load_config,
    load_labels,
    lookup_label,
    parse_outcome,
)
from ove_ros.training.bag_reader import (
    BagIndex,
    EpisodePlan,
    dataset_image_specs,
    index_bag,
    iter_frames,
    plan_episodes,
)
from ove_ros.typed_cli import REQUIRED
from ove_ros.typed_config import ConfigError, setting

log = logging.getLogger(__name__)

EPISODES_META = "meta/ove_ros_episodes.json"
IMAGE_SPEC_KEY = "image_preprocessing"  # in EPISODES_META; read back by ove_ros.training.contract


class ConversionError(BagConversionError):
    """The inputs are readable but cannot make a dataset (no outcome or task, sizes differ, output exists)."""


@dataclass
class EpisodeRecord:
    """One written episode, as stored in ``meta/ove_ros_episodes.json``."""

    episode_index: int
    outcome: str
    success: bool
    outcome_source: str  # "labels:<key>", "event" or "cli"
    task: str
    source_bag: str
    source_path: str
    bag_episode: int
    episode_id: str
    frames: int
    ticks: int
    dropped_ticks: int
    dropped_by_stream: dict[str, int]
    start_stamp_ns: int
    end_stamp_ns: int


@dataclass
class TopicStats:
    topic: str
    stream: str
    messages: int = 0
    span_ns: int = 0
    intervals: int = 0
    zero_stamps: int = 0
    missing_ticks: int = 0

    @property
    def rate_hz(self) -> float:
        return self.intervals * 1e9 / self.span_ns if self.span_ns else 0.0


@dataclass
class ConversionReport:
    output: Path
    episodes: list[EpisodeRecord]
    skipped: list[str]  # "<bag>/<n>: reason"
    topics: list[TopicStats]
    recorded_s: float  # duration of the written episodes in the bags (ticks / fps)
    elapsed_s: float
    fps: int
    meta: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(e.frames for e in self.episodes)

    @property
    def ticks(self) -> int:
        return sum(e.ticks for e in self.episodes)

    @property
    def dropped(self) -> int:
        return sum(e.dropped_ticks for e in self.episodes)


# ---------------------------------------------------------------------------------------------------------
# Labelling


@dataclass
class _Job:
    index: BagIndex
    plans: list[EpisodePlan]
    labels: list[tuple[str, str, str]]  # (outcome, source, task) per plan


def _label_plans(
    indexes: list[BagIndex],
    plans: list[list[EpisodePlan]],
    config: BagConversionConfig,
    labels: dict[str, str],
    default_outcome: str | None,
    skip_unlabelled: bool,
) -> tuple[list[_Job], list[str]]:
    jobs, skipped, unlabelled, untasked = [], [], [], []
    used: set[str] = set()
    for index, bag_plans in zip(indexes, plans, strict=True):
        keep, tags = [], []
        for plan in bag_plans:
            where = f"{plan.bag}/{plan.ordinal}" + (
                f" (episode_id {plan.episode_id})" if plan.episode_id else ""
            )
            if plan.frames == 0:
                # Usually streams on different clocks (sim-time stamps vs a headerless topic's wall time).
                missing = plan.dropped_by_stream
                reason = f"no complete frame in {plan.ticks} ticks (ticks missing per stream: {missing})"
                log.warning("%s: %s; episode left out", where, reason)
                skipped.append(f"{where}: {reason}")
                continue
            found = lookup_label(labels, plan.bag, plan.episode_id, plan.ordinal)
            if found is not None:
                used.add(found[0])
                outcome, source = found[1], f"labels:{found[0]}"
            elif plan.outcome is not None:
                outcome, source = plan.outcome, "event"
            elif plan.cut_short:
                # The recording shows the episode was cut short: scoring it as --outcome would be a guess.
                outcome, source = "truncated", "event"
            elif default_outcome is not None:
                outcome, source = default_outcome, "cli"
            else:
                if skip_unlabelled:
                    log.warning("%s: no outcome; left out (skip_unlabelled)", where)
                    skipped.append(f"{where}: no outcome")
                else:
                    unlabelled.append(where)
                continue
            task = plan.task or config.task
            if not task:
                untasked.append(where)
                continue
            keep.append(plan)
            tags.append((outcome, source, task))
        jobs.append(_Job(index, keep, tags))
    if unlabelled:
        raise ConversionError(
            f"{len(unlabelled)} episode(s) have no outcome: {', '.join(unlabelled[:10])}"
            f"{' ...' if len(unlabelled) > 10 else ''}. Record it in the END EpisodeEvent, pass "
            "labels=<file> or outcome=success|failure|truncated, or skip_unlabelled=true to leave them out."
        )
    if untasked:
        raise ConversionError(
            f"{len(untasked)} episode(s) have no task: {', '.join(untasked[:10])}. Set `task` in the config, "
            "pass task=<text>, or record EpisodeEvent.task."
        )
    unused = sorted(set(labels) - used)
    if unused:
        log.warning("labels not matching any episode (check the keys): %s", unused[:20])
    return jobs, skipped


# ---------------------------------------------------------------------------------------------------------
# Dataset layout


def build_features(config: BagConversionConfig, image_shapes: dict[str, tuple[int, int, int]]) -> dict:
    """LeRobot feature specification for the configured streams."""
    features: dict[str, dict] = {}
    for cam in config.cameras:
        features[f"observation.images.{cam.name}"] = {
            "dtype": "video" if config.video.use_videos else "image",
            "shape": tuple(image_shapes[cam.name]),
            "names": ["height", "width", "channels"],
        }
    if config.state is not None:
        joints = list(config.state.joints)
        features["observation.state"] = {"dtype": "float32", "shape": (len(joints),), "names": joints}
        if config.state.velocity:
            features["observation.velocity"] = {"dtype": "float32", "shape": (len(joints),), "names": joints}
        if config.state.effort:
            features["observation.effort"] = {"dtype": "float32", "shape": (len(joints),), "names": joints}
    if config.action is not None:
        joints = list(config.action.joints)
        features["action"] = {"dtype": "float32", "shape": (len(joints),), "names": joints}
    features["reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    features["is_done"] = {"dtype": "bool", "shape": (1,), "names": None}
    if config.write_success_column:
        features["success"] = {"dtype": "bool", "shape": (1,), "names": None}
    features["source_stamp_ns"] = {"dtype": "int64", "shape": (1,), "names": None}
    return features


def _image_shapes(jobs: list[_Job]) -> dict[str, tuple[int, int, int]]:
    shapes: dict[str, tuple[int, int, int]] = {}
    for job in jobs:
        if not job.plans:
            continue
        for name, shape in job.index.image_shapes.items():
            if shapes.setdefault(name, shape) != shape:
                raise ConversionError(
                    f"camera {name} is {shape[1]}x{shape[0]} in bag {job.index.path} but "
                    f"{shapes[name][1]}x{shapes[name][0]} in an earlier bag; "
                    "set cameras[].resize=[width, height]"
                )
    return shapes


def _check_video_sizes(config: BagConversionConfig, shapes: dict[str, tuple[int, int, int]]) -> None:
    """Video frames are YUV 4:2:0, which needs even sizes: say so before any frame is written."""
    if not config.video.use_videos:
        return
    for i, cam in enumerate(config.cameras):
        height, width = shapes.get(cam.name, (2, 2, 3))[:2]
        if height % 2 or width % 2:
            raise ConversionError(
                f"camera {cam.name} is {width}x{height}, but video needs an even width and height; set "
                f"cameras.{i}.resize=[{width + width % 2},{height + height % 2}] or video.use_videos=false"
            )


def label_episode(buffer: dict, outcome: str) -> None:
    """Set a finished episode's reward / is_done (and success, when present) columns in a LeRobot episode
    buffer, before ``save_episode``: reward 0 except the last frame (+1 success, -1 failure), is_done on the
    last frame only. A ``truncated`` episode (cut short, outcome unknown) has reward 0 and is_done False on
    every frame: training leaves it out of the value targets and labels its advantages as cut short.

    Shape-(1,) columns are stored as scalars: LeRobot 0.4.4 keeps them as (1,) arrays and its parquet encoder
    then calls float() on them, which NumPy >= 2.4 rejects; scalars encode to the same column.
    """
    if outcome not in ("success", "failure", "truncated"):
        raise ValueError(f"outcome {outcome!r} is not success, failure or truncated")
    n = buffer["size"]
    reward = np.zeros(n, dtype=np.float32)
    done = outcome != "truncated"
    if done:
        reward[-1] = 1.0 if outcome == "success" else -1.0
    buffer["reward"] = list(reward)
    buffer["is_done"] = list((np.arange(n) == n - 1) & done)
    if "success" in buffer:
        buffer["success"] = [np.bool_(outcome == "success")] * n


def _create_dataset(root: Path, repo_id: str, config: BagConversionConfig, features: dict):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from ove_ros.training.lerobot_compat import set_video_writer
    from ove_ros.training.video_encoder import EncoderSettings, StreamingVideoWriter

    video = config.video
    streaming = video.use_videos and video.streaming_encoding
    dataset = LeRobotDataset.create(
        repo_id=repo_id,
        fps=config.fps,
        features=features,
        root=root,
        robot_type=config.robot_type,
        use_videos=video.use_videos,
        image_writer_threads=0 if streaming else video.image_writer_threads,
        vcodec=video.vcodec,
        encoder_threads=video.encoder_threads,
    )
    if streaming:
        # Not LeRobot's streaming encoder (built for live capture: drops frames, no h264 preset).
        set_video_writer(dataset, StreamingVideoWriter(config.fps, EncoderSettings.from_config(video)))
    return dataset


class _VideoFileLimit:
    """Keeps each camera's video files to about ``episodes`` episodes.

    LeRobot starts a new video file once the current one would reach ``video_files_size_in_mb``, and otherwise
    appends the episode by rewriting the whole file (lerobot 0.4.4), which makes long sessions quadratic. The
    limit is set after every episode to ``episodes + 0.5`` times the largest episode seen (per camera, in the
    MiB LeRobot measures), so that the rule cuts files after about ``episodes`` episodes.
    """

    def __init__(self, episodes: int | None) -> None:
        self.episodes = episodes
        self.largest_mb = 0.0
        self._sizes: dict[str, int] = {}

    def episode_saved(self, dataset) -> None:
        if self.episodes is None:
            return
        videos = Path(dataset.root) / "videos"
        for key in dataset.meta.video_keys:
            size = sum(f.stat().st_size for f in (videos / key).rglob("*.mp4"))
            self.largest_mb = max(self.largest_mb, (size - self._sizes.get(key, 0)) / 2**20)
            self._sizes[key] = size
        if self.largest_mb > 0:
            from ove_ros.training.lerobot_compat import set_video_file_limit

            set_video_file_limit(dataset, (self.episodes + 0.5) * self.largest_mb)


def _write(dataset, jobs: list[_Job], config: BagConversionConfig, typestore) -> list[EpisodeRecord]:
    from tqdm import tqdm

    from ove_ros.training.lerobot_compat import images_not_embedded

    records: list[EpisodeRecord] = []
    files = _VideoFileLimit(config.video.episodes_per_file if config.video.use_videos else None)
    total = sum(plan.frames for job in jobs for plan in job.plans)
    with tqdm(total=total, unit="frame", desc="converting", disable=not config.progress) as bar:
        for job in jobs:
            if not job.plans:
                continue
            bar.set_postfix_str(job.index.name)
            for p, i, features in iter_frames(job.index, job.plans, config, typestore):
                plan = job.plans[p]
                outcome, source, task = job.labels[p]
                frame = dict(features)
                frame["task"] = task
                frame["reward"] = np.zeros(1, dtype=np.float32)
                frame["is_done"] = np.zeros(1, dtype=bool)
                if config.write_success_column:
                    frame["success"] = np.zeros(1, dtype=bool)
                frame["source_stamp_ns"] = np.array([plan.tick_stamps[i]], dtype=np.int64)
                dataset.add_frame(frame)
                bar.update(1)
                if i == plan.frames - 1:
                    index = len(records)
                    buffer = dataset.episode_buffer
                    label_episode(buffer, outcome)
                    buffer["source_stamp_ns"] = [np.int64(v[0]) for v in buffer["source_stamp_ns"]]
                    with images_not_embedded(dataset):
                        dataset.save_episode()
                    files.episode_saved(dataset)
                    records.append(
                        EpisodeRecord(
                            episode_index=index,
                            outcome=outcome,
                            success=outcome == "success",
                            outcome_source=source,
                            task=task,
                            source_bag=plan.bag,
                            source_path=str(plan.bag_path),
                            bag_episode=plan.ordinal,
                            episode_id=plan.episode_id,
                            frames=plan.frames,
                            ticks=plan.ticks,
                            dropped_ticks=plan.dropped,
                            dropped_by_stream=dict(plan.dropped_by_stream),
                            start_stamp_ns=int(plan.start_ns),
                            end_stamp_ns=int(plan.end_ns),
                        )
                    )
    return records


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def validate_dataset(
    root: Path, repo_id: str, records: list[EpisodeRecord], decode: bool, scratch: Path
) -> None:
    """Load the written dataset back and check episode and frame counts (and decode each last frame).

    ``scratch``: a folder the caller removes afterwards, for the Arrow copies that loading makes."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    with warnings.catch_warnings(), _datasets_cache(scratch):
        warnings.simplefilter("ignore", UserWarning)  # torchvision's pyav deprecation notice
        dataset = LeRobotDataset(repo_id, root=root, video_backend="pyav")
        expected = sum(r.frames for r in records)
        if dataset.num_episodes != len(records) or dataset.num_frames != expected:
            raise ConversionError(
                f"the written dataset has {dataset.num_episodes} episodes / {dataset.num_frames} frames, "
                f"expected {len(records)} / {expected}"
            )
        lengths = [int(n) for n in dataset.meta.episodes["length"]]
        if lengths != [r.frames for r in records]:
            raise ConversionError(f"episode lengths {lengths} differ from {[r.frames for r in records]}")
        if decode:
            ends = np.cumsum(lengths) - 1
            for record, last in zip(records, ends, strict=True):
                item = dataset[int(last)]
                done = record.outcome != "truncated"
                reward = float(item["reward"])
                wrong_reward = (reward > 0) != record.success or (reward == 0) == done
                if bool(item["is_done"]) is not done or wrong_reward:
                    raise ConversionError(
                        f"episode {record.episode_index}: last frame has wrong reward/is_done"
                    )


@contextlib.contextmanager
def _datasets_cache(folder: Path):
    """LeRobot loads parquet files through ``datasets``, which writes an Arrow copy of them into
    ~/.cache/huggingface/datasets and never removes it. The check after a conversion needs that copy only
    while it runs: left in the shared cache, one piles up per conversion."""
    import datasets.config

    previous = datasets.config.HF_DATASETS_CACHE
    datasets.config.HF_DATASETS_CACHE = Path(folder)
    try:
        yield
    finally:
        datasets.config.HF_DATASETS_CACHE = previous


def _topic_stats(indexes: list[BagIndex], records: list[EpisodeRecord]) -> list[TopicStats]:
    stats: dict[str, TopicStats] = {}
    for index in indexes:
        for key, stream in index.streams.items():
            entry = stats.setdefault(key, TopicStats(stream.topic, key))
            entry.messages += len(stream.stamps)
            entry.intervals += max(len(stream.stamps) - 1, 0)
            entry.span_ns += int(stream.stamps[-1] - stream.stamps[0])
            entry.zero_stamps += stream.zero_stamps
    for record in records:
        for key, count in record.dropped_by_stream.items():
            stats[key].missing_ticks += count
    return list(stats.values())


# ---------------------------------------------------------------------------------------------------------
# Entry points


def convert_bags(
    bags: list[str | Path],
    output: str | Path,
    repo_id: str,
    config: BagConversionConfig,
    *,
    outcome: str | None = None,
    labels: dict[str, str] | None = None,
    skip_unlabelled: bool = False,
    overwrite: bool = False,
) -> ConversionReport:
    """Convert ``bags`` (rosbag2 directories, or .mcap/.db3 files) into a LeRobot dataset at ``output``."""
    started = time.perf_counter()
    output = Path(output).absolute()
    if not bags:
        raise ConversionError("no bags given")
    if not repo_id or not repo_id.strip():
        raise ConversionError("repo_id is empty; pass repo_id=<user>/<name>")
    try:
        output = check_output(
            output, kind="LeRobot dataset", recognise=is_lerobot_dataset, inputs=bags, overwrite=overwrite,
            flag="overwrite=true",
        )
    except OutputRefused as exc:
        raise ConversionError(str(exc)) from None
    default_outcome = parse_outcome(outcome, "outcome") if outcome is not None else None
    names = [Path(b).stem if Path(b).is_file() else Path(b).name for b in bags]
    if len(set(names)) != len(names):
        raise ConversionError(f"bag names must be unique (labels and metadata refer to them): {names}")

    with _single_threaded_opencv(), warnings.catch_warnings():
        # LeRobot's statistics of the bool columns (is_done, success) warn once per episode that they count
        # as uint8: expected, and a wall of text in a many-episode conversion.
        warnings.filterwarnings("ignore", "Converting input from bool", RuntimeWarning)
        return _convert(
            bags, output, repo_id, config, default_outcome, labels or {}, skip_unlabelled, started
        )


@contextlib.contextmanager
def _single_threaded_opencv():
    """OpenCV's worker threads would wait for cores the video encoder threads hold (resize slowed down)."""
    try:
        import cv2
    except ImportError:
        yield
        return
    previous = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(previous)


def _convert(
    bags: list[str | Path],
    output: Path,
    repo_id: str,
    config: BagConversionConfig,
    default_outcome: str | None,
    labels: dict[str, str],
    skip_unlabelled: bool,
    started: float,
) -> ConversionReport:
    typestore = ros_types.make_typestore()
    indexes = [index_bag(bag, config, typestore) for bag in bags]
    plans = [plan_episodes(index, config) for index in indexes]
    jobs, skipped = _label_plans(indexes, plans, config, labels, default_outcome, skip_unlabelled)
    if not any(job.plans for job in jobs):
        raise ConversionError(f"no episode to write ({len(skipped)} left out: {'; '.join(skipped[:5])})")
    shapes = _image_shapes(jobs)
    _check_video_sizes(config, shapes)
    features = build_features(config, shapes)

    output.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    dataset = None
    try:
        root = workdir / "dataset"
        dataset = _create_dataset(root, repo_id, config, features)
        records = _write(dataset, jobs, config, typestore)
        dataset.stop_image_writer()
        dataset.finalize()
        dataset = None
        meta = {
            "format": "ove_ros.episodes.v1",
            "reward_convention": "reward 0 except on the last frame (+1 success, -1 failure); "
            "is_done true on the last frame only",
            "fps": config.fps,
            "tolerance_periods": config.tolerance_periods,
            "config": asdict(config),
            IMAGE_SPEC_KEY: specs_to_dict(dataset_image_specs(config, shapes)),  # ove_ros.images, per camera
            "episodes": [asdict(r) for r in records],
            "skipped": skipped,
        }
        _write_json_atomic(root / EPISODES_META, meta)
        validate_dataset(root, repo_id, records, config.validate_decode, workdir / "datasets-cache")
        if output.exists():
            os.rename(output, workdir / "previous")
        os.rename(root, output)
    finally:
        if dataset is not None:
            with contextlib.suppress(Exception):
                dataset.stop_image_writer()
                dataset.finalize()
        shutil.rmtree(workdir, ignore_errors=True)
    recorded = sum(r.ticks for r in records) / config.fps
    return ConversionReport(
        output,
        records,
        skipped,
        _topic_stats(indexes, records),
        recorded,
        time.perf_counter() - started,
        config.fps,
        meta,
    )


def print_summary(report: ConversionReport, console=None) -> None:
    """Rich tables: the episodes written, the topics read, and the totals."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    episodes = Table(title=f"Episodes written to {report.output}")
    for column in ("#", "bag", "episode", "task", "outcome", "frames", "dropped ticks"):
        episodes.add_column(column, justify="right" if column in ("#", "frames", "dropped ticks") else "left")
    for r in report.episodes:
        episodes.add_row(
            str(r.episode_index),
            r.source_bag,
            r.episode_id or str(r.bag_episode),
            r.task,
            f"{r.outcome} ({r.outcome_source})",
            str(r.frames),
            str(r.dropped_ticks),
        )
    console.print(episodes)
    topics = Table(title="Topics")
    for column in ("topic", "stream", "messages", "rate (Hz)", "ticks missing", "zero stamps"):
        topics.add_column(column, justify="left" if column in ("topic", "stream") else "right")
    for t in report.topics:
        topics.add_row(
            t.topic, t.stream, str(t.messages), f"{t.rate_hz:.1f}", str(t.missing_ticks), str(t.zero_stamps)
        )
    console.print(topics)
    speed = report.frames / report.elapsed_s if report.elapsed_s else 0.0
    factor = report.recorded_s / report.elapsed_s if report.elapsed_s else 0.0
    console.print(
        f"{len(report.episodes)} episodes, {report.frames} frames, {report.dropped} of {report.ticks} ticks "
        f"dropped, {len(report.skipped)} episodes left out; {report.elapsed_s:.1f} s "
        f"({speed:.1f} frames/s, {factor:.1f}x real time)"
    )
    for reason in report.skipped:
        console.print(f"  left out: {reason}")


USAGE = (
    "usage: python -m ove_ros.training.bag_to_lerobot config=<yaml> output=<dir> repo_id=<id> "
    "<bag> [<bag> ...] [key=value ...]"
)
INTRO = (
    "Convert rosbag2 recordings into a LeRobot v3.0 dataset with reward and is_done labels.\n"
    "A key=value whose key is not one of these is a conversion config override (keys below)."
)


@dataclass
class ConvertArgs:
    """The run's inputs and outputs; the conversion itself is the ``config=`` file's (plus overrides)."""

    config: str = setting(REQUIRED, "Required. YAML mapping topics to features.")
    bags: list[str] = setting(
        REQUIRED, "Required. rosbag2 directories (or .mcap/.db3 files); bare arguments land here."
    )
    output: str = setting(REQUIRED, "Required. Dataset root to create (an existing one only with overwrite).")
    repo_id: str = setting(REQUIRED, "Required. Dataset id, e.g. local/pick_bottle.")
    outcome: str | None = setting(
        None, "Outcome of episodes without a label, an END event outcome or a cut.", choices=OUTCOMES
    )
    labels: str | None = setting(None, "CSV or YAML: bag, bag/episode_id, bag/n or episode_id -> outcome.")
    skip_unlabelled: bool = setting(False, "Leave out episodes without an outcome.")
    overwrite: bool = setting(False, "Replace an existing LeRobot dataset at output (never another folder).")
    overrides: list[str] = setting([], "Conversion config overrides (a key=value with a key listed below).")


def parse_args(argv: list[str] | None = None) -> ConvertArgs:
    """argv -> the run's arguments, the conversion overrides in ``overrides`` (``ConfigError`` names a bad
    key)."""
    return typed_cli.parse(ConvertArgs, argv, USAGE, INTRO, positional=["bags"], rest="overrides",
                           rest_cls=BagConversionConfig, rest_help="conversion config keys (config=<yaml>):",
                           what="bag_to_lerobot options", example="repo_id=local/pick")


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``ove-bag-to-lerobot``."""
    try:
        args = parse_args(argv)
    except ConfigError as exc:
        typed_cli.fail(exc)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("SVT_LOG", "1")  # libsvtav1: errors only
    with contextlib.suppress(ImportError):
        import av.logging

        av.logging.set_libav_level(av.logging.ERROR)  # x264 prints statistics per video otherwise
    with contextlib.suppress(ImportError):
        import datasets

        datasets.disable_progress_bars()
    try:
        config = load_config(args.config, args.overrides)
        labels = load_labels(args.labels) if args.labels else None
        report = convert_bags(
            args.bags,
            args.output,
            args.repo_id,
            config,
            outcome=args.outcome,
            labels=labels,
            skip_unlabelled=args.skip_unlabelled,
            overwrite=args.overwrite,
        )
    except BagConversionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_summary(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
