# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Stage 1 and the live stage's recording: ``sim_robot`` and ``bag_recorder`` as ROS 2 processes -> bags.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ove_ros.main_job.config import DemoConfig
from ove_ros.main_job.processes import Process, executable, ros_child_env, write_params
from ove_ros.main_job.stages import StageError


def sim_topics(cameras: Sequence[str]) -> dict[str, str]:
    """Recorded simulator topics (relative names) and their types."""
    topics = {f"camera/{c}/image_raw": "sensor_msgs/msg/Image" for c in cameras}
    topics["joint_states"] = "sensor_msgs/msg/JointState"
    topics["episode_events"] = "ove_ros/msg/EpisodeEvent"
    return topics


def stratified_seeds(cfg: DemoConfig, count: int, first_seed: int) -> list[int]:
    """Seeds from ``first_seed`` on, one per episode (tasks cycle), alternating between seeds whose episode
    gets a fatal mistake and seeds whose does not, so a small held-out set still has both outcomes."""
    from ove_ros.sim.episodes import plan_mistakes

    sim_cfg = cfg.sim_config()
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
