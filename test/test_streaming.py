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
def test_unknown_outcome_truncates_instead_of_scoring_a_success(length, n_step, seed):
    values = -np.random.default_rng(seed).random(length)
    scale = 40.0
    rewards = V.episode_rewards(length, None) / scale
    offline = V.n_step_advantages(rewards, values, n_step, truncated=True)
    s = StreamingAdvantage(n_step, scale)
    recs = stream_episode(s, values, None)
    # The last frame has no horizon left: no record. Every other one equals the offline truncated advantage.
    assert [r.tick for r in recs] == list(range(length - 1))
    np.testing.assert_array_equal([r.advantage for r in recs], offline[: length - 1])
    for t, r in enumerate(recs):
        assert r.n_step == min(n_step, length - 1 - t) and not r.terminal
        assert r.truncated == (t + n_step > length - 1)
        assert r.value_next == float(values[t + r.n_step])  # bootstraps, never the success value 0


def test_a_cut_episode_is_not_scored_as_a_success():
    """V near -0.4 everywhere: flushing with V(T)=0 would bias the last advantages by about +0.4."""
    s = StreamingAdvantage(n_step=10, scale=100.0)
    recs = stream_episode(s, [-0.4] * 30, None)
    tail = [r for r in recs if r.tick >= 20]
    assert tail and all(r.truncated for r in tail)
    assert max(abs(r.advantage) for r in tail) < 0.1 and not any(r.positive for r in tail)


def _offline_record(rewards, values, t, horizon, terminal):
    end = t + horizon
    v_next = 0.0 if terminal else float(values[end])
    return V.window_advantage(list(rewards[t:end]), float(values[t]), v_next)[0]


@FAST
@given(
    length=st.integers(2, 60),
    n_step=st.integers(1, 12),
    tolerance=st.integers(0, 3),
    success=st.sampled_from([True, False, None]),
    seed=st.integers(0, 2**31),
    keep=st.floats(0.3, 1.0),
)
def test_gaps_keep_frame_indices_and_reward_sums(length, n_step, tolerance, success, seed, keep):
    """Dropped frames are gaps: every record equals the offline advantage of its frame and horizon."""
    tolerance = min(tolerance, n_step - 1)
    rng = np.random.default_rng(seed)
    values = -rng.random(length)
    valued = np.flatnonzero(rng.random(length) < keep)
    if valued.size == 0:
        valued = np.array([0])
    scale = 25.0
    rewards = V.episode_rewards(length, success) / scale
    s = StreamingAdvantage(n_step, scale, bootstrap_tolerance=tolerance)
    recs = []
    for t in valued:
        recs += s.push(int(t), 0.0, float(values[t]))
        assert s.pending <= n_step + tolerance
    recs += s.end_episode(success, last_frame=length - 1)
    ticks = [r.tick for r in recs]
    assert ticks == sorted(set(ticks)) and set(ticks) <= set(valued.tolist())
    for r in recs:
        assert r.advantage == _offline_record(rewards, values, r.tick, r.n_step, r.terminal)
        if r.terminal:
            assert r.tick + n_step >= length and r.n_step == length - r.tick
        elif not r.truncated:
            assert abs(r.n_step - n_step) <= tolerance and (r.tick + r.n_step) in set(valued.tolist())
    if tolerance == 0 and success is not None:
        # Exactly the frames whose t+N was valued or past the end, with the offline n-step advantage.
        expect = [int(t) for t in valued if t + n_step >= length or (t + n_step) in set(valued.tolist())]
        assert ticks == expect
        offline = V.n_step_advantages(rewards, values, n_step)
        np.testing.assert_array_equal([r.advantage for r in recs], offline[expect])


def test_frames_after_the_last_frame_are_not_the_episodes():
    s = StreamingAdvantage(n_step=2, scale=10.0)
    for t in range(6):
        s.push(t, 0.0, -0.5)
    recs = s.end_episode(True, last_frame=3)
    assert recs == [] and s.stats.unpublished_tail == 2  # frames 4 and 5 came after the END's stamp
    for t in range(3):
        s.push(t, 0.0, -0.5)
    recs = s.end_episode(True, last_frame=2)
    assert [r.tick for r in recs] == [1, 2] and all(r.terminal for r in recs)


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
    # An episode that ended (any outcome): the pushed rewards are used, the horizon stops at V(T) = 0.
    recs = stream_episode(s, values, success=True, rewards=column)
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
    with pytest.raises(ValueError, match="does not follow frame 0.*reset"):
        s.push(0, 0.1, -0.5)
    with pytest.raises(ValueError, match="bootstrap_tolerance"):
        StreamingAdvantage(n_step=2, scale=1.0, bootstrap_tolerance=2)
    with pytest.raises(ValueError, match="value of frame 1"):
        s.push(1, 0.1, float("nan"))
    with pytest.raises(ValueError, match="end_episode"):
        s.push(1, 0.1, -0.5, reward=1.0)
    pre = StreamingAdvantage(n_step=2, scale=1.0, reward=V.RewardConfig(precomputed_rewards=True))
    with pytest.raises(ValueError, match="raw reward"):
        pre.push(0, 0.0, -0.5)
