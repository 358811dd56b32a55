# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""No silent clipping: positive precomputed returns are refused, clipped returns, joints and targets are
counted and warned about once, and MC advantages compare returns and values in the same clipped units."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from ove_ros.prompt import StateNormalizer
from ove_ros.training.advantage import compute_advantages
from ove_ros.training.dataset import compute_value_targets, fit_split_normalizers, open_lerobot_dataset
from ove_ros.values import RewardConfig, clip_counts, normalize_returns

from dataset_fixtures import plan, synthetic_dataset  # noqa: F401

SPEC = {"num_episodes": 4, "min_length": 4, "max_length": 9, "failure_every": 2, "image_size": 16, "seed": 8}


@pytest.fixture(scope="module")
def outcome_ds(synthetic_dataset):  # noqa: F811
    return open_lerobot_dataset("synthetic/values", synthetic_dataset(**SPEC))


def test_precomputed_rewards_with_positive_returns_are_refused(outcome_ds):
    # The outcome column holds +1 on a success's last frame: read as precomputed rewards, every success
    # target would be clipped to 0.
    with pytest.raises(ValueError, match="precomputed_rewards=false"):
        compute_value_targets(outcome_ds, RewardConfig(precomputed_rewards=True))
    compute_value_targets(outcome_ds, RewardConfig())  # terminal-outcome mode reads the same column fine


def test_clip_counts():
    assert clip_counts([-3.0, -2.0, -1.0, 0.5], 2.0) == (1, 1)
    assert clip_counts(np.array([-3.0, -1.0]), np.array([4.0, 0.5])) == (1, 0)


def test_mc_advantages_use_clipped_returns(outcome_ds, caplog):
    tg = compute_value_targets(outcome_ds, RewardConfig(fail_penalty=5.0))
    values = np.full(len(tg), -0.5)
    scales = np.full(len(tg), 3.0)  # smaller than the episodes' costs: some returns fall below -1
    with caplog.at_level(logging.WARNING, logger="ove_ros.training.advantage"):
        adv = compute_advantages(tg, values, scales, "mc")
    np.testing.assert_allclose(adv, normalize_returns(tg.returns, 3.0) - values)
    assert adv.min() >= -1.0 - (-0.5) - 1e-12  # never below clip(-inf) - V
    below, _ = clip_counts(tg.returns, 3.0)
    assert below > 0 and f"{below} of {len(tg)} returns" in caplog.text


def test_clipped_joints_are_counted_and_warned_about_once(caplog):
    norm = StateNormalizer(np.array([0.0, -1.0]), np.array([1.0, 1.0]), ["elbow", "wrist"])
    with caplog.at_level(logging.WARNING, logger="ove_ros.prompt"):
        np.testing.assert_allclose(norm.normalize([0.5, 0.0]), [0.0, 0.0])
        assert norm.clipped_count() == 0 and not caplog.records
        np.testing.assert_allclose(norm.normalize([[2.0, 0.0], [0.5, -3.0]]), [[1.0, 0.0], [0.0, -1.0]])
        norm.normalize([2.0, 0.0])
    assert norm.clipped_count() == 3
    warnings = [r for r in caplog.records if "outside the training range" in r.getMessage()]
    assert len(warnings) == 1 and "'elbow'" in warnings[0].getMessage()
    # a fresh normalizer with the same statistics (the model rebuilds one per call) shares the count
    assert StateNormalizer(np.array([0.0, -1.0]), np.array([1.0, 1.0])).clipped_count() == 3


def test_clipped_targets_of_a_split_are_warned_about(synthetic_dataset, caplog):  # noqa: F811
    spec = {**SPEC, "failure_every": 0}
    lengths = [n for n, _, _ in plan(**spec)]
    longest = int(np.argmax(lengths))
    tg = compute_value_targets(open_lerobot_dataset("synthetic/values", synthetic_dataset(**spec)),
                               RewardConfig())
    train = [e for e in range(len(lengths)) if e != longest]
    with caplog.at_level(logging.WARNING, logger="ove_ros.training.dataset"):
        counts = fit_split_normalizers(tg, train, [longest])
    assert counts["val"]["below"] == lengths[longest] - max(lengths[e] for e in train) > 0
    assert "val targets fall outside [-1, 0]" in caplog.text
    assert tg.values.min() == -1.0
