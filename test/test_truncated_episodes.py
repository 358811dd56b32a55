# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Episodes cut short (a START the recording never ENDs) through the dataset path: the converter labels them
``truncated``, training takes no value target from them, and offline advantages bootstrap at the cut exactly
as the live node's advantage stream does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ove_ros.streaming import StreamingAdvantage  # noqa: E402
from ove_ros.training import ros_types  # noqa: E402
from ove_ros.training.bag_config import load_config, load_labels  # noqa: E402
from ove_ros.training.bag_to_lerobot import EPISODES_META, convert_bags  # noqa: E402
from ove_ros.values import RewardConfig, episode_rewards, n_step_advantages  # noqa: E402

from bag_fixtures import BagSpec, CameraSpec, EventSpec, write_bag  # noqa: E402
from dataset_fixtures import tiny_config  # noqa: E402

FPS = 30
CAM = CameraSpec()
N_STEP = 4


def _config():
    cam = f"cameras=[{{name: {CAM.name}, topic: {CAM.topic}}}]"
    return load_config(None, [f"fps={FPS}", "task=pick", cam,
                              "state={topic: /joint_states, joints: [j1, j2]}", "progress=false",
                              "video.use_videos=false"])


def _cut_bag(tmp_path: Path) -> Path:
    """A success from 0.10 to 0.40 s, then an episode from 0.55 s that the recording (1 s) never ENDs."""
    events = [EventSpec(0.10, ros_types.EVENT_START, episode_id="done"),
              EventSpec(0.40, ros_types.EVENT_END, ros_types.OUTCOME_SUCCESS, episode_id="done"),
              EventSpec(0.55, ros_types.EVENT_START, episode_id="cut")]
    return write_bag(tmp_path / "cut", BagSpec(cameras=[CAM], action_topic=None, events=events), "mcap")


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("truncated")
    out = root / "dataset"
    # A blanket --outcome does not apply to an episode the recording shows was cut short.
    report = convert_bags([_cut_bag(root)], out, "test/cut", _config(), outcome="success")
    return root, out, report


def _frames(root: Path) -> pd.DataFrame:
    files = sorted((root / "data").rglob("*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files]).sort_values("index")


def test_the_converter_labels_a_cut_episode_truncated(converted):
    _, out, report = converted
    assert [(e.episode_id, e.outcome, e.outcome_source) for e in report.episodes] == [
        ("done", "success", "event"), ("cut", "truncated", "event")]
    frames = _frames(out)
    cut = frames[frames["episode_index"] == 1]
    assert len(cut) > N_STEP and not cut["is_done"].any() and (cut["reward"] == 0).all()
    done = frames[frames["episode_index"] == 0]
    assert done["reward"].iloc[-1] == 1.0 and bool(done["is_done"].iloc[-1])
    meta = json.loads((out / EPISODES_META).read_text())
    assert [e["outcome"] for e in meta["episodes"]] == ["success", "truncated"]


def test_a_label_still_beats_the_cut(tmp_path):
    labels = tmp_path / "labels.yaml"
    labels.write_text("cut/cut: failure\n", encoding="utf-8")
    report = convert_bags([_cut_bag(tmp_path)], tmp_path / "dataset", "test/cut", _config(),
                          labels=load_labels(labels))
    assert [e.outcome for e in report.episodes] == ["success", "failure"]


def test_cut_episodes_give_no_value_targets(converted):
    from ove_ros.training.dataset import compute_value_targets, open_lerobot_dataset
    from ove_ros.training.train import prepare_data

    root, out, _ = converted
    targets = compute_value_targets(open_lerobot_dataset("test/cut", out), RewardConfig())
    assert targets.truncated == [1] and targets.complete_episodes.tolist() == [0]
    assert targets.episode_success == {0: True}
    # The scale comes from the complete episode only (its return: one step penalty per frame but the last).
    length = int((targets.episode_index == 0).sum())
    assert targets.normalizers["pick"] == pytest.approx(length - 1)
    cut = targets.episode_index == 1
    assert np.allclose(targets.rewards[cut], episode_rewards(int(cut.sum()), None))
    cfg = tiny_config(root / "runs", out, repo_id="test/cut", **{"data.val_fraction": 0.0})
    data = prepare_data(cfg)
    assert data.train_episodes == [0] and data.val_episodes == []


def test_offline_advantages_of_a_cut_episode_equal_the_live_stream(converted):
    from ove_ros.training.advantage import compute_advantages
    from ove_ros.training.dataset import compute_value_targets, open_lerobot_dataset

    _, out, _ = converted
    targets = compute_value_targets(open_lerobot_dataset("test/cut", out), RewardConfig())
    values = np.random.default_rng(0).uniform(-1.0, 0.0, len(targets))
    scale = targets.normalizers["pick"]
    scales = np.full(len(targets), scale)
    adv = compute_advantages(targets, values, scales, "n_step", N_STEP)
    cut = np.flatnonzero(targets.episode_index == 1)
    v = values[cut]
    expected = n_step_advantages(targets.rewards[cut] / scale, v, N_STEP, truncated=True)
    assert np.allclose(adv[cut], expected)
    # Scoring the cut as a success (V = 0 after the last frame) would differ near the end.
    assert not np.allclose(adv[cut], n_step_advantages(targets.rewards[cut] / scale, v, N_STEP))
    stream = StreamingAdvantage(N_STEP, scale, RewardConfig())
    records = []
    for t, value in enumerate(v):
        records += stream.push(t, float(t), float(value))
    records += stream.end_episode(None)
    live = {r.tick: r.advantage for r in records}
    assert sorted(live) == list(range(len(cut) - 1))  # the last frame has nothing to bootstrap from
    assert np.allclose([live[t] for t in sorted(live)], adv[cut][:-1], atol=1e-6)
    # MC advantages of a cut episode: the return up to the cut, then the last frame's value.
    mc = compute_advantages(targets, values, scales, "mc")
    assert np.allclose(mc[cut], n_step_advantages(targets.rewards[cut] / scale, v, len(cut), truncated=True))
