# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Real G1 data (../shared/data, LeRobot v2.1, AV1 video): convert a copy, load frames, train 2 steps."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from ove_ros.training import checkpoint as ckpt
from ove_ros.training.dataset import (
    ValueFrameDataset,
    camera_keys,
    compute_value_targets,
    joint_names,
    open_lerobot_dataset,
    state_stats,
)
from ove_ros.training.modeling import model_from_checkpoint
from ove_ros.training.train import train
from ove_ros.values import RewardConfig

from conftest import SHARED_DATA
from dataset_fixtures import tiny_config

REPO_ID = "local/g1_pick_bottle_mini"


@pytest.fixture(scope="module")
def g1_root(tmp_path_factory):
    source = SHARED_DATA / "g1_pick_bottle_mini"
    if not source.is_dir():
        pytest.skip(f"real-data fixture {source} is absent (it lives beside the checkout in ../shared/data)")
    from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset

    parent = tmp_path_factory.mktemp("g1")
    shutil.copytree(source, parent / REPO_ID)  # the conversion rewrites its input: never touch the original
    convert_dataset(REPO_ID, root=str(parent), push_to_hub=False)
    return parent / REPO_ID


def test_real_dataset_targets_and_frames(g1_root):
    dataset = open_lerobot_dataset(REPO_ID, g1_root)  # torchcodec when FFmpeg loads, pyav otherwise
    assert dataset.num_episodes == 6 and dataset.num_frames == 1858
    with pytest.raises(ValueError, match="no 'reward' column"):
        compute_value_targets(dataset, RewardConfig())
    tg = compute_value_targets(dataset, RewardConfig(), assume_success_without_reward=True)
    lengths = np.bincount(tg.episode_index)
    assert tg.normalizers == {next(iter(tg.tasks.values())): float(lengths.max() - 1)}
    ends = np.cumsum(lengths) - 1
    assert np.all(tg.values[ends] == 0.0) and tg.values.min() == -1.0
    names = joint_names(dataset, "observation.state")
    assert names is not None and len(names) == 26 and names[0] == "kLeftShoulderPitch"
    low, high = state_stats(dataset, "observation.state")
    assert low.shape == (26,) and np.all(low <= high)

    keys = camera_keys(dataset, ["cam_high"])
    frames = ValueFrameDataset(dataset, tg, [2], keys, image_size=32)
    raw = dataset[int(frames.rows[5])]["observation.images.cam_high"]
    assert raw.shape == (3, 480, 640) and float(raw.std()) > 0.01  # a real decoded picture
    batch = default_collate([frames[0], frames[len(frames) - 1]])
    assert batch["observation.images"].shape == (2, 1, 3, 32, 32)
    assert batch["target"][1] == 0.0 and batch["target"][0] < -0.5


def test_two_training_steps_on_real_frames(g1_root, tmp_path):
    cfg = tiny_config(
        tmp_path,
        g1_root,
        REPO_ID,
        run_name="g1",
        **{
            "data.assume_success_without_reward": True,
            "data.val_episodes": [5],
            "data.batch_size": 2,
            "data.eval_batch_size": 2,
            "training.max_val_batches": 1,
            "training.steps": 2,
            "training.warmup_steps": 0,
            "training.save_every": 2,
            "training.val_every": 0,
        },
    )
    result = train(cfg)
    assert result.step == 2 and np.isfinite(result.val_metrics["loss"])
    model, meta, _ = model_from_checkpoint(result.checkpoint)
    assert model.config.camera_names == ["cam_high"] and model.config.state_dim == 26
    assert meta["dataset"]["joint_names"][0] == "kLeftShoulderPitch"
    assert torch.all(model.state_high >= model.state_low)
    assert ckpt.read_meta(result.checkpoint)["dataset"]["val_episodes"] == [5]
