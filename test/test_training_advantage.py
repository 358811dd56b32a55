# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Offline advantages written into a dataset copy, thresholds and labels, and the evaluation report."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from ove_ros.training.advantage import (
    binarize_advantages,
    compute_advantages,
    compute_task_advantage_thresholds,
    label_dataset,
)
from ove_ros.training.config import ConfigError, config_from_dict
from ove_ros.training.convert import convert
from ove_ros.training.dataset import ValueFrameDataset, compute_value_targets, open_lerobot_dataset
from ove_ros.training.evaluate import count_video_frames, evaluate
from ove_ros.training.modeling import load_value_model
from ove_ros.values import NEGATIVE_LABEL, POSITIVE_LABEL, n_step_advantages

from dataset_fixtures import LEARNABLE, learnable_dataset, plan, synthetic_dataset, trained_run  # noqa: F401

TASK = "pick the bottle"


def _cfg(run, tmp_path, section, **values):
    """The trained run's config with ``values`` in ``section`` (advantage/evaluate); it reads the run's
    checkpoint unless ``values`` name another."""
    data = run["cfg"].to_dict()
    data["run_name"] = None
    data[section].update({"checkpoint": str(run["result"].checkpoint), **values})
    data["data"]["cache_dir"] = str(tmp_path / "cache")
    return config_from_dict(data)


def _hand_values(run):
    """E[V] of every frame (index order) with the run's EMA weights, one frame at a time."""
    loaded = load_value_model(run["result"].checkpoint)
    dataset = open_lerobot_dataset("synthetic/values", run["dataset"])
    tg = compute_value_targets(dataset, loaded.reward)
    frames = ValueFrameDataset(dataset, tg, None, dataset.meta.camera_keys, image_size=32)
    with torch.no_grad():
        values = [
            float(loaded.model.get_expected_value(loaded.model(default_collate([frames[i]])))[0])
            for i in range(len(frames))
        ]
    return np.asarray(values), loaded


def _column(root, key):
    ds = open_lerobot_dataset("synthetic/values_adv", root)
    table = ds.hf_dataset.data
    order = np.argsort(table.column("index").to_numpy())
    return np.asarray(table.column(key).to_numpy(), dtype=np.float64)[order], ds


def test_n_step_advantages_equal_hand_computed_values(trained_run, tmp_path):  # noqa: F811
    n = 3
    cfg = _cfg(
        trained_run,
        tmp_path,
        "advantage",
        mode="n_step",
        n_step=n,
        output_repo_id="synthetic/values_adv",
        output_root=str(tmp_path / "adv"),
    )
    result = label_dataset(cfg)
    values, loaded = _hand_values(trained_run)
    scale = loaded.task_normalizers[TASK]
    expected, start = [], 0
    for length, success, _ in plan(**vars(LEARNABLE)):
        r = [-1.0] * (length - 1) + [0.0 if success else -loaded.reward.fail_penalty]
        v = list(values[start : start + length]) + [0.0]
        for t in range(length):
            end = min(t + n, length)
            expected.append(sum(r[t:end]) / scale + v[end] - v[t])
        start += length
    written, labelled = _column(tmp_path / "adv", "advantage")
    np.testing.assert_allclose(written, expected, atol=2e-6)
    np.testing.assert_allclose(result.advantages, expected, atol=2e-6)
    np.testing.assert_allclose(_column(tmp_path / "adv", "value")[0], values, atol=2e-6)
    # The copy keeps every original feature and frame, and records what produced the labels.
    assert len(labelled) == len(values) and "observation.images.cam_high" in labelled.meta.features
    info = json.loads((tmp_path / "adv" / "meta" / "advantage.json").read_text())
    assert info["mode"] == "n_step" and info["n_step"] == n and info["task_normalizers"] == {TASK: scale}
    assert "advantage" in labelled.meta.stats
    item = labelled[0]
    assert item["observation.images.cam_high"].shape == (3, 32, 32) and "advantage" in item

    # Thresholds and labels: 30th percentile, the top 70 % positive, stored as a bool column.
    thresholds = compute_task_advantage_thresholds(labelled, percentile=30.0)
    assert thresholds == pytest.approx(info["thresholds"], abs=1e-6)
    assert thresholds[TASK] == pytest.approx(np.percentile(np.asarray(written, np.float32), 30.0), abs=1e-6)
    labels = binarize_advantages(written, thresholds, [TASK] * len(written))
    assert set(labels) == {POSITIVE_LABEL, NEGATIVE_LABEL}
    positive = np.asarray([lab == POSITIVE_LABEL for lab in labels])
    assert 0.6 <= positive.mean() <= 0.8
    np.testing.assert_array_equal(_column(tmp_path / "adv", "advantage_positive")[0].astype(bool), positive)
    with pytest.raises(ConfigError, match="advantage.overwrite=true"):
        label_dataset(cfg)


def test_mc_advantages_from_a_bundle(trained_run, tmp_path):  # noqa: F811
    bundle = convert(trained_run["result"].checkpoint, tmp_path / "bundle")
    cfg = _cfg(
        trained_run,
        tmp_path,
        "advantage",
        checkpoint=str(bundle),
        mode="mc",
        output_repo_id="synthetic/values_adv",
        output_root=str(tmp_path / "mc"),
    )
    label_dataset(cfg)
    values, loaded = _hand_values(trained_run)
    dataset = open_lerobot_dataset("synthetic/values", trained_run["dataset"])
    tg = compute_value_targets(dataset, loaded.reward)
    scale = loaded.task_normalizers[TASK]
    written, _ = _column(tmp_path / "mc", "advantage")
    np.testing.assert_allclose(written, tg.returns / scale - values, atol=2e-6)
    # n-step with N >= T is the Monte Carlo advantage.
    scales = np.full(len(tg), scale)
    np.testing.assert_allclose(
        compute_advantages(tg, values, scales, "n_step", 1000),
        compute_advantages(tg, values, scales, "mc"),
        atol=1e-12,
    )
    sl = tg.episode_slices()[0]
    np.testing.assert_allclose(
        compute_advantages(tg, values, scales, "n_step", 2)[sl],
        n_step_advantages(tg.rewards[sl] / scale, values[sl], 2),
    )


def test_binarize_is_the_values_module_rule():
    thresholds = {"a": 0.0, "b": -1.0}
    labels = binarize_advantages([0.5, 0.0, -0.5, -0.5], thresholds, ["a", "a", "a", "b"])
    assert labels == [POSITIVE_LABEL, NEGATIVE_LABEL, NEGATIVE_LABEL, POSITIVE_LABEL]
    with pytest.raises(KeyError):
        binarize_advantages([0.1], thresholds, ["c"])


def test_thresholds_need_a_labelled_dataset(learnable_dataset):  # noqa: F811
    with pytest.raises(ValueError, match="ove_ros.training.advantage"):
        compute_task_advantage_thresholds(open_lerobot_dataset("synthetic/values", learnable_dataset))


def test_evaluation_report_metrics_plots_and_video(trained_run, tmp_path):  # noqa: F811
    cfg = _cfg(
        trained_run,
        tmp_path,
        "evaluate",
        split="val",
        plot_episodes=2,
        video_episodes=1,
        output_dir=str(tmp_path / "eval"),
    )
    report = evaluate(cfg)
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    val = trained_run["result"].val_metrics  # the run's own validation of the same EMA weights
    for key in ("loss", "mae", "rmse", "ev"):
        assert m[key] == pytest.approx(val[key], abs=1e-5)
    assert m["episodes"] == [0, 1] and set(m["per_task"]) == {TASK}
    rows = (tmp_path / "eval" / "predictions.csv").read_text().splitlines()
    assert len(rows) - 1 == m["count"]
    assert len(report.plots) == 2
    for png in report.plots:
        img = cv2.imread(str(png))
        assert img is not None and img.shape[0] > 100 and img.std() > 0
    (video,) = report.videos
    length = plan(**vars(LEARNABLE))[0][0]
    assert count_video_frames(video) == length
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape[0] >= 240  # frames are enlarged so the overlay is legible
