# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The online advantage stream must equal the offline n-step advantages exactly."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ove_ros import values as V
from ove_ros.streaming import AdvantageRecord, StreamingAdvantage

FAST = settings(max_examples=80, deadline=None)


def stream_episode(
    s: StreamingAdvantage, values, success, rewards=None, first_tick=0
) -> list[AdvantageRecord]:
    out = []
    for i, v in enumerate(values):
        kw = {} if rewards is None else {"reward": float(rewards[i])}
        recs = s.push(first_tick + i, 0.1 * i, float(v), **kw)
        assert s.pending <= s.n_step
        out += recs
    out += s.end_episode(success)
    assert s.pending == 0
    return out


def check_records(recs, values, n_step, offline, threshold):
    length = len(values)
    assert [r.tick for r in recs] == list(range(length))
    adv = np.array([r.advantage for r in recs])
    np.testing.assert_array_equal(adv, offline)  # bit for bit, not approximately
    for t, r in enumerate(recs):
        assert r.n_step == min(n_step, length - t)
        assert r.terminal == (t + n_step >= length)
        assert r.value == float(values[t])
        assert r.value_next == (0.0 if r.terminal else float(values[t + n_step]))
        assert r.positive == V.is_positive(r.advantage, threshold) and r.threshold == threshold


@FAST
@given(
    length=st.integers(1, 40),
    n_step=st.integers(1, 50),
    success=st.booleans(),
    seed=st.integers(0, 2**31),
    scale=st.floats(1.0, 300.0),
    threshold=st.floats(-0.5, 0.5),
)
def test_streamed_equals_offline(length, n_step, success, seed, scale, threshold):
    values = -np.random.default_rng(seed).random(length)
    offline = V.n_step_advantages(V.episode_rewards(length, success) / scale, values, n_step)
    s = StreamingAdvantage(n_step, scale, V.RewardConfig(), threshold)
    check_records(stream_episode(s, values, success), values, n_step, offline, threshold)


@pytest.mark.parametrize("length,n_step", [(1, 1), (1, 5), (2, 1), (5, 5), (5, 6), (10, 1), (10, 3)])
@pytest.mark.parametrize("success", [True, False])
def test_streamed_equals_offline_edge_cases(length, n_step, success):
    values = np.linspace(-0.9, -0.1, length).astype(np.float32)  # float32 like a model's output
    cfg = V.RewardConfig(step_penalty=2.0, fail_penalty=50.0)
    scale = 123.0
    offline = V.n_step_advantages(V.episode_rewards(length, success, cfg) / scale, values, n_step)
    s = StreamingAdvantage(n_step, scale, cfg, threshold=0.0)
    check_records(stream_episode(s, values, success), values, n_step, offline, 0.0)


def test_failure_tick_gets_the_fail_penalty_only_at_the_end():
    s = StreamingAdvantage(n_step=2, scale=100.0)
    recs = stream_episode(s, [-0.5, -0.5, -0.5], success=False)
    # Tick 0 sees two step penalties; tick 1 sees a step then the failure; tick 2 only the failure.
    assert [r.reward_sum for r in recs] == pytest.approx([-0.02, -1.01, -1.0])


@FAST
@given(length=st.integers(1, 30), n_step=st.integers(1, 40), seed=st.integers(0, 2**31))
def test_unknown_outcome_uses_the_step_penalty(length, n_step, seed):
    values = -np.random.default_rng(seed).random(length)
    scale = 40.0
    rewards = np.full(length, -1.0) / scale
    offline = V.n_step_advantages(rewards, values, n_step)
    s = StreamingAdvantage(n_step, scale)
    check_records(stream_episode(s, values, None), values, n_step, offline, 0.0)


@FAST
@given(
    rewards=st.lists(st.floats(-3, 3), min_size=1, max_size=30),
    n_step=st.integers(1, 35),
    seed=st.integers(0, 2**31),
)
def test_precomputed_rewards_stream(rewards, n_step, seed):
    cfg = V.RewardConfig(precomputed_rewards=True)
    column = np.asarray(rewards, dtype=np.float32)
    values = -np.random.default_rng(seed).random(len(rewards))
    scale = 7.0
    offline = V.n_step_advantages(V.rewards_from_column(column, cfg) / scale, values, n_step)
    s = StreamingAdvantage(n_step, scale, cfg)
    recs = stream_episode(s, values, success=None, rewards=column)
    check_records(recs, values, n_step, offline, 0.0)


def test_consecutive_episodes_and_reset():
    s = StreamingAdvantage(n_step=3, scale=10.0)
    a = stream_episode(s, [-0.3] * 5, True, first_tick=100)
    b = stream_episode(s, [-0.3] * 5, True, first_tick=0)
    assert [r.advantage for r in a] == [r.advantage for r in b]
    assert s.push(0, 0.0, -0.1) == [] and s.push(1, 0.1, -0.1) == []
    assert s.reset() == 2 and s.pending == 0
    assert s.end_episode(True) == []
    assert s.push(7, 0.0, -0.1) == []  # any tick may start after a reset


def test_memory_is_bounded_by_the_horizon():
    s = StreamingAdvantage(n_step=4, scale=10.0)
    emitted = 0
    for t in range(1000):
        emitted += len(s.push(t, t / 30, -0.5))
        assert s.pending <= 4 and len(s._queue) <= 5
    assert emitted == 1000 - 4


def test_threshold_and_scale_updates():
    s = StreamingAdvantage(n_step=1, scale=10.0, threshold=0.0)
    s.push(0, 0.0, -0.5)
    rec = s.push(1, 0.1, -0.5)[0]  # A = -0.1
    assert not rec.positive
    s.set_threshold(-0.2)
    rec = s.push(2, 0.2, -0.5)[0]
    assert rec.positive and rec.threshold == -0.2
    with pytest.raises(RuntimeError, match="pending"):
        s.set_scale(20.0)
    s.reset()
    s.set_scale(20.0)
    assert s.scale == 20.0


def test_bad_input_is_rejected_with_clear_messages():
    with pytest.raises(ValueError, match="n_step"):
        StreamingAdvantage(n_step=0, scale=1.0)
    with pytest.raises(ValueError, match="scale"):
        StreamingAdvantage(n_step=1, scale=0.0)
    with pytest.raises(ValueError, match="NaN"):
        StreamingAdvantage(n_step=1, scale=1.0, threshold=float("nan"))
    s = StreamingAdvantage(n_step=2, scale=1.0)
    s.push(0, 0.0, -0.5)
    with pytest.raises(ValueError, match="does not follow tick 0.*reset"):
        s.push(2, 0.1, -0.5)
    with pytest.raises(ValueError, match="value of tick 1"):
        s.push(1, 0.1, float("nan"))
    with pytest.raises(ValueError, match="end_episode"):
        s.push(1, 0.1, -0.5, reward=1.0)
    pre = StreamingAdvantage(n_step=2, scale=1.0, reward=V.RewardConfig(precomputed_rewards=True))
    with pytest.raises(ValueError, match="raw reward"):
        pre.push(0, 0.0, -0.5)
