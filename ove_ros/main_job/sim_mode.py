# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The sim-mode main job: record, convert, train, bundle, run the live node, report, parity (cached stages).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ove_ros.main_job.config import (
    DATA_VERSION,
    NODE,
    REPO_ID,
    REPO_ROOT,
    DemoConfig,
    config_hash,
    jsonable,
    source_digest,
)
from ove_ros.main_job.episode_bags import RecordedEpisode, assign_node_outputs, read_episode_bag
from ove_ros.main_job.parity import dataset_parity
from ove_ros.main_job.processes import Process, executable, ros_child_env, write_params
from ove_ros.main_job.record import record_episodes, stratified_seeds
from ove_ros.main_job.report import build_report, fmt_diff, print_summary
from ove_ros.main_job.stages import StageError, Stages
from ove_ros.main_job.train_stage import conversion_config, train_and_bundle


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
    run_name = "demo_" + config_hash(data_key, train_text, cfg.train_steps,
                                     [*cfg.training_args(), *cfg.train_overrides])
    bundle = out / "bundle"
    bundle_path, train_info = stages.run(
        "3+4 train (ove_ros.training.train) and bundle (ove_ros.training.convert)",
        lambda: train_and_bundle(cfg, dataset, cache / "runs", run_name, bundle, logs,
                                 [f"data.repo_id={REPO_ID}", *cfg.training_args()]),
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
        parity_check, lambda r: f"live max |dV| {fmt_diff(r['live']['value_max_abs_diff'])}, max |dA| "
        f"{fmt_diff(r['live']['advantage_max_abs_diff'])}; replay: {r['replay']['not_valued']} of "
        f"{r['replay']['frames']} frames skipped, max |dA| {fmt_diff(r['replay']['advantage_max_abs_diff'])}")
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
    (out / "summary.json").write_text(json.dumps(jsonable(summary), indent=2))
    print_summary(summary, console)
    media = rep["overlay"]
    console.print(f"total {summary['total_seconds']:.0f} s. Look at:\n"
                  f"  {out / 'summary.json'}  (metrics)\n  {out / 'value_curves.png'}  (value curves)\n"
                  f"  {media.get('strip', '-')}  and  {media.get('video', '-')}  (node overlay)\n"
                  f"  {out / 'heldout_bags'}  (bags of the live run)\n  {out / 'logs'}  (process logs)")
    return summary
