# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Value-quality evaluation: baselines fitted on training episodes only, curve metrics, the mistake-advantage
AUROC, train-only normalizers and the evaluation report."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from ove_ros.sim.metrics import mistake_advantage_auroc
from ove_ros.training.baselines import BASELINES, FrameSet, baseline_report, fit_baselines
from ove_ros.training.config import config_from_dict
from ove_ros.training.metrics import (
    auroc_at_fractions,
    distribution_quantiles,
    smoothness,
    spearman,
    value_quality,
)

from dataset_fixtures import learnable_dataset, synthetic_dataset, trained_run  # noqa: F401


def _episodes(lengths, task="t", seed=0, offset=0):
    """Success episodes whose target is -(steps to go)/60 and whose first joint is the progress t/T."""
    rng = np.random.default_rng(seed)
    eps = []
    for i, n in enumerate(lengths):
        t = np.arange(n)
        states = np.stack([t / (n - 1), rng.normal(size=n)], axis=1)
        eps.append({"episode": offset + i, "task": task, "states": states,
                    "targets": -(n - 1 - t) / 60.0, "success": True})
    return eps


def test_frame_index_mean_is_exact_when_every_episode_has_the_same_length():
    train = FrameSet.from_episodes(_episodes([30, 30, 30]))
    test = FrameSet.from_episodes(_episodes([30], offset=10))
    preds = fit_baselines(train, test)
    assert set(preds) == set(BASELINES)
    np.testing.assert_allclose(preds["frame_index_mean"], test.target, atol=1e-12)
    np.testing.assert_allclose(preds["frame_index_linear"], test.target, atol=1e-4)  # tiny ridge
    np.testing.assert_allclose(preds["training_mean"], train.target.mean())


def test_baselines_never_see_the_evaluation_targets():
    train = FrameSet.from_episodes(_episodes([20, 30, 40]))
    test = FrameSet.from_episodes(_episodes([25, 35], offset=10, seed=1))
    before = fit_baselines(train, test)
    test.target = test.target * 0.0 - 0.7  # whatever the evaluation targets are, predictions are the same
    after = fit_baselines(train, test)
    for name in BASELINES:
        np.testing.assert_array_equal(before[name], after[name])


def test_state_baselines_use_the_state_and_unseen_tasks_fall_back_to_all_training_frames():
    train = FrameSet.from_episodes(_episodes([20, 40, 60]))
    test = FrameSet.from_episodes(_episodes([50], offset=10, task="other"))
    preds = fit_baselines(train, test, ["state_knn", "training_mean"])
    assert preds["training_mean"] == pytest.approx(np.full(50, train.target.mean()))
    # progress (joint 0) predicts the value better than the mean does
    err = {k: np.abs(v - test.target).mean() for k, v in preds.items()}
    assert err["state_knn"] < err["training_mean"]
    with pytest.raises(ValueError, match="unknown baselines"):
        fit_baselines(train, test, ["oracle"])


def test_report_names_the_best_baseline_and_the_margin():
    train = FrameSet.from_episodes(_episodes([30, 30, 30]))
    test = FrameSet.from_episodes(_episodes([30, 30], offset=10))
    noisy = test.target + np.random.default_rng(0).normal(scale=0.05, size=len(test))
    report = baseline_report(train, test, noisy)
    assert report["best_baseline"] in ("frame_index_mean", "frame_index_linear")
    assert report["best_baseline_ev"] == pytest.approx(1.0)
    assert report["margin_ev"] == pytest.approx(report["model"]["ev"] - 1.0)
    assert not report["beats_every_baseline"]
    perfect = baseline_report(train, test, test.target + 0.0)
    assert perfect["model"]["ev"] == pytest.approx(1.0) and perfect["model"]["smoothness_ratio"] == 1.0
    with pytest.raises(ValueError, match="one per frame"):
        baseline_report(train, test, noisy[:-1])
    # Predictions fitted once serve the report and the caller's curves: the same figures as fitting inside.
    fitted = fit_baselines(train, test)
    same = baseline_report(train, test, noisy, predictions=fitted)
    assert json.dumps(same, sort_keys=True) == json.dumps(report, sort_keys=True)  # NaN fields compare too
    only_mean = baseline_report(train, test, noisy, predictions={"training_mean": fitted["training_mean"]})
    assert set(only_mean["baselines"]) == {"training_mean"} and only_mean["best_baseline"] == "training_mean"


def test_spearman_smoothness_and_sign_flips():
    assert spearman([1, 2, 3], [10, 20, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    ep, fr = np.zeros(5, int), np.arange(5)
    target = np.array([-0.4, -0.3, -0.2, -0.1, 0.0])
    s = smoothness(ep, fr, target, target)
    assert s["smoothness_ratio"] == pytest.approx(1.0) and s["sign_flip_fraction"] == 0.0
    zigzag = np.array([-0.4, -0.2, -0.3, -0.1, -0.2])  # steps +.2 -.1 +.2 -.1: every step flips
    s = smoothness(ep, fr, zigzag, target)
    assert s["smoothness_ratio"] == pytest.approx(1.5) and s["sign_flip_fraction"] == 1.0
    # rows out of order and two episodes: differences are taken within each episode in frame order
    s2 = smoothness(np.array([1, 0, 1, 0]), np.array([1, 1, 0, 0]), np.array([1.0, 5.0, 0.0, 5.0]),
                    np.array([1.0, 0.0, 0.0, 0.0]))
    assert s2["mean_abs_dv"] == pytest.approx(0.5)


def test_auroc_at_fractions_and_calibration():
    ep = np.repeat([0, 1, 2], 5)
    fr = np.tile(np.arange(5), 3)
    pred = np.concatenate([np.full(5, -0.1), np.full(5, -0.2), np.full(5, -0.9)])
    success = {0: True, 1: True, 2: False}
    a = auroc_at_fractions(ep, fr, pred, success)
    assert a == {"auroc_25": 1.0, "auroc_50": 1.0, "auroc_75": 1.0}
    assert all(math.isnan(v) for v in auroc_at_fractions(ep, fr, pred, {}).values())  # no failures
    q = value_quality(ep, fr, ["t"] * 15, pred, pred, success, pred - 0.1, pred + 0.1)
    assert q["coverage_10_90"] == 1.0 and q["interval_width_10_90"] == pytest.approx(0.2)
    q = value_quality(ep, fr, ["t"] * 15, pred, pred, success, pred + 0.05, pred + 0.1)
    assert q["coverage_10_90"] == 0.0


def test_distribution_quantiles():
    centers = np.linspace(-1, 0, 5)
    probs = np.array([[0.0, 0.1, 0.8, 0.1, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    q = distribution_quantiles(probs, centers, (0.1, 0.5, 0.9))
    np.testing.assert_allclose(q, [[-0.75, -0.5, -0.5], [-1.0, -1.0, -1.0]])


def test_mistake_advantage_auroc():
    adv = [np.array([0.1, 0.1, 0.1, -0.5, -0.5, 0.1, 0.1, 0.1]), np.full(6, 0.05)]
    out = mistake_advantage_auroc(adv, [[3], []], window=2, thresholds=0.0, margin_before=1)
    assert out["auroc"] == 1.0
    assert out["frames_after_mistake"] == 2
    assert out["frames_clean"] == 5 + 6  # frame 2 is within margin_before of the mistake
    assert out["negative_fraction_after_mistake"] == 1.0 and out["negative_fraction_clean"] == 0.0
    flipped = mistake_advantage_auroc([-a for a in adv], [[3], []], window=2, thresholds=0.0)
    assert flipped["auroc"] == 0.0
    nan_gap = mistake_advantage_auroc([np.array([np.nan, -1.0, 1.0])], [[0]], window=2, thresholds=[0.0])
    assert nan_gap["frames_after_mistake"] == 1  # the frame not valued is left out
    with pytest.raises(ValueError, match="thresholds"):
        mistake_advantage_auroc(adv, [[3], []], window=2, thresholds=[0.0])


def test_evaluation_writes_the_value_quality_report(trained_run, tmp_path):  # noqa: F811
    data = trained_run["cfg"].to_dict()
    data["run_name"] = None
    data["evaluate"].update(checkpoint=str(trained_run["result"].checkpoint), split="val",
                            plot_episodes=0, video_episodes=0, output_dir=str(tmp_path / "eval"))
    data["data"]["cache_dir"] = str(tmp_path / "cache")
    from ove_ros.training.evaluate import evaluate

    evaluate(config_from_dict(data))
    report = json.loads((tmp_path / "eval" / "value_quality.json").read_text())
    assert report["eval_episodes"] == [0, 1]
    assert 0 not in report["baseline_train_episodes"] and 1 not in report["baseline_train_episodes"]
    assert set(report["baselines"]) == set(BASELINES)
    assert report["best_baseline"] in BASELINES
    m = report["model"]
    for key in ("ev", "mae", "rmse", "spearman_within_episode", "smoothness_ratio", "sign_flip_fraction",
                "coverage_10_90", "auroc_50"):
        assert key in m
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert m["ev"] == pytest.approx(metrics["ev"])
    assert report["normalizer_episodes"] == report["baseline_train_episodes"]  # the run's training episodes
    assert set(report["eval_target_clipping"]) == {"below", "above", "frames"}
    # The bundle made from the checkpoint carries the same provenance into its evaluation.
    from ove_ros.training.convert import convert

    bundle = convert(trained_run["result"].checkpoint, tmp_path / "bundle")
    data["evaluate"].update(checkpoint=str(bundle), output_dir=str(tmp_path / "eval_bundle"))
    evaluate(config_from_dict(data))
    from_bundle = json.loads((tmp_path / "eval_bundle" / "value_quality.json").read_text())
    assert from_bundle["normalizer_episodes"] == report["normalizer_episodes"]
    assert from_bundle["train_target_clipping"] == report["train_target_clipping"] is not None
    img = cv2.imread(str(tmp_path / "eval" / "value_quality.png"))
    assert img is not None and img.shape[1] > 400 and img.std() > 0


def test_normalizers_come_from_the_training_episodes_only(synthetic_dataset, tmp_path):  # noqa: F811
    from ove_ros.training.train import prepare_data

    from dataset_fixtures import plan, tiny_config

    spec = {"num_episodes": 6, "min_length": 4, "max_length": 12, "failure_every": 0, "image_size": 16,
            "seed": 8}
    lengths = [n for n, _, _ in plan(**spec)]
    longest = int(np.argmax(lengths))
    train_len = max(n for i, n in enumerate(lengths) if i != longest)
    assert train_len < lengths[longest]
    cfg = tiny_config(tmp_path, synthetic_dataset(**spec), **{"data.val_episodes": [longest]})
    data = prepare_data(cfg)
    (scale,) = data.targets.normalizers.values()
    assert scale == train_len - 1  # the held-out longest episode does not set the scale
    assert data.targets.normalizer_episodes == [i for i in range(6) if i != longest]
    meta = data.metadata(cfg)
    assert meta["normalizer_episodes"] == data.train_episodes
    # its first frames fall below -1 and are clipped: counted, per split
    assert meta["target_clipping"]["val"]["below"] == lengths[longest] - train_len
    train_frames = sum(lengths) - lengths[longest]
    assert meta["target_clipping"]["train"] == {"below": 0, "above": 0, "frames": train_frames}


def test_evaluating_other_episodes_refuses_training_episodes(trained_run, tmp_path):  # noqa: F811
    from ove_ros.training.evaluate import evaluate

    data = trained_run["cfg"].to_dict()
    data["run_name"] = None
    data["evaluate"].update(checkpoint=str(trained_run["result"].checkpoint), split="val",
                            plot_episodes=0, video_episodes=0, output_dir=str(tmp_path / "eval"))
    data["data"]["cache_dir"] = str(tmp_path / "cache")
    data["data"]["val_episodes"] = [1, 2]  # episode 2 was a training episode of the run
    with pytest.raises(ValueError, match=r"include episodes \[2\] the model was trained on"):
        evaluate(config_from_dict(data))


def test_the_mistake_report_scores_pauses_and_early_releases_apart():
    from types import SimpleNamespace

    from ove_ros.main_job.report import RELEASE_WINDOW, mistake_report

    meta = SimpleNamespace(advantage_thresholds={"pick": -0.01}, n_step=2)
    released = np.full(20, 0.0)
    released[12 : 12 + RELEASE_WINDOW] = -0.4  # the value falls as the object drops
    paused = np.full(20, 0.0)
    paused[[4, 5]] = -0.02  # a pause costs two frames
    clean = np.linspace(0.01, 0.03, 20)
    out = mistake_report([released, paused, clean], [[], [4], []], ["pick"] * 3, meta, [12, None, None])
    assert out["episodes_with_pauses"] == 1 and out["frames_after_mistake"] == 2
    release = out["early_release"]
    assert release["episodes"] == 1 and release["frames_after_mistake"] == RELEASE_WINDOW
    assert release["auroc"] == 1.0 and release["negative_fraction_after_mistake"] == 1.0
    # The pause score is what it was without releases (their frames count as clean there).
    pauses_only = mistake_advantage_auroc([released, paused, clean], [[], [4], []], window=2,
                                          thresholds=-0.01, margin_before=2)
    assert out["auroc"] == pauses_only["auroc"] < 1.0
    assert "early_release" not in mistake_report([clean], [[]], ["pick"], meta)  # only where onsets are given
    assert "wrong_target" not in out


def test_the_mistake_report_scores_wrong_targets_from_their_onset():
    from types import SimpleNamespace

    from ove_ros.main_job.report import WRONG_TARGET_WINDOW, mistake_report

    meta = SimpleNamespace(advantage_thresholds={"reach": -0.01}, n_step=2)
    wrong = np.full(30, -0.001)
    wrong[1 : 1 + WRONG_TARGET_WINDOW // 2] = -0.3  # the value drops once the arm is seen going astray
    clean = np.linspace(0.0, 0.02, 30)
    out = mistake_report([wrong, clean], [[], []], ["reach"] * 2, meta, [None, None], [1, None])
    scored = out["wrong_target"]
    assert scored["episodes"] == 1 and scored["frames_after_mistake"] == WRONG_TARGET_WINDOW
    # Half the window drops below every clean frame, half sits among them: the AUROC tells how soon.
    assert 0.5 < scored["auroc"] < 1.0 and scored["negative_fraction_after_mistake"] == 0.5
    assert out["early_release"]["episodes"] == 0
