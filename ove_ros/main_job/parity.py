# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Stage 7: the live node against the training code through the dataset path (live run, and a fast replay).

The held-out recordings are converted by the bag converter (lossless frames) and labelled by the training
code (``ove_ros.training.advantage``: values and n-step advantages); the comparison itself and the replay are
runtime tools in :mod:`ove_ros.sim.parity`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ove_ros.main_job.config import NODE, REPLAY_RATE, REPO_ID, REPO_ROOT, DemoConfig
from ove_ros.main_job.episode_bags import RecordedEpisode
from ove_ros.main_job.processes import Process, executable, write_params
from ove_ros.main_job.record import sim_topics
from ove_ros.main_job.train_stage import conversion_config
from ove_ros.sim.parity import LiveEpisode, OfflineEpisode, compare, replay


def label_offline(bags: Sequence[Path], bundle: Path, conversion, train_config: Path, work: Path,
                  repo_id: str) -> dict[str, OfflineEpisode]:
    """Convert ``bags`` (one episode each) and label them with the training code; by bag name."""
    from dataclasses import replace

    import pyarrow.parquet as pq

    from ove_ros.bundle import read_bundle_config
    from ove_ros.training.advantage import label_dataset
    from ove_ros.training.bag_to_lerobot import EPISODES_META, convert_bags
    from ove_ros.training.config import load_config

    _, meta = read_bundle_config(bundle)
    dataset = work / "dataset"
    conversion = replace(conversion, video=replace(conversion.video, use_videos=False), progress=False)
    convert_bags(list(bags), dataset, repo_id, conversion, overwrite=True)
    cfg = load_config(train_config, [f"data.repo_id={repo_id}", f"data.root={dataset}", "run_name=parity",
                                     f"output_root={work / 'runs'}", "data.num_workers=0",
                                     f"data.cache_dir={work / 'cache'}", "training.num_threads=1",
                                     f"advantage.checkpoint={bundle}", "advantage.mode=n_step",
                                     f"advantage.n_step={meta.n_step}", "advantage.overwrite=true",
                                     f"advantage.output_root={work / 'labelled'}"], require_run_name=False)
    label_dataset(cfg)
    table = pq.read_table(sorted((work / "labelled" / "data").rglob("*.parquet"))).to_pandas()
    records = json.loads((dataset / EPISODES_META).read_text())["episodes"]
    out = {}
    for rec in records:
        rows = table[table["episode_index"] == rec["episode_index"]].sort_values("frame_index")
        out[rec["source_bag"]] = OfflineEpisode(
            values=np.asarray([float(np.ravel(v)[0]) for v in rows["value"]]),
            advantages=np.asarray([float(np.ravel(a)[0]) for a in rows["advantage"]]),
            success=rec["outcome"] == "success", scale=meta.scale_for(rec["task"]))
    return out


def dataset_parity(cfg: DemoConfig, bundle: Path, bags: list[Path], episodes: Sequence[RecordedEpisode],
                   out: Path, logs: Path, env: dict[str, str]) -> dict[str, Any]:
    """The node's values and advantages against the training code's on the held-out bags' dataset frames:
    those the node published live, and those of a second node fed the same bags faster than it can value.

    Each node's input losses show in the replay figures: a message the node never received makes it drop a
    frame the dataset holds (the frame grid then counts one frame less), which the comparison reports as
    mismatched advantages rather than hiding."""
    from ove_ros.bundle import read_bundle_config
    from ove_ros.values import RewardConfig

    _, meta = read_bundle_config(bundle)
    reward = RewardConfig.from_dict(meta.reward)
    offline = label_offline(bags, bundle, conversion_config(cfg), REPO_ROOT / cfg.train_config,
                            out / "parity", REPO_ID + "_heldout")
    live = {bag.name: LiveEpisode({t: d["value"] for t, d in ep.online.items()}, list(ep.advantages))
            for bag, ep in zip(bags, episodes, strict=True)}
    result = {"live": compare(live, offline, meta.n_step, reward)}
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
        replayed = replay(bags, topics, NODE, env, logs / "replay_player.log", rate=REPLAY_RATE)
    finally:
        node.stop()
    result["replay"] = compare(replayed, offline, meta.n_step, reward)
    return result
