# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Tests of the value-function conventions in ove_ros.values."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ove_ros import values as V

FAST = settings(max_examples=60, deadline=None)
SUPPORT = V.BinSupport()
unit_values = st.floats(min_value=-1.0, max_value=0.0, allow_nan=False)
lengths = st.integers(min_value=1, max_value=60)


# ------------------------------------------------------------------------------------------------ bins


def test_bin_support_defaults_and_centers():
    c = SUPPORT.centers
    assert c.shape == (201,) and c.dtype == np.float64
    assert c[0] == -1.0 and c[-1] == 0.0
    assert SUPPORT.width == pytest.approx(0.005)
    np.testing.assert_allclose(np.diff(c), 0.005)
    np.testing.assert_array_equal(V.bin_centers(), c)


def test_bin_support_roundtrip_and_validation():
    s = V.BinSupport(num_bins=11, v_min=-2.0, v_max=1.0)
    assert V.BinSupport.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="num_bins must be >= 2"):
        V.BinSupport(num_bins=1)
    with pytest.raises(ValueError, match="v_min < v_max"):
        V.BinSupport(v_min=0.0, v_max=0.0)
    with pytest.raises(ValueError, match="unknown keys"):
        V.BinSupport.from_dict({"num_bin": 3})
    with pytest.raises(ValueError, match="v_min < v_max"):
        V.bin_centers(5, 1.0, 0.0)


# ----------------------------------------------------------------------------------------------- stats


def test_stats_numpy_and_torch_agree_and_differentiate():
    rng = np.random.default_rng(0)
    p = rng.random((3, 201))
    p /= p.sum(-1, keepdims=True)
    c = SUPPORT.centers
    pt = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    ev_t, std_t, ent_t = V.expected_value(pt, c), V.value_std(pt, c), V.value_entropy(pt)
    assert isinstance(ev_t, torch.Tensor) and ev_t.shape == (3,)
    np.testing.assert_allclose(ev_t.detach().numpy(), V.expected_value(p, c))
    np.testing.assert_allclose(std_t.detach().numpy(), V.value_std(p, c))
    np.testing.assert_allclose(ent_t.detach().numpy(), V.value_entropy(p))
    (ev_t.sum() + std_t.sum() + ent_t.sum()).backward()
    assert pt.grad is not None and torch.isfinite(pt.grad).all()


def test_stats_of_one_hot_and_uniform():
    c = SUPPORT.centers
    one_hot = np.zeros(201)
    one_hot[40] = 1.0
    assert V.expected_value(one_hot, c) == pytest.approx(c[40])
    assert V.value_std(one_hot, c) == 0.0
    assert V.value_entropy(one_hot) == 0.0
    uniform = np.full(201, 1 / 201)
    assert V.value_entropy(uniform) == pytest.approx(math.log(201))
    # Zeros must not produce NaN gradients in torch.
    pt = torch.tensor(one_hot, requires_grad=True)
    (V.value_entropy(pt) + V.value_std(pt, c)).backward()
    assert torch.isfinite(pt.grad).all()


def test_stats_reject_wrong_bin_count():
    with pytest.raises(ValueError, match="201 bins"):
        V.expected_value(np.ones((2, 201)) / 201, V.bin_centers(51))


# --------------------------------------------------------------------------------------------- targets


@FAST
@given(st.lists(unit_values, min_size=1, max_size=16))
def test_one_hot_target_is_nearest_center(vals):
    t = V.encode_targets(torch.tensor(vals, dtype=torch.float64), SUPPORT)
    c = SUPPORT.centers
    torch.testing.assert_close(t.sum(-1), torch.ones(len(vals), dtype=torch.float64))
    ev = V.expected_value(t, c).numpy()
    nearest = c[np.abs(c[None, :] - np.asarray(vals)[:, None]).argmin(-1)]
    np.testing.assert_allclose(ev, nearest, atol=1e-12)
    assert np.all(np.abs(ev - np.asarray(vals)) <= SUPPORT.width / 2 + 1e-12)


@FAST
@given(st.lists(unit_values, min_size=1, max_size=16))
def test_two_hot_expectation_equals_value(vals):
    t = V.encode_targets(torch.tensor(vals, dtype=torch.float64), SUPPORT, kind="two_hot")
    assert (t >= 0).all() and ((t > 0).sum(-1) <= 2).all()
    torch.testing.assert_close(t.sum(-1), torch.ones(len(vals), dtype=torch.float64))
    np.testing.assert_allclose(V.expected_value(t, SUPPORT.centers).numpy(), vals, atol=1e-12)


@FAST
@given(st.lists(st.floats(-0.9, -0.1), min_size=1, max_size=16))
def test_hl_gauss_rows_sum_to_one_and_center_on_value(vals):
    t = V.encode_targets(torch.tensor(vals, dtype=torch.float64), SUPPORT, kind="hl_gauss")
    torch.testing.assert_close(t.sum(-1), torch.ones(len(vals), dtype=torch.float64))
    # Away from the ends E is the value, up to a binning bias ~ width * exp(-2 pi^2 sigma^2 / width^2).
    np.testing.assert_allclose(V.expected_value(t, SUPPORT.centers).numpy(), vals, atol=1e-3 * SUPPORT.width)
    std = V.value_std(t, SUPPORT.centers).numpy()
    assert np.all(std > 0.5 * SUPPORT.width) and np.all(std < 1.5 * SUPPORT.width)


def test_targets_clamp_out_of_range_and_reject_bad_input():
    t = V.encode_targets(torch.tensor([-3.0, 2.0]), SUPPORT, kind="two_hot")
    assert t[0, 0] == 1.0 and t[1, -1] == 1.0
    assert V.encode_targets([-0.5], SUPPORT).dtype == torch.float32
    with pytest.raises(ValueError, match="one_hot.*two_hot.*hl_gauss"):
        V.encode_targets(torch.zeros(2), SUPPORT, kind="gauss")
    with pytest.raises(ValueError, match="NaN"):
        V.encode_targets(torch.tensor([float("nan")]), SUPPORT)
    with pytest.raises(ValueError, match="1-D"):
        V.encode_targets(torch.zeros(2, 2), SUPPORT)
    with pytest.raises(ValueError, match="sigma"):
        V.encode_targets(torch.zeros(2), SUPPORT, kind="hl_gauss", sigma=0.0)


# ------------------------------------------------------------------------------------- rewards, returns


@FAST
@given(lengths, st.booleans(), st.floats(0.0, 5.0), st.floats(0.0, 500.0))
def test_episode_returns(length, success, step, fail):
    cfg = V.RewardConfig(step_penalty=step, fail_penalty=fail)
    r = V.episode_rewards(length, success, cfg)
    g = V.mc_returns(r)
    assert r.shape == (length,) and np.all(r[:-1] == -step)
    assert g[-1] == (0.0 if success else -fail)
    np.testing.assert_allclose(g[0], -step * (length - 1) + g[-1], atol=1e-9)
    np.testing.assert_allclose(g[:-1] - g[1:], r[:-1], atol=1e-9)


def test_reward_config_validation():
    with pytest.raises(ValueError, match="step_penalty"):
        V.RewardConfig(step_penalty=-1.0)
    with pytest.raises(ValueError, match="fail_penalty"):
        V.RewardConfig(fail_penalty=float("nan"))
    cfg = V.RewardConfig(precomputed_rewards=True)
    assert V.RewardConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="rewards_from_column"):
        V.episode_rewards(3, True, cfg)
    with pytest.raises(ValueError, match="at least one frame"):
        V.episode_rewards(0, True)


def test_rewards_from_column_reads_the_sign_only():
    np.testing.assert_array_equal(V.rewards_from_column([0, 0, 0.3]), [-1, -1, 0])
    np.testing.assert_array_equal(V.rewards_from_column(np.float32([0, 5, -1])), [-1, -1, -100])
    np.testing.assert_array_equal(V.rewards_from_column(torch.tensor([1.0])), [0.0])
    with pytest.raises(ValueError, match="no outcome"):
        V.rewards_from_column([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="empty"):
        V.rewards_from_column([])
    pre = V.RewardConfig(precomputed_rewards=True)
    out = V.rewards_from_column(np.float32([0.5, -2.0, 0.0]), pre)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [0.5, -2.0, 0.0])
    with pytest.raises(ValueError, match="frame 1"):
        V.rewards_from_column([0.0, float("nan"), 1.0], pre)


def test_mc_returns_reject_nan_and_2d():
    np.testing.assert_array_equal(V.mc_returns([1.0, 2.0, 3.0]), [6.0, 5.0, 3.0])
    with pytest.raises(ValueError, match="non-finite"):
        V.mc_returns([0.0, float("nan")])
    with pytest.raises(ValueError, match="one-dimensional"):
        V.mc_returns(np.zeros((2, 2)))


# ---------------------------------------------------------------------------------------- normalization


def test_task_normalizers_and_normalize():
    g_a1 = V.mc_returns(V.episode_rewards(30, True))  # min -29
    g_a2 = V.mc_returns(V.episode_rewards(5, False))  # min -104
    g_b = V.mc_returns(V.episode_rewards(1, True))  # min 0 -> scale 1
    scales = V.compute_task_normalizers([g_a1, g_a2, g_b], ["a", "a", "b"])
    assert scales == {"a": 104.0, "b": 1.0}
    n = V.normalize_returns(g_a2, scales["a"])
    assert n[0] == -1.0 and n[-1] == pytest.approx(-100 / 104)
    assert np.all(V.normalize_returns([-500.0, 3.0], 10.0) == [-1.0, 0.0])
    with pytest.raises(ValueError, match="one task per episode"):
        V.compute_task_normalizers([g_a1], ["a", "b"])
    with pytest.raises(ValueError, match="> 0"):
        V.normalize_returns(g_a1, 0.0)
    with pytest.raises(ValueError, match="NaN"):
        V.normalize_returns([float("nan")], 1.0)


@FAST
@given(st.lists(st.tuples(lengths, st.booleans(), st.sampled_from("xyz")), min_size=1, max_size=8))
def test_normalized_returns_stay_in_unit_interval(episodes):
    returns = [V.mc_returns(V.episode_rewards(n, s)) for n, s, _ in episodes]
    tasks = [task for _, _, task in episodes]
    scales = V.compute_task_normalizers(returns, tasks)
    assert all(s >= 1.0 for s in scales.values())
    for g, task in zip(returns, tasks, strict=True):
        n = V.normalize_returns(g, scales[task])
        # The scale is the task's worst return, so no clipping is needed on training episodes.
        np.testing.assert_allclose(n, g / scales[task])
        assert n.min() >= -1.0 and n.max() <= 0.0


# ------------------------------------------------------------------------------------------- advantages


@FAST
@given(lengths, st.booleans(), st.integers(0, 80), st.integers(0, 2**31))
def test_n_step_with_long_horizon_equals_monte_carlo(length, success, extra, seed):
    values = -np.random.default_rng(seed).random(length)
    r = V.episode_rewards(length, success)
    scale = V.compute_task_normalizers([V.mc_returns(r)], ["t"])["t"]
    a_n = V.n_step_advantages(r / scale, values, n_step=length + extra)
    a_mc = V.mc_advantages(V.normalize_returns(V.mc_returns(r), scale), values)
    np.testing.assert_allclose(a_n, a_mc, atol=1e-12)


def test_n_step_matches_the_formula():
    r = np.array([-0.1, -0.1, -0.1, -1.0])
    v = np.array([-0.9, -0.8, -0.5, -0.2])
    a1 = V.n_step_advantages(r, v, 1)
    np.testing.assert_allclose(a1, [-0.1 - 0.8 + 0.9, -0.1 - 0.5 + 0.8, -0.1 - 0.2 + 0.5, -1.0 + 0.2])
    a2 = V.n_step_advantages(r, v, 2, terminal_value=0.0)
    np.testing.assert_allclose(a2, [-0.2 - 0.5 + 0.9, -0.2 - 0.2 + 0.8, -1.1 + 0.5, -1.0 + 0.2])
    a2t = V.n_step_advantages(r, v, 2, terminal_value=-0.5)
    np.testing.assert_allclose(a2t[2:], a2[2:] - 0.5)
    np.testing.assert_allclose(a2t[:2], a2[:2])
    with pytest.raises(ValueError, match="n_step"):
        V.n_step_advantages(r, v, 0)
    with pytest.raises(ValueError, match="same length"):
        V.n_step_advantages(r, v[:3], 1)
    with pytest.raises(ValueError, match="values has a non-finite"):
        V.n_step_advantages(r, [0.0, float("nan"), 0.0, 0.0], 1)


# ------------------------------------------------------------------------------------------------ labels


def test_thresholds_and_labels():
    adv = np.arange(10, dtype=float)
    tasks = ["a"] * 10
    th = V.compute_task_thresholds(adv, tasks)
    assert th == {"a": pytest.approx(np.percentile(adv, 30))}
    labels = V.binarize_advantages(adv, th, tasks)
    assert labels.count(V.POSITIVE_LABEL) == 7 and labels[:3] == [V.NEGATIVE_LABEL] * 3
    assert V.binarize_advantages([0.5, 0.5], 0.5) == [V.NEGATIVE_LABEL] * 2  # strict >
    assert V.is_positive(0.1, 0.0) and not V.is_positive(0.0, 0.0)
    with pytest.raises(KeyError, match="'b'.*known tasks.*'a'"):
        V.binarize_advantages([0.0], th, ["b"])
    with pytest.raises(ValueError, match="tasks"):
        V.binarize_advantages([0.0], th)
    with pytest.raises(ValueError, match="NaN"):
        V.is_positive(float("nan"), 0.0)
    with pytest.raises(ValueError, match="NaN"):
        V.compute_task_thresholds([0.0, float("nan")], "a")


@FAST
@given(
    st.lists(st.tuples(st.floats(-2, 2), st.sampled_from(["pick", "place"])), min_size=1, max_size=60),
    st.floats(0.0, 100.0),
)
def test_per_task_thresholds_split_each_task(items, pct):
    adv = np.array([a for a, _ in items])
    tasks = [t for _, t in items]
    th = V.compute_task_thresholds(adv, tasks, percentile=pct)
    assert set(th) == set(tasks)
    labels = V.binarize_advantages(adv, th, tasks)
    for task in th:
        mask = np.array(tasks) == task
        pos = np.array([lab == V.POSITIVE_LABEL for lab in labels])[mask]
        np.testing.assert_array_equal(pos, adv[mask] > th[task])
        # At most (100 - pct) % of a task's frames lie strictly above its pct-th percentile.
        assert pos.sum() <= math.ceil((1 - pct / 100) * mask.sum()) + 1e-9
