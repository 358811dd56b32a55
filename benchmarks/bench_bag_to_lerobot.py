# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Throughput of the rosbag2 -> LeRobot converter on a generated recording.

Writes a bag with N cameras (default 3 x 640x480 rgb8 at 30 Hz) and joint states (default 200 Hz) for
``seconds`` (default 20), then converts it once per variant: reading alone (both passes, no dataset),
the video encoders alone on frames decoded beforehand (what any conversion at those settings is bounded by),
the dataset written by the streaming writer at several encoder presets and codecs, LeRobot's own PNG round
trip before encoding, PNG images in parquet, and cameras resized to 320x240 / 224x224. Reports frames
converted per second and the real-time factor (recorded seconds per wall second), prints a table and
writes JSON to ``benchmarks/results/bag_to_lerobot.json``.

    python benchmarks/bench_bag_to_lerobot.py [seconds=20] [bags=1] [variants=read,h264,...]
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "test"))

from machine_info import cpu_model  # noqa: E402

from ove_ros import typed_cli  # noqa: E402
from ove_ros.training import ros_types  # noqa: E402
from ove_ros.training.bag_config import BagConversionConfig, load_config  # noqa: E402
from ove_ros.training.bag_reader import index_bag, iter_frames, plan_episodes  # noqa: E402
from ove_ros.training.bag_to_lerobot import convert_bags  # noqa: E402
from ove_ros.typed_config import setting  # noqa: E402

from bag_fixtures import BagSpec, CameraSpec, write_bag  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "bag_to_lerobot.json"
ENCODE_DISTINCT = 60  # distinct frames per camera that the encode-only variants cycle through


@dataclass
class Variant:
    name: str
    overrides: list[str]
    note: str


VARIANTS = {
    "read": Variant("read", [], "both bag passes + image decoding + resampling, no dataset written"),
    "h264": Variant("h264", [], "the default: h264 ultrafast, ove_ros streaming writer"),
    "h264_veryfast": Variant("h264_veryfast", ["video.preset=veryfast"], "h264 veryfast (smaller files)"),
    "h264_medium": Variant(
        "h264_medium",
        ["video.preset=medium"],
        "h264 medium (x264's default, what LeRobot's own encoder runs)",
    ),
    "h264_x264_threads": Variant(
        "h264_x264_threads",
        ["video.encoder_threads=0"],
        "h264 ultrafast, x264 picks its thread count per camera",
    ),
    "svtav1": Variant(
        "svtav1",
        ["video.vcodec=libsvtav1", "video.preset=12"],
        "libsvtav1 preset 12 (LeRobot's default codec)",
    ),
    "h264_png": Variant(
        "h264_png",
        ["video.streaming_encoding=false"],
        "LeRobot's own path: temporary PNG files, h264 at the default preset per episode",
    ),
    "images": Variant("images", ["video.use_videos=false"], "PNG images inside parquet, no video"),
    "encode": Variant(
        "encode",
        [],
        "the video encoders alone (default settings) on decoded frames held in memory: the bound on the rest",
    ),
    "encode_320": Variant(
        "encode_320",
        ["video.resize=[320,240]"],
        "the video encoders alone on frames already resized to 320x240",
    ),
    "h264_320": Variant(
        "h264_320",
        ["video.resize=[320,240]"],
        "h264 ultrafast with every camera resized to 320x240",
    ),
    "h264_320_lerobot_files": Variant(
        "h264_320_lerobot_files",
        ["video.resize=[320,240]", "video.episodes_per_file=null"],
        "as h264_320, with LeRobot's own video-file rule: every episode appended to one file by rewriting it",
    ),
    "h264_224": Variant(
        "h264_224",
        ["video.resize=[224,224]"],
        "h264 ultrafast with every camera resized to 224x224 (the value model's input size)",
    ),
}
DEFAULT_VARIANTS = (
    "read,encode,encode_320,h264,h264_veryfast,h264_medium,h264_x264_threads,svtav1,h264_png,images,"
    "h264_320,h264_224"
)


def machine() -> dict:
    """What the figures were measured on."""
    cpu = cpu_model()
    mem_gib = None
    if Path("/proc/meminfo").exists():
        first = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
        mem_gib = round(int(first[1]) / 2**20, 1)
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("lerobot", "rosbags", "av", "numpy", "opencv-python-headless", "torch"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpu": None,
        "load_average_1_5_15min": [round(x, 2) for x in os.getloadavg()],
        "note": "2 cores shared with other jobs; a load average above 2 means the figures are pessimistic",
        "versions": versions,
    }


def bench_config(spec: BagSpec, fps: int, overrides: list[str]) -> BagConversionConfig:
    cams = ", ".join(f"{{name: {c.name}, topic: {c.topic}}}" for c in spec.cameras)
    joints = ", ".join(spec.joint_names)
    base = [
        f"fps={fps}",
        "task=benchmark",
        f"cameras=[{cams}]",
        f"state={{topic: {spec.joint_topic}, joints: [{joints}]}}",
        "progress=false",
        "validate_decode=false",
    ]
    return load_config(None, base + overrides)


def link_copy(bag: Path, to: Path) -> Path:
    """Another bag with the same files (hard links: no bytes copied, the page cache is shared)."""
    shutil.rmtree(to, ignore_errors=True)
    to.mkdir()
    for f in bag.iterdir():
        os.link(f, to / f.name)
    return to


def run_read(bag: Path, config: BagConversionConfig) -> int:
    typestore = ros_types.make_typestore()
    index = index_bag(bag, config, typestore)
    plans = plan_episodes(index, config)
    return sum(1 for _ in iter_frames(index, plans, config, typestore))


def run_encode(bag: Path, config: BagConversionConfig, copies: int, out: Path) -> tuple[int, float]:
    """Feed the recording's frames, decoded beforehand, to the streaming video writer; return the frames and
    the seconds the encoders took. At most ENCODE_DISTINCT distinct frames per camera are held (cycled)."""
    from ove_ros.training.video_encoder import EncoderSettings, StreamingVideoWriter

    typestore = ros_types.make_typestore()
    index = index_bag(bag, config, typestore)
    plans = plan_episodes(index, config)
    held: list[dict] = []
    count = 0
    for _, _, features in iter_frames(index, plans, config, typestore):
        if len(held) < ENCODE_DISTINCT:
            held.append({k: v for k, v in features.items() if k.startswith("observation.images.")})
        count += 1
    keys = list(held[0])
    writer = StreamingVideoWriter(config.fps, EncoderSettings.from_config(config.video))
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        for _ in range(copies):
            writer.start_episode(keys, out)
            for i in range(count):
                for key in keys:
                    writer.feed_frame(key, held[i % len(held)][key])
            writer.finish_episode()
        return count * copies, time.perf_counter() - started
    finally:
        writer.close()


USAGE = "usage: python benchmarks/bench_bag_to_lerobot.py [key=value ...]"


@dataclass
class Settings:
    """The recording and the variants to time (``key=value``; ``--help`` lists the keys)."""

    seconds: float = setting(20.0, "Seconds of recording.", gt=0)
    cameras: int = setting(3, "Cameras.", ge=1)
    width: int = setting(640, "Camera width.", ge=1)
    height: int = setting(480, "Camera height.", ge=1)
    camera_hz: float = setting(30.0, "Camera rate.", gt=0)
    joint_hz: float = setting(200.0, "Joint state rate.", gt=0)
    fps: int = setting(30, "Dataset frame rate.", ge=1)
    storage: str = setting("mcap", "rosbag2 storage.", choices=("mcap", "sqlite3"))
    compressed: bool = setting(False, "Record the cameras as JPEG CompressedImage instead of rgb8.")
    variants: str = setting(DEFAULT_VARIANTS, f"Comma-separated, of {sorted(VARIANTS)}.")
    repeats: int = setting(1, "Conversions per variant; the row reports the median run.", ge=1)
    bags: int = setting(
        1,
        "Convert this many copies of the recording in one call (one bag per episode, as a session of "
        "recordings is converted); the copies are hard links, so only the conversion is timed.",
        ge=1,
    )
    workdir: str | None = setting(None, "Where to write the bag and datasets (default: a temp dir).")
    output: str = setting(str(RESULTS), "Result JSON.")


def main(argv: list[str] | None = None) -> int:
    args = typed_cli.parse_or_exit(Settings, argv, USAGE, __doc__.split("\n\n")[0])
    logging.basicConfig(level=logging.ERROR)
    os.environ.setdefault("SVT_LOG", "1")
    warnings.simplefilter("ignore")
    import av.logging
    import datasets
    import lerobot.datasets.lerobot_dataset  # noqa: F401 - imported before timing (several seconds here)

    datasets.disable_progress_bars()
    av.logging.set_libav_level(av.logging.ERROR)
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        typed_cli.fail(f"variants: unknown {unknown}; choose from {sorted(VARIANTS)}")

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_bag_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        spec = BagSpec(
            duration_s=args.seconds,
            cameras=[
                CameraSpec(
                    f"cam{c}",
                    f"/cam{c}/image_raw",
                    width=args.width,
                    height=args.height,
                    rate_hz=args.camera_hz,
                    encoding="jpeg" if args.compressed else "rgb8",
                    compressed=args.compressed,
                )
                for c in range(args.cameras)
            ],
            joint_names=tuple(f"joint_{k}" for k in range(7)),
            joint_rate_hz=args.joint_hz,
            action_topic=None,
            pattern="scene",
        )
        bag = work / "bench_bag"
        shutil.rmtree(bag, ignore_errors=True)
        started = time.perf_counter()
        write_bag(bag, spec, args.storage)
        write_s = time.perf_counter() - started
        os.sync()  # flush the bag now, so writing it back does not slow down the timed reads
        bag_mb = sum(p.stat().st_size for p in bag.iterdir()) / 2**20
        bags = [bag] + [link_copy(bag, work / f"bench_bag_{k}") for k in range(1, max(1, args.bags))]
        print(
            f"bag: {args.cameras} x {args.width}x{args.height} {'jpeg' if args.compressed else 'rgb8'} "
            f"@ {args.camera_hz:g} Hz + joints @ "
            f"{args.joint_hz:g} Hz, {args.seconds:g} s, {bag_mb:.0f} MiB {args.storage} "
            f"(written in {write_s:.1f} s)"
        )

        rows = []
        for name in names:
            variant = VARIANTS[name]
            overrides = list(variant.overrides)
            config = bench_config(spec, args.fps, overrides)
            walls = []
            for _ in range(max(1, args.repeats)):
                datasets.disable_progress_bars()  # LeRobot's loader turns them back on
                out = work / f"ds_{name}"
                shutil.rmtree(out, ignore_errors=True)
                started = time.perf_counter()
                if name == "read":
                    frames = sum(run_read(b, config) for b in bags)
                elif name.startswith("encode"):
                    frames, encode_s = run_encode(bag, config, len(bags), out)
                    started = time.perf_counter() - encode_s
                else:
                    frames = convert_bags(bags, out, f"bench/{name}", config, outcome="success").frames
                walls.append(time.perf_counter() - started)
                size_mb = (
                    sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
                    if out.exists()
                    else 0.0
                )
                shutil.rmtree(out, ignore_errors=True)
            wall = statistics.median(walls)
            recorded = frames / args.fps
            row = {
                "variant": name,
                "note": variant.note,
                "overrides": overrides,
                "frames": frames,
                "wall_s": round(wall, 2),
                "frames_per_s": round(frames / wall, 1),
                "camera_images_per_s": round(frames * args.cameras / wall, 1),
                "realtime_factor": round(recorded / wall, 2),
                "dataset_mib": round(size_mb, 1),
                "realtime_factor_runs": [round(recorded / w, 2) for w in walls],
            }
            rows.append(row)
            spread = ""
            if len(walls) > 1:
                runs = row["realtime_factor_runs"]
                spread = f" (runs {min(runs):.2f}-{max(runs):.2f}x)"
            print(
                f"  {name:13s} {frames} frames in {wall:6.1f} s: {row['frames_per_s']:7.1f} frames/s, "
                f"{row['realtime_factor']:5.2f}x real time{spread}, {size_mb:6.1f} MiB"
            )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)

    from rich.console import Console
    from rich.table import Table

    session = f"{args.bags} x " if args.bags > 1 else ""
    table = Table(
        title=f"bag -> LeRobot, {session}{args.seconds:g} s recording ({args.cameras} cameras "
        f"{args.width}x{args.height}), target >= 10x real time"
    )
    for column in ("variant", "frames/s", "images/s", "x real time", "MiB", "what"):
        table.add_column(column, justify="left" if column in ("variant", "what") else "right")
    for r in rows:
        table.add_row(
            r["variant"],
            f"{r['frames_per_s']:.1f}",
            f"{r['camera_images_per_s']:.1f}",
            f"{r['realtime_factor']:.2f}",
            f"{r['dataset_mib']:.1f}",
            r["note"],
        )
    Console().print(table)
    result = {
        "benchmark": "bag_to_lerobot",
        "machine": {**machine(), "load_average_at_start": load_at_start},
        "recording": {
            "seconds": args.seconds,
            "bags": args.bags,
            "cameras": args.cameras,
            "width": args.width,
            "height": args.height,
            "camera_hz": args.camera_hz,
            "joint_hz": args.joint_hz,
            "fps": args.fps,
            "storage": args.storage,
            "camera_messages": "CompressedImage (JPEG)" if args.compressed else "Image (rgb8)",
            "repeats": args.repeats,
            "bag_mib": round(bag_mb, 1),
            "image_content": "textured scene with a moving block (bag_fixtures)",
        },
        "target_realtime_factor": 10.0,
        "results": rows,
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, output)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
