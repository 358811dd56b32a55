# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Online n-step advantages that equal the offline ones of ``values.n_step_advantages`` bit for bit.

The stream sees one value per tick. The record of tick ``t`` needs ``V(t+N)`` and the rewards
``r_t .. r_{t+N-1}``; it is emitted when tick ``t+N`` arrives. In terminal-outcome mode the reward of the
*last* tick is the terminal reward, and which tick was last is only known at ``end_episode``. A tick's reward
is needed only once a later tick has arrived (which proves the tick was not last), or at ``end_episode``; so
the stream never commits to a reward before it is known. At most N+1 ticks are held.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ove_ros.values import RewardConfig, is_positive, terminal_reward, window_advantage


@dataclass(frozen=True)
class AdvantageRecord:
    """The n-step advantage of one tick (normalized units, like the offline labels)."""

    tick: int
    stamp: float
    n_step: int  # horizon used: N, or fewer ticks when the episode ended first
    advantage: float
    value: float  # V(t)
    value_next: float  # V(t + n_step); the terminal value 0 when the horizon reached the episode end
    reward_sum: float  # sum of the normalized rewards over the horizon
    terminal: bool  # True when the horizon reached the episode end (flushed by end_episode)
    positive: bool
    threshold: float


@dataclass(frozen=True)
class _Pending:
    tick: int
    stamp: float
    value: float
    reward: float | None  # the normalized reward, only in precomputed-rewards mode


def _finite(x: float, name: str) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    return x


class StreamingAdvantage:
    """Turns a stream of per-tick values into n-step advantage records.

    ``scale`` is the task's return normalizer and ``threshold`` its advantage threshold (both from the
    deploy bundle). Ticks must be consecutive integers within an episode; call ``reset`` after a gap.
    """

    def __init__(
        self, n_step: int, scale: float, reward: RewardConfig | None = None, threshold: float = 0.0
    ) -> None:
        if isinstance(n_step, bool) or int(n_step) != n_step or n_step < 1:
            raise ValueError(f"n_step must be an integer >= 1, got {n_step}")
        self.n_step = int(n_step)
        self.reward = reward or RewardConfig()
        self._scale = 1.0
        self.set_scale(scale)
        self._threshold = 0.0
        self.set_threshold(threshold)
        self._queue: deque[_Pending] = deque(maxlen=self.n_step + 1)
        self._last_tick: int | None = None

    # ----------------------------------------------------------------------------------------- settings

    @property
    def scale(self) -> float:
        return self._scale

    @property
    def threshold(self) -> float:
        return self._threshold

    @property
    def pending(self) -> int:
        """Ticks pushed whose record is not out yet."""
        return len(self._queue)

    def set_threshold(self, threshold: float) -> None:
        """Change the labelling threshold; applies to records emitted from now on."""
        if math.isnan(threshold):
            raise ValueError("the advantage threshold is NaN; pass the task's threshold from the bundle")
        self._threshold = float(threshold)

    def set_scale(self, scale: float) -> None:
        """Change the return normalizer (e.g. on a task change); only allowed with no pending ticks."""
        scale = float(scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"the return scale must be a finite number > 0, got {scale}")
        if getattr(self, "_queue", None):
            raise RuntimeError(
                f"cannot change the scale with {len(self._queue)} pending ticks; "
                "call end_episode() or reset() first"
            )
        self._scale = scale

    # ------------------------------------------------------------------------------------------ stream

    def reset(self) -> int:
        """Drop the pending ticks (clock jump, task change without an outcome); returns how many."""
        dropped = len(self._queue)
        self._queue.clear()
        self._last_tick = None
        return dropped

    def push(
        self, tick: int, stamp: float, value: float, reward: float | None = None
    ) -> list[AdvantageRecord]:
        """Add the value of ``tick``; returns the record of ``tick - N`` once it is complete.

        ``reward`` (raw, unnormalized) is required in precomputed-rewards mode and rejected otherwise.
        """
        tick = int(tick)
        if self._last_tick is not None and tick != self._last_tick + 1:
            raise ValueError(
                f"tick {tick} does not follow tick {self._last_tick}; ticks of an episode must be "
                "consecutive (call reset() after a gap or a clock jump)"
            )
        value = _finite(value, f"the value of tick {tick}")
        stamp = _finite(stamp, f"the stamp of tick {tick}")
        if self.reward.precomputed_rewards:
            if reward is None:
                raise ValueError("precomputed_rewards is set: push() needs the raw reward of every tick")
            norm_reward: float | None = _finite(reward, f"the reward of tick {tick}") / self._scale
        elif reward is not None:
            raise ValueError(
                "push() got a reward but rewards come from the episode outcome (precomputed_rewards=False); "
                "pass the outcome to end_episode() instead"
            )
        else:
            norm_reward = None
        self._queue.append(_Pending(tick, stamp, value, norm_reward))
        self._last_tick = tick
        if len(self._queue) <= self.n_step:
            return []
        # The window's ticks are all followed by a later tick, so none of them is the last one.
        window = list(self._queue)
        rewards = [self._step_reward(p) for p in window[:-1]]
        record = self._record(window[0], rewards, window[-1].value, terminal=False)
        self._queue.popleft()
        return [record]

    def end_episode(self, success: bool | None) -> list[AdvantageRecord]:
        """Flush the pending ticks with the horizon cut at the episode end (V(T) = 0), then reset.

        The last pushed tick gets the terminal reward: 0 on success, ``-fail_penalty`` on failure. With
        ``success=None`` (outcome unknown, e.g. the operator stopped the episode) the last tick keeps the
        plain step penalty, as if the episode went on with a value of 0 after it. In precomputed-rewards mode
        the pushed rewards are used and ``success`` is ignored.
        """
        pending = list(self._queue)
        self.reset()
        if not pending:
            return []
        rewards = [self._step_reward(p) for p in pending[:-1]]
        last = pending[-1]
        if self.reward.precomputed_rewards:
            rewards.append(self._step_reward(last))
        elif success is None:
            rewards.append(-float(self.reward.step_penalty) / self._scale)
        else:
            rewards.append(terminal_reward(bool(success), self.reward) / self._scale)
        return [self._record(p, rewards[i:], 0.0, terminal=True) for i, p in enumerate(pending)]

    # -------------------------------------------------------------------------------------------- math

    def _step_reward(self, p: _Pending) -> float:
        """The normalized reward of a tick known not to be the episode's last."""
        if p.reward is not None:
            return p.reward
        # Same operation as episode_rewards(...) / scale offline, so the floats are identical.
        return -float(self.reward.step_penalty) / self._scale

    def _record(
        self, p: _Pending, rewards: list[float], value_next: float, terminal: bool
    ) -> AdvantageRecord:
        advantage, reward_sum = window_advantage(rewards, p.value, value_next)
        return AdvantageRecord(
            tick=p.tick,
            stamp=p.stamp,
            n_step=len(rewards),
            advantage=advantage,
            value=p.value,
            value_next=float(value_next),
            reward_sum=reward_sum,
            terminal=terminal,
            positive=is_positive(advantage, self._threshold),
            threshold=self._threshold,
        )
