# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The main job end to end, shortened: sim robot -> bags -> dataset -> train -> bundle -> live node -> report.

One run of ``python -m ove_ros.main_job`` with tiny sizes (2 tasks, 4 training and 2 held-out episodes of at
most 30 frames, 10 optimizer steps, an ensemble of 2 models), then checks that every stage left what the next
one needs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO_ROOT, installed_executable, ros_env

MAX_STEPS = 30
TRAIN_EPISODES = 4
HELDOUT = 2


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, dict, subprocess.CompletedProcess]:
    for name in ("sim_robot", "bag_recorder", "value_estimator"):
        installed_executable(name)  # fails with "run scripts/setup.sh" when the build is missing
    root = tmp_path_factory.mktemp("main_job")
    out = root / "demo"
    cmd = [sys.executable, "-m", "ove_ros.main_job", "--output", str(out), "--cache-dir", str(root / "cache"),
           "--no-cache", "--episodes", str(TRAIN_EPISODES), "--heldout", str(HELDOUT), "--tasks", "reach-v3",
           "push-v3", "--max-steps", str(MAX_STEPS), "--train-steps", "10", "--rate", "20", "ensemble=2"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=ros_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return out, json.loads((out / "summary.json").read_text()), proc


def test_training_bags_hold_the_sim_topics(demo_run):
    from rosbags.rosbag2 import Reader

    _, summary, _ = demo_run
    bags_root = Path(summary["dataset"]).parents[1] / "bags"
    recordings = list(bags_root.glob("*/recording.json"))
    assert len(recordings) == 1
    bags = json.loads(recordings[0].read_text())["bags"]
    assert len(bags) == TRAIN_EPISODES
    for bag in bags:
        assert bag["outcome"] in ("success", "failure")
        assert bag["episode_id"].startswith(("reach-v3", "push-v3"))
        with Reader(bag["path"]) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
            types = {c.topic: c.msgtype for c in reader.connections}
        frames = counts["/joint_states"]
        assert 2 <= frames <= MAX_STEPS
        assert counts["/camera/topview/image_raw"] == counts["/camera/gripperPOV/image_raw"] == frames
        assert counts["/episode_events"] == 2
        assert types["/episode_events"] == "ove_ros/msg/EpisodeEvent"
        assert Path(bag["path"], "metadata.yaml").is_file()  # closed cleanly
        assert any(Path(bag["path"]).glob("*.mcap"))


def test_dataset_loads_with_reward_and_done(demo_run):
    from ove_ros.training.dataset import open_lerobot_dataset

    _, summary, _ = demo_run
    dataset = open_lerobot_dataset("sim/metaworld_demo", summary["dataset"], video_backend="pyav")
    assert dataset.meta.total_episodes == TRAIN_EPISODES
    assert set(dataset.meta.camera_keys) == {"observation.images.topview", "observation.images.gripperPOV"}
    reward = np.asarray(dataset.hf_dataset["reward"], dtype=np.float32).reshape(-1)
    done = np.asarray(dataset.hf_dataset["is_done"], dtype=bool).reshape(-1)
    episode = np.asarray(dataset.hf_dataset["episode_index"]).reshape(-1)
    assert done.sum() == TRAIN_EPISODES
    for ep in range(TRAIN_EPISODES):
        r, d = reward[episode == ep], done[episode == ep]
        assert d[-1] and not d[:-1].any()
        assert abs(r[-1]) == 1.0 and not r[:-1].any()
    item = dataset[0]
    assert tuple(item["observation.images.topview"].shape) == (3, 64, 64)
    assert tuple(item["observation.state"].shape) == (9,)


def test_checkpoint_and_bundle_load(demo_run):
    from ove_ros.bundle import ensemble_members, read_bundle_config
    from ove_ros.engine import EngineConfig, InferenceEngine
    from ove_ros.training import checkpoint as ckpt

    _, summary, _ = demo_run
    checkpoint = Path(summary["training"]["checkpoint"])
    assert ckpt.read_meta(checkpoint)["step"] == 10
    model_cfg, meta = read_bundle_config(summary["bundle"])
    # Two members: the run itself and one more trained with the next seed, on the same data.
    assert ensemble_members(summary["bundle"]) == 2 and len(summary["training"]["members"]) == 2
    assert [m["seed"] for m in meta.training["members"]] == [0, 1]
    assert ckpt.read_meta(Path(summary["training"]["members"][1]))["step"] == 10
    assert model_cfg.camera_names == ["topview", "gripperPOV"]
    assert meta.joint_names[:2] == ["right_j0", "right_j1"] and len(meta.joint_names) == 9
    assert set(meta.task_normalizers) <= {"reach the goal", "push the puck to the goal"}
    engine = InferenceEngine.from_bundle(summary["bundle"], EngineConfig(device="cpu", warmup_iters=0))
    images = [np.zeros((64, 64, 3), np.uint8)] * 2
    assert model_cfg.time_bin_frames > 0  # the default model reads the elapsed time: the frame index
    out = engine.infer(images, np.zeros(9), "reach the goal", frame_index=12)
    assert -1.0 <= out.value <= 0.0
    with pytest.raises(ValueError, match="pass frame_index"):
        engine.infer(images, np.zeros(9), "reach the goal")


def test_live_node_valued_the_heldout_frames(demo_run):
    out, summary, _ = demo_run
    report = summary["report"]
    episodes = report["episodes"]
    assert len(episodes) == HELDOUT
    assert all(e["episode_id"].split("/seed")[1].isdigit() for e in episodes)
    assert all(int(e["episode_id"].split("/seed")[1]) >= 100_000 for e in episodes)  # new seeds
    for ep in episodes:
        # How many frames the tiny model values live depends on the machine's load; each episode has some.
        assert 0 < ep["valued_by_node"] <= ep["frames"], ep
    agree = report["agreement"]
    assert agree["frames"] == sum(e["valued_by_node"] for e in episodes)  # every valued frame compared
    assert agree["max_abs_diff"] <= 1e-3 and agree["ok"]
    # Through the dataset path, live: every value and advantage the node published equals the training
    # code's for its frame. The replay faster than the model is reported (its input losses depend on the
    # machine); test_live_parity.py checks the same with skipped frames on a controlled recording.
    live = report["parity"]["live"]
    assert live["valued"] > 0 and live["advantages"] > 0, live
    assert live["value_max_abs_diff"] <= 1e-3, live  # every valued frame is the dataset frame it claims
    # The advantages are reported here and asserted frame by frame in test_live_parity.py on a controlled
    # recording: a live publisher's END can still overtake data held up in DDS repair on a loaded machine.
    assert live["advantage_max_abs_diff"] is not None and "advantages_over_tolerance" in live
    assert report["parity"]["replay"]["frames"] == live["frames"]
    # The node's advantages on the frames where the simulated expert paused, against clean stretches.
    mistakes = report["mistake_advantage"]
    assert mistakes["frames_clean"] > 0
    assert mistakes["frames_after_mistake"] == 0 or mistakes["episodes_with_pauses"] > 0
    assert mistakes["frames_after_mistake"] == 0 or 0.0 <= mistakes["auroc"] <= 1.0
    release = mistakes["early_release"]  # onsets found by running the held-out seeds again without cameras
    assert release["frames_clean"] > 0 and (release["frames_after_mistake"] > 0) == (release["episodes"] > 0)
    base = report["baselines"]
    assert base["best_baseline"] in base["baseline_ev"] and "frame_index_mean" in base["baseline_ev"]
    # The causal ceiling on the same frames, from the training and held-out seeds replayed without cameras.
    ceiling = base["causal_ceiling_ev"]
    assert set(ceiling) == {"first_change", "joints_0.01"}
    assert all(np.isfinite(v) and v <= 1.0 for v in ceiling.values()), ceiling
    assert (out / "heldout_bags" / "recording.json").is_file()
    recorded = json.loads((out / "heldout_bags" / "recording.json").read_text())["bags"]
    assert all(b["messages"]["/value_estimator/value"] > 0 for b in recorded)


def test_report_has_metrics_plots_and_overlay(demo_run):
    out, summary, proc = demo_run
    report = summary["report"]
    for side in ("online", "offline"):
        for key in ("ev", "auroc_mid", "frames", "episodes", "successes", "failures"):
            assert key in report[side]
    assert report["online"]["episodes"] == HELDOUT
    assert Path(report["plots"][0]).is_file() and len(report["plots"]) == HELDOUT + 1
    assert Path(report["overlay"]["video"]).stat().st_size > 0
    assert Path(report["overlay"]["strip"]).is_file()
    for stage in summary["stages"].values():
        assert stage["seconds"] > 0
    assert "summary.json" in proc.stdout and "EV" in proc.stdout
