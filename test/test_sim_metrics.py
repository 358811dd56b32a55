# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Main-job metrics (pure numpy): EV, AUROC, mid values, agreement, and the EV ceiling without a clock."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ove_ros.sim.metrics import (
    EpisodeValues,
    agreement,
    auroc,
    ev_ceiling_without_clock,
    explained_variance,
    mid_value,
    normalized_targets,
    value_metrics,
)


def test_explained_variance_reference_points():
    t = np.array([-1.0, -0.5, 0.0, -0.25])
    assert explained_variance(t, t) == pytest.approx(1.0)
    assert explained_variance(np.full(4, t.mean()), t) == pytest.approx(0.0)
    assert explained_variance(t + 0.3, t) == pytest.approx(1.0)  # a constant offset is not variance
    assert math.isnan(explained_variance([0.0, 0.0], [1.0, 1.0]))
    with pytest.raises(ValueError, match="3 values but target has 2"):
        explained_variance([1, 2, 3], [1, 2])


def test_auroc_ranks_and_ties():
    assert auroc([3, 2, 1, 0], [True, True, False, False]) == 1.0
    assert auroc([0, 1, 2, 3], [True, True, False, False]) == 0.0
    assert auroc([1, 1], [True, False]) == 0.5
    assert math.isnan(auroc([1, 2], [True, True]))


def test_mid_value_uses_the_nearest_valued_frame():
    assert mid_value(np.array([0.0, -0.1, -0.2, -0.3, -0.4])) == -0.2
    assert mid_value(np.array([0.0, -0.1, np.nan, -0.3, -0.4])) in (-0.1, -0.3)
    assert math.isnan(mid_value(np.array([np.nan, np.nan])))


def test_agreement():
    a = agreement([0.0, -0.5], [0.0, -0.4995])
    assert a.frames == 2 and a.max_abs_diff == pytest.approx(5e-4)
    with pytest.raises(ValueError):
        agreement([0.0], [0.0, 1.0])


def _episodes(fail_len: int = 80) -> list[EpisodeValues]:
    scale = fail_len + 100.0 - 1.0
    out = []
    for i, (length, success) in enumerate([(40, True), (55, True), (fail_len, False), (fail_len, False)]):
        target = normalized_targets(length, success, scale)
        out.append(EpisodeValues(f"ep{i}", "task", success, target.copy(), target))
    return out


def test_ceiling_without_clock_is_below_one_and_reached_by_the_oracle():
    episodes = _episodes()
    ceiling = ev_ceiling_without_clock(episodes)
    assert 0.5 < ceiling < 1.0
    # the oracle itself: exact on successes, the failure mean on failures, scores exactly the ceiling
    failure_mean = np.concatenate([e.targets for e in episodes if not e.success]).mean()
    for e in episodes:
        if not e.success:
            e.values = np.full(len(e.targets), failure_mean)
    metrics = value_metrics(episodes)
    assert metrics["ev"] == pytest.approx(ceiling)
    assert metrics["ev_ceiling_without_clock"] == pytest.approx(ceiling)
    assert metrics["auroc_mid"] == 1.0


def test_longer_time_limits_lower_the_ceiling():
    assert ev_ceiling_without_clock(_episodes(120)) < ev_ceiling_without_clock(_episodes(80))
