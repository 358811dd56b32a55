# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Value targets from LeRobot datasets, episode splits, frame samples and the training configuration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ove_ros.training import dataset as ds_mod
from ove_ros.training.config import ConfigError, config_from_argv, load_config
from ove_ros.training.dataset import (
    ValueFrameDataset,
    camera_keys,
    compute_value_targets,
    joint_names,
    load_or_compute_targets,
    open_lerobot_dataset,
    split_episodes,
    state_stats,
)
from ove_ros.training.synthetic import dense_rewards
from ove_ros.values import RewardConfig

from dataset_fixtures import TINY_YAML, learnable_dataset, plan, synthetic_dataset, tiny_config  # noqa: F401

SPEC = {"num_episodes": 5, "min_length": 4, "max_length": 7, "failure_every": 2, "image_size": 16, "seed": 1}


def _expected(spec: dict, step: float, fail: float) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """Hand-computed terminal-outcome rewards, returns and the task scale."""
    rewards, returns = [], []
    for length, success, _ in plan(**spec):
        r = [-step] * (length - 1) + [0.0 if success else -fail]
        rewards.append(np.asarray(r))
        returns.append(np.asarray([sum(r[t:]) for t in range(length)]))
    scale = max(1.0, max(-g.min() for g in returns))
    return rewards, returns, scale


@pytest.fixture(scope="module")
def outcome_ds(synthetic_dataset):  # noqa: F811
    return open_lerobot_dataset("synthetic/values", synthetic_dataset(**SPEC))


def test_terminal_outcome_targets_for_success_and_failure(outcome_ds):
    cfg = RewardConfig(step_penalty=1.0, fail_penalty=20.0)
    tg = compute_value_targets(outcome_ds, cfg)
    rewards, returns, scale = _expected(SPEC, 1.0, 20.0)
    assert tg.normalizers == {"pick the bottle": scale}
    assert [tg.episode_success[e] for e in range(SPEC["num_episodes"])] == [s for _, s, _ in plan(**SPEC)]
    np.testing.assert_allclose(tg.rewards, np.concatenate(rewards))
    np.testing.assert_allclose(tg.returns, np.concatenate(returns))
    np.testing.assert_allclose(tg.values, np.concatenate(returns) / scale, rtol=1e-6)
    # A success ends at 0, a failure at -fail_penalty / scale; every value lies in [-1, 0].
    slices = tg.episode_slices()
    assert tg.values[slices[0].stop - 1] == 0.0
    assert tg.values[slices[1].stop - 1] == pytest.approx(-20.0 / scale)
    assert tg.values.min() >= -1.0 and tg.values.max() <= 0.0
    np.testing.assert_array_equal(tg.index, np.arange(len(tg)))


def test_step_penalty_and_fail_penalty_change_the_targets(outcome_ds):
    tg = compute_value_targets(outcome_ds, RewardConfig(step_penalty=2.0, fail_penalty=100.0))
    _, returns, scale = _expected(SPEC, 2.0, 100.0)
    np.testing.assert_allclose(tg.returns, np.concatenate(returns))
    assert tg.normalizers["pick the bottle"] == scale


def test_precomputed_rewards_are_read_as_is(synthetic_dataset):  # noqa: F811
    # Every episode fails: all returns are negative (a success's +2 would make returns positive, refused).
    spec = {**SPEC, "reward_style": "dense", "failure_every": 1}
    ds = open_lerobot_dataset("synthetic/values", synthetic_dataset(**spec))
    column = np.concatenate([dense_rewards(n, s) for n, s, _ in plan(**spec)]).astype(np.float64)
    a = compute_value_targets(ds, RewardConfig(fail_penalty=100.0, precomputed_rewards=True))
    b = compute_value_targets(ds, RewardConfig(fail_penalty=3.0, precomputed_rewards=True))
    np.testing.assert_allclose(a.rewards, column)
    np.testing.assert_array_equal(a.values, b.values)  # fail_penalty is ignored
    for sl in a.episode_slices().values():
        np.testing.assert_allclose(a.returns[sl], np.cumsum(column[sl][::-1])[::-1])
    # Terminal-outcome mode on the same column only reads the sign of the last reward.
    t = compute_value_targets(ds, RewardConfig(fail_penalty=10.0))
    _, returns, _ = _expected(spec, 1.0, 10.0)
    np.testing.assert_allclose(t.returns, np.concatenate(returns))


def test_dataset_without_rewards_needs_the_demonstration_flag(synthetic_dataset):  # noqa: F811
    spec = {**SPEC, "reward_style": "none"}
    ds = open_lerobot_dataset("synthetic/values", synthetic_dataset(**spec))
    with pytest.raises(ValueError, match="assume_success_without_reward"):
        compute_value_targets(ds, RewardConfig())
    tg = compute_value_targets(ds, RewardConfig(), assume_success_without_reward=True)
    assert all(tg.episode_success.values())
    longest = max(n for n, _, _ in plan(**spec))
    assert tg.normalizers["pick the bottle"] == longest - 1


def test_targets_are_cached_per_reward_setting(outcome_ds, tmp_path, monkeypatch):
    first = load_or_compute_targets(outcome_ds, RewardConfig(), tmp_path)
    files = list((tmp_path / "targets").glob("*.npz"))
    assert len(files) == 1

    def boom(*args, **kwargs):
        raise AssertionError("targets were recomputed despite a valid cache")

    monkeypatch.setattr(ds_mod, "compute_value_targets", boom)
    cached = load_or_compute_targets(outcome_ds, RewardConfig(), tmp_path)
    np.testing.assert_array_equal(cached.values, first.values)
    assert cached.normalizers == first.normalizers
    monkeypatch.undo()
    load_or_compute_targets(outcome_ds, RewardConfig(fail_penalty=7.0), tmp_path)
    assert len(list((tmp_path / "targets").glob("*.npz"))) == 2


def test_split_is_by_episode_seeded_and_disjoint():
    eps = list(range(20))
    train, val = split_episodes(eps, 0.25, seed=4)
    assert (train, val) == split_episodes(eps, 0.25, seed=4)
    assert split_episodes(eps, 0.25, seed=5) != (train, val)
    assert len(val) == 5 and not set(train) & set(val) and sorted(train + val) == eps
    assert split_episodes(eps, 0.0, seed=0) == (eps, [])
    assert split_episodes([0, 1], 0.1, seed=0)[1] != []  # at least one validation episode
    assert split_episodes(eps, 0.5, seed=0, val_episodes=[3, 7]) == (
        [e for e in eps if e not in (3, 7)],
        [3, 7],
    )
    with pytest.raises(ValueError, match="not in the dataset"):
        split_episodes(eps, 0.1, 0, val_episodes=[99])


def test_frame_samples_carry_images_state_task_and_target(outcome_ds):
    tg = compute_value_targets(outcome_ds, RewardConfig())
    keys = camera_keys(outcome_ds, ["cam_high"])
    frames = ValueFrameDataset(outcome_ds, tg, [1, 3], keys, image_size=32)
    assert set(frames.episode_index.tolist()) == {1, 3}
    item = frames[2]
    assert item["observation.images"].shape == (1, 3, 32, 32)
    assert item["observation.images"].dtype == torch.float32
    assert 0.0 <= float(item["observation.images"].min()) and float(item["observation.images"].max()) <= 1.0
    assert item["observation.state"].shape == (4,)
    assert item["task"] == "pick the bottle"
    pos = int(np.flatnonzero(tg.index == item["index"])[0])
    assert float(item["target"]) == pytest.approx(float(tg.values[pos]))
    # State joint 0 encodes progress in the synthetic data.
    assert float(item["observation.state"][0]) == pytest.approx(
        item["frame_index"] / (frames.frame_index[frames.episode_index == item["episode_index"]].max()),
        abs=1e-6,
    )
    low, high = state_stats(outcome_ds, "observation.state")
    assert low.shape == (4,) and low[0] == 0.0 and high[0] == 1.0
    assert joint_names(outcome_ds, "observation.state") == ["joint_0", "joint_1", "joint_2", "joint_3"]
    with pytest.raises(ValueError, match="not in dataset"):
        camera_keys(outcome_ds, ["wrist"])


def test_old_format_and_missing_datasets_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="meta/info.json"):
        open_lerobot_dataset("x/y", tmp_path / "nothing")
    (tmp_path / "old" / "meta").mkdir(parents=True)
    (tmp_path / "old" / "meta" / "info.json").write_text('{"codebase_version": "v2.1"}')
    with pytest.raises(ValueError, match="convert_dataset"):
        open_lerobot_dataset("x/y", tmp_path / "old")


# ------------------------------------------------------------------------------------------ configuration


def test_cli_needs_config_and_run_name(tmp_path):
    with pytest.raises(ConfigError, match="config=<file.yaml> is required"):
        config_from_argv(["run_name=a"])
    with pytest.raises(ConfigError, match="run_name is not set"):
        config_from_argv([f"config={TINY_YAML}"])
    cfg = config_from_argv(
        [
            f"config={TINY_YAML}",
            "run_name=my_run",
            "data.batch_size=32",
            "training.learning_rate=1e-5",
            f"output_root={tmp_path}",
            "data.camera_names=[cam_high,wrist]",
        ]
    )
    assert cfg.data.batch_size == 32 and cfg.training.learning_rate == 1e-5
    assert cfg.data.camera_names == ["cam_high", "wrist"]
    assert cfg.run_dir == Path(tmp_path) / "ove_ros" / "my_run"


def test_config_rejects_unknown_keys_bad_types_and_bad_choices():
    with pytest.raises(ConfigError, match="learning_rat"):
        load_config(TINY_YAML, ["training.learning_rat=1"], require_run_name=False)
    with pytest.raises(ConfigError):
        load_config(TINY_YAML, ["data.batch_size=many"], require_run_name=False)
    with pytest.raises(ConfigError, match="target_encoding"):
        load_config(TINY_YAML, ["training.target_encoding=gauss"], require_run_name=False)
    with pytest.raises(ConfigError, match="run_name"):
        load_config(TINY_YAML, ["run_name=a/b"])
    cfg = load_config(TINY_YAML, ["resume_from=/x"], require_run_name=False)
    assert cfg.training.resume and cfg.training.resume_from == "/x"  # resume_from implies resume


def test_every_shipped_config_loads():
    root = TINY_YAML.parent
    for name in ("tiny.yaml", "full.yaml"):
        cfg = load_config(root / name, ["data.repo_id=a/b", "run_name=r"])
        assert cfg.training.steps > 0
        assert cfg.reward == RewardConfig(
            cfg.data.step_penalty, cfg.data.fail_penalty, cfg.data.precomputed_rewards
        )
    assert (
        load_config(root / "full.yaml", ["data.repo_id=a/b"], require_run_name=False).model.preset == "full"
    )


def test_tiny_config_helper_points_at_the_dataset(learnable_dataset, tmp_path):  # noqa: F811
    cfg = tiny_config(tmp_path, learnable_dataset, run_name="x")
    assert cfg.data.root == str(learnable_dataset) and cfg.wandb.mode == "disabled"


def test_cli_errors_are_clear_and_help_lists_every_key(capsys):
    from ove_ros.training import advantage, evaluate, train

    with pytest.raises(SystemExit, match="run_name is not set"):
        train.main([f"config={TINY_YAML}"])
    for module in (train, evaluate, advantage):
        module.main(["--help"])
        out = capsys.readouterr().out
        assert "training.learning_rate" in out and "data.precomputed_rewards" in out


def test_wandb_mode_follows_the_api_key(monkeypatch):
    from ove_ros.training.train import wandb_mode

    cfg = load_config(TINY_YAML, ["wandb.mode=auto"], require_run_name=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode(cfg) == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode(cfg) == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode(cfg) == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    cfg.wandb.mode = "disabled"
    assert wandb_mode(cfg) == "disabled"


def test_model_presets_take_cameras_and_state_from_the_data():
    from ove_ros.training.modeling import model_config_from

    cfg = load_config(TINY_YAML.parent / "full.yaml", ["data.repo_id=a/b"], require_run_name=False)
    full = model_config_from(cfg, ["cam_high", "wrist"], 26)
    assert full.image_size == 224 and full.camera_names == ["cam_high", "wrist"] and full.state_dim == 26
    assert full.text["hidden_size"] == 640
    cfg.model.preset = "tiny"
    cfg.model.overrides = {"image_size": 64, "vision": {"num_hidden_layers": 1}, "head_hidden": 32}
    tiny = model_config_from(cfg, ["cam0"], 4)
    assert tiny.image_size == 64 and tiny.vision["image_size"] == 64 and tiny.vision["num_hidden_layers"] == 1
    assert tiny.vision["hidden_size"] == 64 and tiny.head_hidden == 32
    cfg.model.preset = "huge"
    with pytest.raises(ValueError, match="model.preset"):
        model_config_from(cfg, ["cam0"], 4)
