# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The main job on a laptop: simulated robot -> rosbag2 -> LeRobot dataset -> training -> bundle -> live node.

    python -m ove_ros.sim.demo [--output outputs/demo] [--episodes 48] [--heldout 12] [--train-steps 800]
    python -m ove_ros.sim.demo real [--data ../shared/data/g1_pick_bottle_mini] [--output outputs/demo_real]

Sim mode runs every stage as the real system would, over ROS 2 between processes:

1. ``sim_robot`` (MetaWorld experts with injected mistakes) and ``bag_recorder`` -> one rosbag2 per episode;
2. ``ove_ros.training.bag_to_lerobot`` -> LeRobot v3 dataset with reward / is_done;
3. ``ove_ros.training.train`` with ``training/configs/demo.yaml`` (tiny model, CPU);
4. ``ove_ros.training.convert`` -> deploy bundle;
5. ``value_estimator`` on the running simulator for held-out seeds, recorded with its ~/value, ~/advantage
   and ~/overlay outputs;
6. the report: the same bundle run offline on the recorded frames (online-vs-offline agreement), EV and
   mid-episode failure AUROC, value-curve plots, the overlay video and a PNG strip;
7. parity through the dataset path: the held-out bags converted and labelled by the training code, compared
   frame by frame with the node's live values and advantages, and with a second node fed the same bags
   faster than it can value them (skipped frames must be gaps, not shifts).

Bags, dataset and training run are cached under ``--cache-dir`` keyed by a hash of what produced them, so a
re-run only repeats the live stage and the report. Real mode trains and evaluates the same model on the real
G1 episodes (all successes: the value is task progress) and reports EV on held-out episodes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ove_ros.child_process import stop_child
from ove_ros.sim.metrics import EpisodeValues, agreement, mid_value, normalized_targets, value_metrics
from ove_ros.sim.parity import advantage_fields

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_TRAIN_CONFIG = "training/configs/demo.yaml"
DATA_VERSION = 2  # bump when the recorded data changes meaning (invalidates the cache)
DATA_SOURCES = ("episodes.py", "robot.py", "recorder.py")  # their text is part of the bag cache key
REPO_ID = "sim/metaworld_demo"
NODE = "value_estimator"
AGREEMENT_TARGET = 1e-3
REPLAY_RATE = 4.0  # the parity replay plays the held-out bags at this multiple of their recorded speed


# ------------------------------------------------------------------------------------------- config


@dataclass
class DemoConfig:
    """Everything the sim-mode demo does (the CLI fills it)."""

    output: Path = Path("outputs/demo")
    cache_dir: Path = Path("outputs/cache/demo")
    use_cache: bool = True
    tasks: tuple[str, ...] = ("reach-v3", "push-v3", "pick-place-v3")
    cameras: tuple[str, ...] = ("topview", "gripperPOV")
    image_size: int = 64
    # Time limit (same as SimConfig.max_steps): the slowest expert success over 150 seeds took 70 frames. A
    # failure's time to the limit is invisible in its frames, so a longer limit lowers the reachable EV (0.86
    # at 100 frames, 0.91 at 80; ove_ros/sim/metrics.py), but at 80 frames the middle frame of an
    # early-release failure falls right at the release and the mid-episode AUROC suffers: 100 measured better
    # on both (benchmarks/results/main_job_experiments.json).
    max_steps: int = 100
    fail_fraction: float = 0.5
    episodes: int = 48  # training episodes (seeds train_seed ...)
    heldout: int = 12  # live episodes on new seeds (heldout_seed ...)
    train_seed: int = 0
    heldout_seed: int = 100_000
    train_steps: int = 800
    train_config: str = DEMO_TRAIN_CONFIG
    train_overrides: tuple[str, ...] = ()
    live_rate_hz: float = 15.0
    storage: str = "mcap"
    stage_timeout: float = 900.0

    def sim_params(self) -> dict[str, Any]:
        return {
            "tasks": list(self.tasks), "cameras": list(self.cameras), "image_size": self.image_size,
            "max_steps": self.max_steps, "fail_fraction": self.fail_fraction,
        }


def config_hash(*parts: Any) -> str:
    """Short stable hash of JSON-able parts (the cache key)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def source_digest() -> str:
    """Digest of the code that produces the bags, so editing it invalidates cached recordings."""
    here = Path(__file__).resolve().parent
    return config_hash(*[(here / name).read_text() for name in DATA_SOURCES])


def _jsonable(value: Any) -> Any:
    """NaN/inf -> None, numpy scalars -> Python, so the summary is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


# ---------------------------------------------------------------------------------------- processes


def ros_child_env(**extra: str) -> dict[str, str]:
    """Environment of the ROS processes: one private domain on loopback for the whole demo."""
    # Chosen once per demo process (above the 1..101 the test sessions use) and inherited by every child.
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(102, 232)))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def executable(name: str, module: str) -> list[str]:
    """The installed ``lib/ove_ros/<name>`` (what ``ros2 run`` starts), else ``python -m <module>``."""
    try:
        from ament_index_python.packages import get_package_prefix

        path = Path(get_package_prefix("ove_ros")) / "lib" / "ove_ros" / name
        if path.is_file():
            return [sys.executable, str(path)]
    except (ImportError, LookupError, KeyError):
        pass
    return [sys.executable, "-m", module]


def write_params(path: Path, params: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": params}}, sort_keys=False))
    return path


class Process:
    """A child process whose output goes to a log file; ``on_line`` sees each line (progress bars)."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str],
                 on_line: Callable[[str], None] | None = None) -> None:
        self.name, self.log = name, log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._file = log.open("w")
        self._file.write("$ " + " ".join(cmd) + "\n")
        self._file.flush()
        self.popen = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True, bufsize=1,
            start_new_session=True, cwd=REPO_ROOT,
        )
        self._reader = threading.Thread(target=self._pump, args=(on_line,), daemon=True)
        self._reader.start()

    def _pump(self, on_line: Callable[[str], None] | None) -> None:
        for line in self.popen.stdout:
            self._file.write(line)
            self._file.flush()
            if on_line is not None:
                on_line(line)

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGINT (clean shutdown: bags are closed), then SIGTERM, then SIGKILL."""
        code = stop_child(self.popen, grace)
        self._reader.join(timeout=5)
        self._file.close()
        return code

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class StageError(RuntimeError):
    """A stage failed; the message names its log."""


# ------------------------------------------------------------------------------------------- stages


def sim_topics(cameras: Sequence[str]) -> dict[str, str]:
    """Recorded simulator topics (relative names) and their types."""
    topics = {f"camera/{c}/image_raw": "sensor_msgs/msg/Image" for c in cameras}
    topics["joint_states"] = "sensor_msgs/msg/JointState"
    topics["episode_events"] = "ove_ros/msg/EpisodeEvent"
    return topics


def stratified_seeds(cfg: DemoConfig, count: int, first_seed: int) -> list[int]:
    """Seeds from ``first_seed`` on, one per episode (tasks cycle), alternating between seeds whose episode
    gets a fatal mistake and seeds whose does not, so a small held-out set still has both outcomes."""
    from ove_ros.sim.episodes import SimConfig, plan_mistakes

    sim_cfg = SimConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.sim_params().items()})
    seeds, cursor = [], first_seed
    for i in range(count):
        task, want_failure = cfg.tasks[i % len(cfg.tasks)], (i // len(cfg.tasks)) % 2 == 1
        while bool(plan_mistakes(task, cursor, sim_cfg).failure) != want_failure:
            cursor += 1
        seeds.append(cursor)
        cursor += 1
    return seeds


def record_episodes(
    cfg: DemoConfig, out: Path, logs: Path, count: int, first_seed: int, rate_hz: float,
    extra_topics: dict[str, str] | None = None, subscribers: int = 1, env: dict[str, str] | None = None,
    seeds: Sequence[int] = (),
) -> list[dict[str, Any]]:
    """Run ``sim_robot`` and ``bag_recorder`` until ``count`` episodes are recorded; returns the bag list."""
    from tqdm.auto import tqdm

    env = env or ros_child_env()
    topics = {**sim_topics(cfg.cameras), **(extra_topics or {})}
    rec_params = write_params(logs / f"{out.name}_recorder.yaml", {
        "output": str(out), "storage": cfg.storage, "topics": list(topics), "types": list(topics.values()),
        "split_by_episode": True, "episodes": count, "close_grace": 1.0,
    })
    sim_params = write_params(logs / f"{out.name}_sim.yaml", {
        **cfg.sim_params(), "episodes": count, "first_seed": first_seed, "seeds": list(seeds) or [-1],
        "rate_hz": rate_hz,
        "wait_for_subscribers": subscribers, "startup_timeout": 240.0, "stamp_origin": "zero",
    })
    shutil.rmtree(out, ignore_errors=True)
    bar = tqdm(total=count, desc=f"record {out.name}", unit="episode", dynamic_ncols=True)

    def on_sim_line(line: str) -> None:
        if "]: episode " in line:
            bar.update(1)
            bar.set_postfix_str(line.split("]: episode ", 1)[1].strip()[:60])

    rec_cmd = [*executable("bag_recorder", "ove_ros.sim.recorder"), "--ros-args", "--params-file",
               str(rec_params)]
    sim_cmd = [*executable("sim_robot", "ove_ros.sim.robot"), "--ros-args", "--params-file", str(sim_params)]
    recorder = Process("bag_recorder", rec_cmd, logs / f"{out.name}_recorder.log", env)
    sim = Process("sim_robot", sim_cmd, logs / f"{out.name}_sim.log", env, on_sim_line)
    try:
        budget = 240.0 + count * cfg.max_steps * (0.1 + (1.0 / rate_hz if rate_hz > 0 else 0.0))
        if sim.wait(timeout=budget) != 0:
            raise StageError(f"sim_robot failed (log {sim.log}):\n{sim.tail()}")
        try:
            recorder.wait(timeout=30.0)
        except subprocess.TimeoutExpired:
            recorder.stop()
    except subprocess.TimeoutExpired as exc:
        raise StageError(f"recording {out.name} timed out; see {sim.log} and {recorder.log}") from exc
    finally:
        bar.close()
        sim.stop()
        recorder.stop()
    summary = out / "recording.json"
    if not summary.is_file():
        raise StageError(f"the recorder wrote no {summary}; see {recorder.log}:\n{recorder.tail()}")
    bags = json.loads(summary.read_text())["bags"]
    if len(bags) != count:
        raise StageError(f"expected {count} bags in {out}, got {len(bags)}; see {recorder.log}")
    return bags


def conversion_config(cfg: DemoConfig):
    from ove_ros.sim.episodes import ROBOT_JOINTS
    from ove_ros.training.bag_config import (
        BagConversionConfig,
        CameraConfig,
        EpisodeConfig,
        JointStateConfig,
        VideoConfig,
    )

    return BagConversionConfig(
        fps=80,  # one tick per simulated frame (MetaWorld: 12.5 ms)
        cameras=[CameraConfig(name=c, topic=f"/camera/{c}/image_raw") for c in cfg.cameras],
        state=JointStateConfig(topic="/joint_states", joints=list(ROBOT_JOINTS)),
        episodes=EpisodeConfig(events_topic="/episode_events", split="events"),
        video=VideoConfig(use_videos=False),  # small PNG frames: decoding them while training is cheap
        robot_type="sawyer_metaworld",
        progress=True,
    )


def train_and_bundle(cfg: DemoConfig, dataset: Path, run_root: Path, run_name: str, bundle: Path,
                     logs: Path, extra: Sequence[str] = ()) -> tuple[Path, dict[str, Any]]:
    """``ove_ros.training.train`` (subprocess, one torch thread), then ``ove_ros.training.convert``; returns
    the bundle."""
    from ove_ros.training import checkpoint as ckpt

    run_dir = run_root / "ove_ros" / run_name
    latest = ckpt.latest_checkpoint(run_dir) if run_dir.is_dir() else None
    if latest is not None and int(ckpt.read_meta(latest).get("step", -1)) != cfg.train_steps:
        latest = None  # an interrupted run: train again
    if latest is None or not cfg.use_cache:
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [sys.executable, "-m", "ove_ros.training.train", f"config={cfg.train_config}",
               f"run_name={run_name}",
               f"output_root={run_root}", f"data.root={dataset}", f"training.steps={cfg.train_steps}",
               "training.num_threads=1", *extra, *cfg.train_overrides]
        env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
        log = logs / "train.log"
        with log.open("w") as f:  # tqdm's bar goes to the terminal, the log keeps everything else
            code = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=f, stderr=None).returncode
        if code != 0:
            raise StageError(f"training failed (exit {code}); see {log}")
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is None:
            raise StageError(f"training wrote no checkpoint under {run_dir}; see {log}")
    meta = ckpt.read_meta(latest)
    metrics = {k: v for k, v in meta.get("metrics", {}).items() if isinstance(v, (int, float))}
    from ove_ros.training.convert import convert

    shutil.rmtree(bundle, ignore_errors=True)
    return convert(latest, bundle), {"checkpoint": str(latest), "val_metrics": metrics}


# ------------------------------------------------------------------------------------ reading bags


@dataclass
class RecordedEpisode:
    """One held-out episode as recorded: frames from the simulator and the node's outputs."""

    bag: str
    episode_id: str
    task: str
    success: bool
    stamps: np.ndarray  # frame stamps (ns), ascending
    images: dict[str, list[np.ndarray]]  # camera -> per-frame RGB
    states: np.ndarray  # [T, joints]
    online: dict[int, dict[str, float]] = field(default_factory=dict)  # frame index -> value message fields
    advantages: list[dict[str, Any]] = field(default_factory=list)  # the node's advantage records
    # Every node output recorded in this bag, with its episode serial and stamp: an episode's END flush can
    # land in the next episode's bag, so outputs are assigned to episodes by serial (assign_node_outputs).
    raw_values: list[tuple[int, int, dict[str, float]]] = field(default_factory=list)
    raw_advantages: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    overlay: list[tuple[int, np.ndarray]] = field(default_factory=list)


def read_episode_bag(path: Path, cameras: Sequence[str], joints: Sequence[str], node: str) -> RecordedEpisode:
    """Decode one held-out bag (frames by exact stamp, node outputs by their sensor stamps)."""
    from rosbags.rosbag2 import Reader

    from ove_ros.training import ros_types

    store = ros_types.make_typestore()
    image_topics = {f"/camera/{c}/image_raw": c for c in cameras}
    images: dict[str, dict[int, np.ndarray]] = {c: {} for c in cameras}
    states: dict[int, np.ndarray] = {}
    start = end = None
    episode = RecordedEpisode(str(path), "", "", False, np.zeros(0, np.int64), {}, np.zeros((0, len(joints))))
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            topic = conn.topic
            if topic in image_topics:
                msg = store.deserialize_cdr(raw, conn.msgtype)
                images[image_topics[topic]][_stamp(msg)] = ros_types.raw_image_to_rgb(msg)
            elif topic == "/joint_states":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                order = [list(msg.name).index(j) for j in joints]
                states[_stamp(msg)] = np.asarray(msg.position, dtype=np.float64)[order]
            elif topic == "/episode_events":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                if msg.event == ros_types.EVENT_START:
                    start, episode.task, episode.episode_id = _stamp(msg), msg.task, msg.episode_id
                else:
                    end, episode.success = _stamp(msg), msg.outcome == ros_types.OUTCOME_SUCCESS
            elif topic == f"/{node}/value":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                if msg.in_episode:
                    episode.raw_values.append((int(msg.episode), _stamp(msg), {
                        "value": float(msg.value), "tick": int(msg.tick), "input_skew": float(msg.input_skew),
                        "latency": float(msg.inference_latency)}))
            elif topic == f"/{node}/advantage":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                episode.raw_advantages.append((int(msg.episode), _stamp(msg), advantage_fields(msg)))
            elif topic == f"/{node}/overlay":
                msg = store.deserialize_cdr(raw, conn.msgtype)
                episode.overlay.append((_stamp(msg), ros_types.raw_image_to_rgb(msg)))
    if start is None or end is None:
        raise StageError(f"{path}: no START/END episode events")
    stamps = sorted(s for s in states if start <= s <= end and all(s in images[c] for c in cameras))
    episode.stamps = np.asarray(stamps, dtype=np.int64)
    episode.images = {c: [images[c][s] for s in stamps] for c in cameras}
    episode.states = np.stack([states[s] for s in stamps]) if stamps else np.zeros((0, len(joints)))
    episode.overlay.sort(key=lambda item: item[0])
    return episode


def assign_node_outputs(episodes: Sequence[RecordedEpisode]) -> None:
    """Give each recorded episode the node's outputs of its episode serial, from whichever bag they landed
    in: the serial is the one of the node's values stamped inside the episode's START..END window."""
    from collections import Counter

    values = [item for ep in episodes for item in ep.raw_values]
    advantages = [item for ep in episodes for item in ep.raw_advantages]
    for ep in episodes:
        if not len(ep.stamps):
            continue
        window = (ep.stamps[0], ep.stamps[-1])
        # The episode the END closed is the one whose terminal records lie in the window; without any, the
        # serial most of the window's values carry.
        closed = Counter(s for s, stamp, a in advantages if a["terminal"] and window[0] <= stamp <= window[1])
        inside = closed or Counter(s for s, stamp, _ in values if window[0] <= stamp <= window[1])
        if not inside:
            continue
        serial = inside.most_common(1)[0][0]
        ep.online = {fields["tick"]: fields for s, _, fields in values if s == serial}
        ep.advantages = [fields for s, _, fields in advantages if s == serial]


def _stamp(msg) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


# ------------------------------------------------------------------------------------------ report


def offline_values(bundle: Path, episodes: Sequence[RecordedEpisode]) -> list[np.ndarray]:
    """The bundle evaluated on the recorded frames with the node's engine settings (CPU, float32)."""
    from ove_ros.engine import EngineConfig, InferenceEngine

    engine = InferenceEngine.from_bundle(bundle, EngineConfig(device="cpu", dtype="float32", num_threads=1,
                                                              warmup_iters=0))
    cams = list(engine.camera_names)
    out = []
    for ep in episodes:
        values = [engine.infer([ep.images[c][i] for c in cams], ep.states[i], ep.task).value
                  for i in range(len(ep.stamps))]
        out.append(np.asarray(values, dtype=np.float64))
    return out


def plot_curves(path: Path, rows: list[dict[str, Any]]) -> Path:
    """One panel per episode: target return, offline value, the live node's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.8 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for ax, row in zip(axes.ravel(), rows, strict=False):
        ax.set_visible(True)
        x = np.arange(len(row["target"]))
        ax.plot(x, row["target"], "k--", lw=1.2, label="return (target)")
        ax.plot(x, row["offline"], color="tab:blue", lw=1.2, label="offline")
        ax.plot(x, row["online"], ".", color="tab:orange", ms=3, label="live node")
        ax.set_ylim(-1.05, 0.05)
        ax.set_title(row["title"], fontsize=8, color="tab:green" if row["success"] else "tab:red")
        ax.set_xlabel("frame", fontsize=7)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_overlay_media(out: Path, episodes: Sequence[RecordedEpisode], fps: float) -> dict[str, str]:
    """The node's ~/overlay frames: an MP4 of all held-out episodes and a PNG strip (one success, one
    failure)."""
    import cv2

    frames = [(ep, img) for ep in episodes for _, img in ep.overlay]
    if not frames:
        return {}
    scale = max(1, 256 // frames[0][1].shape[0])
    h, w = frames[0][1].shape[0] * scale, frames[0][1].shape[1] * scale
    video = out / "overlay.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for _, img in frames:
        big = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
        writer.write(cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    writer.release()
    strip_rows = []
    for want in (True, False):
        ep = next((e for e in episodes if e.success == want and e.overlay), None)
        if ep is None:
            continue
        picks = np.linspace(0, len(ep.overlay) - 1, 8).round().astype(int)
        tiles = [cv2.resize(ep.overlay[i][1], (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
                 for i in picks]
        strip_rows.append(np.concatenate(tiles, axis=1))
    if not strip_rows:
        return {"video": str(video)}
    strip = out / "overlay_strip.png"
    cv2.imwrite(str(strip), cv2.cvtColor(np.concatenate(strip_rows, axis=0), cv2.COLOR_RGB2BGR))
    return {"video": str(video), "strip": str(strip)}


def build_report(cfg: DemoConfig, bundle: Path, episodes: list[RecordedEpisode], out: Path,
                 dataset: Path | None = None) -> dict[str, Any]:
    """Online and offline metrics, agreement, plots and overlay media."""
    from ove_ros.bundle import read_bundle_config
    from ove_ros.sim.episodes import SimConfig, plan_mistakes
    from ove_ros.values import RewardConfig

    _, meta = read_bundle_config(bundle)
    reward = RewardConfig.from_dict(meta.reward)
    offline = offline_values(bundle, episodes)
    sim_cfg = SimConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.sim_params().items()})
    online_eps, offline_eps, rows, pairs = [], [], [], ([], [])
    per_episode = []
    for ep, off in zip(episodes, offline, strict=True):
        target = normalized_targets(len(ep.stamps), ep.success, meta.scale_for(ep.task), reward)
        online = np.full(len(ep.stamps), np.nan)
        for i in range(len(ep.stamps)):
            tick = ep.online.get(i)  # the node's frame i of the episode: the recorded frame i on the grid
            if tick is not None:
                online[i] = tick["value"]
                pairs[0].append(tick["value"])
                pairs[1].append(off[i])
        online_eps.append(EpisodeValues(ep.episode_id, ep.task, ep.success, online, target))
        offline_eps.append(EpisodeValues(ep.episode_id, ep.task, ep.success, off, target))
        task_name, _, seed = ep.episode_id.partition("/seed")
        mistake = plan_mistakes(task_name, int(seed), sim_cfg).failure if seed.isdigit() else ""
        outcome = "success" if ep.success else "failure"
        rows.append({"title": f"{ep.episode_id}: {outcome}" + (f" ({mistake})" if mistake else ""),
                     "success": ep.success, "target": target, "offline": off, "online": online})
        per_episode.append({"episode_id": ep.episode_id, "task": ep.task, "success": ep.success,
                            "mistake": mistake, "frames": len(ep.stamps),
                            "valued_by_node": int(np.isfinite(online).sum()),
                            "mid_value_online": mid_value(online), "mid_value_offline": mid_value(off),
                            "bag": ep.bag})
    plots = [str(plot_curves(out / "value_curves.png", rows))]
    for row, ep in zip(rows, episodes, strict=True):
        name = ep.episode_id.replace("/", "_")
        plots.append(str(plot_curves(out / "plots" / f"{name}.png", [row])))
    latencies = [t["latency"] for ep in episodes for t in ep.online.values()]
    media = write_overlay_media(out, episodes, cfg.live_rate_hz)
    agree = agreement(*pairs)
    return {
        "online": value_metrics(online_eps),
        "offline": value_metrics(offline_eps),
        "agreement": {**agree.to_dict(), "target": AGREEMENT_TARGET,
                      "ok": bool(agree.frames > 0 and agree.max_abs_diff <= AGREEMENT_TARGET)},
        "node_latency_ms_median": float(np.median(latencies) * 1e3) if latencies else None,
        # A value model is judged against the trivial predictors, fitted on the training episodes only.
        "baselines": trivial_baselines(dataset, meta, reward, episodes, offline) if dataset else None,
        "episodes": per_episode,
        "plots": plots,
        "overlay": media,
    }


def trivial_baselines(dataset: Path, meta, reward, episodes: Sequence[RecordedEpisode],
                      offline: Sequence[np.ndarray]) -> dict[str, Any]:
    """The offline values of the held-out episodes next to the trivial predictors (frame index, state-only,
    state + frame index, training mean), fitted on the training dataset's episodes only."""
    import pyarrow.parquet as pq

    from ove_ros.training.baselines import FrameSet, baseline_report

    table = pq.read_table(sorted((dataset / "data").rglob("*.parquet")),
                          columns=["episode_index", "frame_index", "observation.state", "reward",
                                   "task_index"]).to_pandas()
    tasks = pq.read_table(dataset / "meta" / "tasks.parquet").to_pandas()
    task_of = {int(i): str(t) for t, i in zip(tasks.index, tasks["task_index"], strict=True)}
    train = []
    for ep, rows in table.groupby("episode_index"):
        rows = rows.sort_values("frame_index")
        success = float(np.ravel(rows["reward"].iloc[-1])[0]) > 0
        task = task_of[int(rows["task_index"].iloc[0])]
        train.append({"episode": int(ep), "task": task, "success": success,
                      "states": np.stack([np.asarray(s, np.float64) for s in rows["observation.state"]]),
                      "targets": normalized_targets(len(rows), success, meta.scale_for(task), reward)})
    held = [{"episode": 100_000 + i, "task": ep.task, "success": ep.success, "states": ep.states,
             "targets": normalized_targets(len(ep.stamps), ep.success, meta.scale_for(ep.task), reward)}
            for i, ep in enumerate(episodes)]
    report = baseline_report(FrameSet.from_episodes(train), FrameSet.from_episodes(held),
                             np.concatenate(list(offline)))
    return {k: report[k] for k in ("best_baseline", "margin_ev", "beats_every_baseline", "frames")} | {
        "model_ev": report["model"]["ev"],
        "baseline_ev": {name: b["ev"] for name, b in report["baselines"].items()}}


def print_summary(summary: dict[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Main job: held-out episodes")
    table.add_column("metric")
    table.add_column("live node", justify="right")
    table.add_column("offline", justify="right")
    table.add_column("target", justify="right")

    def fmt(v: Any) -> str:
        return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"

    on, off = summary["report"]["online"], summary["report"]["offline"]
    table.add_row("episodes (success/failure)", f"{on['episodes']} ({on.get('successes', 0)}/"
                  f"{on.get('failures', 0)})", "", "")
    table.add_row("frames valued", str(on["frames"]), str(off["frames"]), "")
    table.add_row("EV", fmt(on["ev"]), fmt(off["ev"]), ">= 0.9")
    table.add_row("AUROC failure @ mid-episode", fmt(on["auroc_mid"]), fmt(off["auroc_mid"]), ">= 0.95")
    agree = summary["report"]["agreement"]
    table.add_row("max |online - offline|", fmt(agree["max_abs_diff"]), f"{agree['frames']} frames",
                  f"<= {AGREEMENT_TARGET:g}")
    table.add_row("node latency median (ms)", fmt(summary["report"]["node_latency_ms_median"]), "", "")
    base = summary["report"].get("baselines")
    if base:
        table.add_row(f"EV of the best trivial predictor ({base['best_baseline']})",
                      "", fmt(base["baseline_ev"][base["best_baseline"]]), "model above it")
    for name, run in summary["report"].get("parity", {}).items():
        table.add_row(f"{name}: max |dV| / |dA| vs training code", fmt(run["value_max_abs_diff"]),
                      fmt(run["advantage_max_abs_diff"]), f"<= {run['tolerance']:g}")
        table.add_row(f"{name}: frames valued, advantages, sign flips",
                      f"{run['valued']}/{run['frames']}", str(run["advantages"]), str(run["sign_flips"]))
    console.print(table)
    timing = Table(title="Stage times (s)")
    timing.add_column("stage")
    timing.add_column("seconds", justify="right")
    timing.add_column("note")
    for stage, info in summary["stages"].items():
        timing.add_row(stage, f"{info['seconds']:.1f}", info.get("note", ""))
    console.print(timing)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.2e}"


def dataset_parity(cfg: DemoConfig, bundle: Path, bags: list[Path], episodes: Sequence[RecordedEpisode],
                   out: Path, logs: Path, env: dict[str, str]) -> dict[str, Any]:
    """The node's values and advantages against the training code's on the held-out bags' dataset frames:
    those the node published live, and those of a second node fed the same bags faster than it can value.

    Each node's input losses show in the replay figures: a message the node never received makes it drop a
    frame the dataset holds (the frame grid then counts one frame less), which the comparison reports as
    mismatched advantages rather than hiding."""
    from ove_ros.bundle import read_bundle_config
    from ove_ros.sim import parity
    from ove_ros.values import RewardConfig

    _, meta = read_bundle_config(bundle)
    reward = RewardConfig.from_dict(meta.reward)
    offline = parity.label_offline(bags, bundle, conversion_config(cfg), REPO_ROOT / cfg.train_config,
                                   out / "parity", REPO_ID + "_heldout")
    live = {bag.name: parity.LiveEpisode({t: d["value"] for t, d in ep.online.items()}, list(ep.advantages))
            for bag, ep in zip(bags, episodes, strict=True)}
    result = {"live": parity.compare(live, offline, meta.n_step, reward)}
    # The live run's parameters, with an input queue deep enough for a replay that bursts every message, and
    # transient_local inputs: each bag's player is a new publisher, matched by the node only after it began.
    params = yaml.safe_load((logs / "value_estimator.yaml").read_text())["/**"]["ros__parameters"]
    replay_params = write_params(logs / "value_estimator_replay.yaml",
                                 {**params, "input_qos.depth": 1000,
                                  "input_qos.durability": "transient_local"})
    node = Process(f"{NODE}_replay", [*executable(NODE, "ove_ros.ros.node"), "--ros-args", "--params-file",
                                      str(replay_params)],
                   logs / "value_estimator_replay.log", dict(env, OMP_NUM_THREADS="1"))
    try:
        topics = ["/" + t for t in sim_topics(cfg.cameras)]
        # Four times the recorded speed: more than the tiny model keeps up with on two cores.
        replayed = parity.replay(bags, topics, NODE, env, logs / "replay_player.log", rate=REPLAY_RATE)
    finally:
        node.stop()
    result["replay"] = parity.compare(replayed, offline, meta.n_step, reward)
    return result


# ----------------------------------------------------------------------------------------- drivers


class Stages:
    """Times the stages and prints one line per stage."""

    def __init__(self, console) -> None:
        self.console = console
        self.times: dict[str, dict[str, Any]] = {}

    def run(self, name: str, fn: Callable[[], Any], note: Callable[[Any], str] | None = None) -> Any:
        self.console.rule(f"[bold]{name}")
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        self.times[name] = {"seconds": seconds, "note": note(result) if note else ""}
        self.console.print(f"[green]done[/green] {name} in {seconds:.1f} s {self.times[name]['note']}")
        return result


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """The sim-mode main job; returns the summary (also written to <output>/summary.json)."""
    from rich.console import Console

    console = Console()
    started = time.perf_counter()
    out = cfg.output.resolve()
    cache = cfg.cache_dir.resolve()
    logs = out / "logs"
    if out.exists():
        shutil.rmtree(out)
    logs.mkdir(parents=True)
    env = ros_child_env()
    console.print(f"main job -> {out} (cache {cache}, ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']})")
    stages = Stages(console)

    sim_key = config_hash("bags", DATA_VERSION, source_digest(), cfg.sim_params(), cfg.episodes,
                          cfg.train_seed, cfg.storage)
    bags_dir = cache / "bags" / sim_key

    def record_training_data() -> list[dict[str, Any]]:
        summary = bags_dir / "recording.json"
        if cfg.use_cache and summary.is_file():
            return json.loads(summary.read_text())["bags"]
        return record_episodes(cfg, bags_dir, logs, cfg.episodes, cfg.train_seed, 0.0, env=env)

    bags = stages.run("1 record training episodes (sim_robot + bag_recorder)", record_training_data,
                      lambda b: f"{len(b)} bags, {sum(x['outcome'] == 'success' for x in b)} successes")

    conv = conversion_config(cfg)
    data_key = config_hash(sim_key, asdict(conv))
    dataset = cache / "datasets" / data_key

    def convert_dataset() -> Path:
        if cfg.use_cache and (dataset / "meta" / "info.json").is_file():
            return dataset
        import datasets

        from ove_ros.training.bag_to_lerobot import convert_bags

        datasets.disable_progress_bars()  # the converter's bar counts frames; HF's would add one per episode
        convert_bags([Path(b["path"]) for b in bags], dataset, REPO_ID, conv, overwrite=True)
        return dataset

    stages.run("2 bags -> LeRobot dataset (ove_ros.training.bag_to_lerobot)", convert_dataset,
               lambda p: str(p))

    train_text = (REPO_ROOT / cfg.train_config).read_text() if not Path(cfg.train_config).is_absolute() \
        else Path(cfg.train_config).read_text()
    run_name = "demo_" + config_hash(data_key, train_text, cfg.train_steps, list(cfg.train_overrides))
    bundle = out / "bundle"
    bundle_path, train_info = stages.run(
        "3+4 train (ove_ros.training.train) and bundle (ove_ros.training.convert)",
        lambda: train_and_bundle(cfg, dataset, cache / "runs", run_name, bundle, logs,
                                 [f"data.repo_id={REPO_ID}"]),
        lambda r: f"{r[1]['checkpoint']}",
    )

    def live() -> list[dict[str, Any]]:
        from ove_ros.bundle import read_bundle_config

        model_cfg, _ = read_bundle_config(bundle_path)
        node_params = write_params(logs / "value_estimator.yaml", {
            "checkpoint": str(bundle_path), "device": "cpu", "dtype": "float32",
            "camera_topics": [f"camera/{c}/image_raw" for c in model_cfg.camera_names],
            "camera_transports": ["raw"], "joint_states_topic": "joint_states",
            "sync.max_age": 0.0,  # stamps are simulated time, not wall time
            "resize": "float",  # training's resize filter exactly, so values compare with the training code
            # Reliable with room for a few seconds of frames: a message the node loses but the recorder keeps
            # would make the node drop a frame the dataset holds.
            "input_qos.reliability": "reliable", "input_qos.depth": 200,
        })
        node = Process(NODE, [*executable(NODE, "ove_ros.ros.node"), "--ros-args", "--params-file",
                              str(node_params)], logs / "value_estimator.log", dict(env, OMP_NUM_THREADS="1"))
        extra = {f"{NODE}/value": "ove_ros/msg/ValueEstimate", f"{NODE}/advantage": "ove_ros/msg/Advantage",
                 f"{NODE}/overlay": "sensor_msgs/msg/Image"}
        try:
            seeds = stratified_seeds(cfg, cfg.heldout, cfg.heldout_seed)
            return record_episodes(cfg, out / "heldout_bags", logs, cfg.heldout, cfg.heldout_seed,
                                   cfg.live_rate_hz, extra, subscribers=2, env=env, seeds=seeds)
        except StageError as exc:
            raise StageError(f"{exc}\nvalue_estimator log {node.log}:\n{node.tail()}") from None
        finally:
            node.stop()

    held_bags = stages.run("5 live value_estimator on held-out seeds", live, lambda b: f"{len(b)} bags")

    episodes: list[RecordedEpisode] = []

    def report() -> dict[str, Any]:
        from ove_ros.sim.episodes import ROBOT_JOINTS

        episodes[:] = [read_episode_bag(Path(b["path"]), cfg.cameras, ROBOT_JOINTS, NODE) for b in held_bags]
        assign_node_outputs(episodes)
        return build_report(cfg, bundle_path, episodes, out, dataset)

    rep = stages.run("6 offline check, metrics, plots, overlay", report)

    def parity_check() -> dict[str, Any]:
        held = [Path(b["path"]) for b in held_bags]
        return dataset_parity(cfg, bundle_path, held, episodes, out, logs, env)

    rep["parity"] = stages.run(
        "7 live node vs training code through the dataset (live run; replay faster than the model)",
        parity_check, lambda r: f"live max |dV| {_fmt(r['live']['value_max_abs_diff'])}, max |dA| "
        f"{_fmt(r['live']['advantage_max_abs_diff'])}; replay: {r['replay']['not_valued']} of "
        f"{r['replay']['frames']} frames skipped, max |dA| {_fmt(r['replay']['advantage_max_abs_diff'])}")
    summary = {
        "mode": "sim",
        "config": asdict(cfg),
        "dataset": str(dataset),
        "bundle": str(bundle_path),
        "training": train_info,
        "report": rep,
        "stages": stages.times,
        "total_seconds": time.perf_counter() - started,
    }
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2))
    print_summary(summary, console)
    media = rep["overlay"]
    console.print(f"total {summary['total_seconds']:.0f} s. Look at:\n"
                  f"  {out / 'summary.json'}  (metrics)\n  {out / 'value_curves.png'}  (value curves)\n"
                  f"  {media.get('strip', '-')}  and  {media.get('video', '-')}  (node overlay)\n"
                  f"  {out / 'heldout_bags'}  (bags of the live run)\n  {out / 'logs'}  (process logs)")
    return summary


# -------------------------------------------------------------------------------------------- real


@dataclass
class RealConfig:
    """Real-data mode: the G1 pick-bottle episodes (LeRobot v2.1, converted to v3 in a cached copy)."""

    data: Path = REPO_ROOT.parent / "shared" / "data" / "g1_pick_bottle_mini"
    output: Path = Path("outputs/demo_real")
    cache_dir: Path = Path("outputs/cache/demo")
    heldout: int = 2  # the last episodes are held out
    image_width: int = 64  # cameras are stored at this width (aspect kept) for CPU training
    train_steps: int = 600
    train_config: str = DEMO_TRAIN_CONFIG
    train_overrides: tuple[str, ...] = ()
    use_cache: bool = True


def prepare_real_dataset(cfg: RealConfig) -> tuple[Path, str, int]:
    """A v3 copy of the v2.1 dataset (converted once, cached); returns (root, repo_id, episodes)."""
    info = json.loads((cfg.data / "meta" / "info.json").read_text())
    repo_id = f"local/{cfg.data.name}"
    key = config_hash("real", str(cfg.data.resolve()), info.get("total_frames"), info.get("codebase_version"))
    parent = cfg.cache_dir.resolve() / "real" / key
    root = parent / repo_id
    if not (cfg.use_cache and (root / "meta" / "info.json").is_file()
            and json.loads((root / "meta" / "info.json").read_text())["codebase_version"].startswith("v3")):
        shutil.rmtree(parent, ignore_errors=True)
        shutil.copytree(cfg.data, root)
        if not str(info.get("codebase_version", "")).startswith("v3"):
            from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset

            convert_dataset(repo_id, root=parent, push_to_hub=False)
    total = int(json.loads((root / "meta" / "info.json").read_text())["total_episodes"])
    return root, repo_id, total


def _decode_video(path: Path, width: int, height: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Every frame of a video, decoded in order (one pass: seeking per sample is ~100x slower on AV1)."""
    import av

    times, frames = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            times.append(float(frame.time))
            frames.append(frame.to_ndarray(format="rgb24", width=width, height=height))
    return np.asarray(times), frames


def training_copy(root: Path, repo_id: str, out: Path, width: int) -> Path:
    """A LeRobot v3 copy at training resolution: cameras as small PNG frames, plus the reward / is_done
    columns of the seed convention (demonstrations: every episode a success)."""
    import pandas as pd
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from ove_ros.training.bag_to_lerobot import label_episode

    info = json.loads((root / "meta" / "info.json").read_text())
    cams = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    meta_files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    episodes = pd.concat([pd.read_parquet(p) for p in meta_files])
    data = pd.concat([pd.read_parquet(p) for p in sorted((root / "data").rglob("*.parquet"))])
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    task_of = {int(i): str(t) for t, i in zip(tasks.index, tasks["task_index"], strict=True)}
    src_h, src_w = info["features"][cams[0]]["shape"][:2]
    height = int(round(width * src_h / src_w))
    decoded: dict[tuple[str, str], tuple[np.ndarray, list[np.ndarray]]] = {}
    features = {k: {"dtype": "image", "shape": (height, width, 3), "names": ["height", "width", "channels"]}
                for k in cams}
    for key in ("observation.state", "action"):
        if key in info["features"]:
            src = info["features"][key]
            features[key] = {"dtype": src["dtype"], "shape": tuple(src["shape"]), "names": src["names"]}
    features["reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    features["is_done"] = {"dtype": "bool", "shape": (1,), "names": None}
    partial = out.with_name(out.name + ".partial")  # renamed into place only when complete
    shutil.rmtree(partial, ignore_errors=True)
    dataset = LeRobotDataset.create(repo_id, info["fps"], features=features, root=partial, use_videos=False,
                                    robot_type=info.get("robot_type"), image_writer_threads=1)
    for _, ep in episodes.sort_values("episode_index").iterrows():
        rows = data[data["episode_index"] == ep["episode_index"]].sort_values("frame_index")
        images = {}
        for cam in cams:
            file = root / info["video_path"].format(
                video_key=cam, chunk_index=int(ep[f"videos/{cam}/chunk_index"]),
                file_index=int(ep[f"videos/{cam}/file_index"]))
            if (cam, str(file)) not in decoded:
                decoded[(cam, str(file))] = _decode_video(file, width, height)
            times, frames = decoded[(cam, str(file))]
            wanted = float(ep[f"videos/{cam}/from_timestamp"]) + rows["timestamp"].to_numpy()
            images[cam] = [frames[int(np.argmin(np.abs(times - t)))] for t in wanted]
        for i, (_, row) in enumerate(rows.iterrows()):
            frame = {cam: images[cam][i] for cam in cams}
            for key in ("observation.state", "action"):
                if key in features:
                    frame[key] = np.asarray(row[key], dtype=np.float32)
            frame["reward"] = np.zeros(1, dtype=np.float32)  # set for the whole episode by label_episode
            frame["is_done"] = np.zeros(1, dtype=bool)
            frame["task"] = task_of[int(row["task_index"])]
            dataset.add_frame(frame)
        label_episode(dataset.episode_buffer, "success")
        dataset.save_episode()
    dataset.finalize()
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out


def run_real(cfg: RealConfig) -> dict[str, Any]:
    """Train on the real episodes but the last ``heldout``, report EV on those."""
    from rich.console import Console

    console = Console()
    started = time.perf_counter()
    out = cfg.output.resolve()
    shutil.rmtree(out, ignore_errors=True)
    logs = out / "logs"
    logs.mkdir(parents=True)
    stages = Stages(console)
    root, repo_id, total = stages.run("1 v2.1 -> v3 copy of the real dataset",
                                      lambda: prepare_real_dataset(cfg),
                                      lambda r: f"{r[2]} episodes at {r[0]}")
    heldout = list(range(total - cfg.heldout, total))
    small = root.parents[1] / f"w{cfg.image_width}" / repo_id

    def shrink() -> Path:
        if cfg.use_cache and (small / "meta" / "info.json").is_file():
            return small
        return training_copy(root, repo_id, small, cfg.image_width)

    stages.run("2 training-resolution copy (one decoding pass)", shrink, lambda p: str(p))
    demo_cfg = DemoConfig(train_steps=cfg.train_steps, train_config=cfg.train_config,
                          train_overrides=cfg.train_overrides, use_cache=cfg.use_cache)
    extra = [f"data.repo_id={repo_id}", f"data.val_episodes=[{','.join(map(str, heldout))}]"]
    run_name = "real_" + config_hash(str(small), cfg.train_steps, (REPO_ROOT / cfg.train_config).read_text(),
                                     list(cfg.train_overrides))
    bundle, train_info = stages.run(
        "3 train and bundle", lambda: train_and_bundle(demo_cfg, small, cfg.cache_dir.resolve() / "runs",
                                                       run_name, out / "bundle", logs, extra),
        lambda r: r[1]["checkpoint"])

    def evaluate() -> dict[str, Any]:
        cmd = [sys.executable, "-m", "ove_ros.training.evaluate", f"config={cfg.train_config}",
               f"data.root={small}",
               *extra, f"evaluate.checkpoint={train_info['checkpoint']}", "evaluate.split=val",
               f"evaluate.output_dir={out / 'eval'}", "evaluate.video_episodes=1",
               f"evaluate.plot_episodes={cfg.heldout}", "training.num_threads=1"]
        with (logs / "evaluate.log").open("w") as f:
            code = subprocess.run(cmd, cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=f,
                                  stderr=subprocess.STDOUT).returncode
        if code != 0:
            raise StageError(f"evaluation failed; see {logs / 'evaluate.log'}")
        return json.loads((out / "eval" / "metrics.json").read_text())

    metrics = stages.run("4 evaluate held-out episodes", evaluate,
                         lambda m: f"EV {m.get('ev', float('nan')):.3f}")
    summary = {"mode": "real", "dataset": str(root), "training_copy": str(small), "heldout_episodes": heldout,
               "bundle": str(bundle),
               "training": train_info, "heldout_metrics": metrics, "stages": stages.times,
               "total_seconds": time.perf_counter() - started}
    (out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2))
    console.print(f"real data: EV on held-out episodes {heldout} = {metrics.get('ev', float('nan')):.4f} "
                  f"(MAE {metrics.get('mae', float('nan')):.4f}); total {summary['total_seconds']:.0f} s.\n"
                  f"Look at {out / 'summary.json'} and {out / 'eval'} (plots, video).")
    return summary


# -------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ove_ros.sim.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="sim", choices=["sim", "real"],
                        help="sim: the full ROS 2 pipeline on MetaWorld; real: train/evaluate on the G1 data")
    parser.add_argument("--output", type=Path, help="output folder (replaced); default outputs/demo[_real]")
    parser.add_argument("--cache-dir", type=Path, default=DemoConfig.cache_dir)
    parser.add_argument("--no-cache", action="store_true", help="regenerate bags, dataset and training run")
    parser.add_argument("--episodes", type=int, default=DemoConfig.episodes, help="training episodes (sim)")
    parser.add_argument("--heldout", type=int, help=f"held-out episodes (sim: {DemoConfig.heldout} live "
                        f"episodes; real: {RealConfig.heldout})")
    parser.add_argument("--tasks", nargs="+", default=list(DemoConfig.tasks))
    parser.add_argument("--max-steps", type=int, default=DemoConfig.max_steps,
                        help="frames per episode at most (sim)")
    parser.add_argument("--image-size", type=int, default=DemoConfig.image_size)
    parser.add_argument("--train-steps", type=int, help=f"optimizer steps (default {DemoConfig.train_steps} "
                        f"sim, {RealConfig.train_steps} real)")
    parser.add_argument("--rate", type=float, default=DemoConfig.live_rate_hz,
                        help="frames per second of the live run (sim)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default=DemoConfig.storage)
    parser.add_argument("--data", type=Path, help="real mode: the LeRobot v2.1/v3 dataset folder")
    parser.add_argument("--train-config", default=DEMO_TRAIN_CONFIG)
    parser.add_argument("overrides", nargs="*", default=[], help="training overrides key=value")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.mode == "real":
            real = RealConfig(output=args.output or Path("outputs/demo_real"), cache_dir=args.cache_dir,
                              train_config=args.train_config, train_overrides=tuple(args.overrides),
                              use_cache=not args.no_cache)
            if args.data:
                real.data = args.data
            if args.heldout:
                real.heldout = args.heldout
            if args.train_steps:
                real.train_steps = args.train_steps
            run_real(real)
        else:
            run_demo(DemoConfig(
                output=args.output or Path("outputs/demo"), cache_dir=args.cache_dir,
                use_cache=not args.no_cache,
                tasks=tuple(args.tasks), image_size=args.image_size, max_steps=args.max_steps,
                episodes=args.episodes, heldout=args.heldout or DemoConfig.heldout,
                train_steps=args.train_steps or DemoConfig.train_steps,
                train_config=args.train_config, train_overrides=tuple(args.overrides), live_rate_hz=args.rate,
                storage=args.storage,
            ))
    except (StageError, FileNotFoundError, ValueError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
