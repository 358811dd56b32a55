# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Online n-step advantages that equal the offline ones of ``values.n_step_advantages`` bit for bit.

Frames are dataset frames (``frame_grid``): ``t`` and ``N`` count frames at the dataset's fps, exactly as
training does, and the stream is told each valued frame's index. A frame the node did not value is a gap:
rewards still count every frame of a window, and only the values at its two ends are needed. The record of
frame ``t`` needs ``V(t+N)``; when that frame was not valued, the nearest valued frame within
``bootstrap_tolerance`` frames is used instead (the record says which horizon it used; ties go to the
shorter one), and with none the record is not produced (counted in ``stats``).

Episode ends: with an outcome, the horizon stops at the terminal state ``V(T) = 0`` and the last frame gets
the terminal reward. Without one (operator reset, task change, a START without an END, shutdown) the episode
is truncated: horizons stop at the last valued frame and bootstrap from its value, as
``n_step_advantages(..., truncated=True)`` does offline, and records say ``truncated``. A cut is never
scored as a success.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ove_ros.values import RewardConfig, is_positive, terminal_reward, window_advantage


@dataclass(frozen=True)
class AdvantageRecord:
    """The n-step advantage of one frame (normalized units, like the offline labels)."""

    tick: int  # frame index t within the episode
    stamp: float
    n_step: int  # horizon used in frames: N, or another when bootstrapped nearby or cut by the episode end
    advantage: float
    value: float  # V(t)
    value_next: float  # V(t + n_step); the terminal value 0 when the horizon reached the episode's end
    reward_sum: float  # sum of the normalized rewards of frames t .. t + n_step - 1
    terminal: bool  # the horizon reached the end of an episode with an outcome
    positive: bool
    threshold: float
    truncated: bool = False  # the horizon was cut by an episode end without an outcome


@dataclass
class StreamStats:
    published: int = 0
    shifted: int = 0  # bootstrapped from a neighbour of frame t+N (within the tolerance)
    missing: int = 0  # no valued frame near t+N: not published
    truncated: int = 0  # published with a horizon cut by an episode end without an outcome
    unpublished_tail: int = 0  # last frames of a truncated episode (horizon 0) or after the episode's end


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
    """Turns per-frame values into n-step advantage records.

    ``scale`` is the task's return normalizer and ``threshold`` its advantage threshold (both from the
    deploy bundle). Frame indices must increase within an episode; gaps are allowed. Call ``end_episode``
    or ``reset`` before a new episode.
    """

    def __init__(
        self,
        n_step: int,
        scale: float,
        reward: RewardConfig | None = None,
        threshold: float = 0.0,
        bootstrap_tolerance: int = 0,
    ) -> None:
        if isinstance(n_step, bool) or int(n_step) != n_step or n_step < 1:
            raise ValueError(f"n_step must be an integer >= 1, got {n_step}")
        if int(bootstrap_tolerance) != bootstrap_tolerance or not 0 <= bootstrap_tolerance < n_step:
            raise ValueError(
                f"bootstrap_tolerance must be an integer in [0, n_step), got {bootstrap_tolerance}"
            )
        self.n_step = int(n_step)
        self.tolerance = int(bootstrap_tolerance)
        self.reward = reward or RewardConfig()
        self.stats = StreamStats()
        self._scale = 1.0
        self.set_scale(scale)
        self._threshold = 0.0
        self.set_threshold(threshold)
        self._queue: deque[_Pending] = deque()
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
        """Frames pushed whose record is not out yet."""
        return len(self._queue)

    def set_threshold(self, threshold: float) -> None:
        """Change the labelling threshold; applies to records emitted from now on."""
        if math.isnan(threshold):
            raise ValueError("the advantage threshold is NaN; pass the task's threshold from the bundle")
        self._threshold = float(threshold)

    def set_scale(self, scale: float) -> None:
        """Change the return normalizer (e.g. on a task change); only allowed with no pending frames."""
        scale = float(scale)
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"the return scale must be a finite number > 0, got {scale}")
        if getattr(self, "_queue", None):
            raise RuntimeError(
                f"cannot change the scale with {len(self._queue)} pending frames; "
                "call end_episode() or reset() first"
            )
        self._scale = scale

    # ------------------------------------------------------------------------------------------ stream

    def reset(self) -> int:
        """Drop the pending frames (clock jump); returns how many."""
        dropped = len(self._queue)
        self._queue.clear()
        self._last_tick = None
        return dropped

    def push(
        self, tick: int, stamp: float, value: float, reward: float | None = None
    ) -> list[AdvantageRecord]:
        """Add the value of frame ``tick``; returns the records this completes.

        ``reward`` (raw, unnormalized) is required in precomputed-rewards mode and rejected otherwise; there,
        a window with an unvalued frame has no known reward sum and is not published.
        """
        tick = int(tick)
        if tick < 0:
            raise ValueError(f"frame index {tick} is negative")
        if self._last_tick is not None and tick <= self._last_tick:
            raise ValueError(
                f"frame {tick} does not follow frame {self._last_tick}; frame indices must increase within "
                "an episode (call end_episode() or reset() before a new one)"
            )
        value = _finite(value, f"the value of frame {tick}")
        stamp = _finite(stamp, f"the stamp of frame {tick}")
        if self.reward.precomputed_rewards:
            if reward is None:
                raise ValueError("precomputed_rewards is set: push() needs the raw reward of every frame")
            norm_reward: float | None = _finite(reward, f"the reward of frame {tick}") / self._scale
        elif reward is not None:
            raise ValueError(
                "push() got a reward but rewards come from the episode outcome (precomputed_rewards=False); "
                "pass the outcome to end_episode() instead"
            )
        else:
            norm_reward = None
        self._queue.append(_Pending(tick, stamp, value, norm_reward))
        self._last_tick = tick
        out = []
        valued = {p.tick: p for p in self._queue}
        while self._queue:
            head = self._queue[0]
            target = head.tick + self.n_step
            if tick < target or (tick < target + self.tolerance and target not in valued):
                break  # frame t+N, or a nearer neighbour of it, may still come
            # Every frame up to the bootstrap frame is followed by a later one: none is the episode's last.
            bootstrap = self._nearest(target, valued, upto=tick)
            out += self._emit(head, bootstrap, last_frame=None, pool=valued)
            self._queue.popleft()
        return out

    def end_episode(self, success: bool | None, last_frame: int | None = None) -> list[AdvantageRecord]:
        """Flush the pending frames at the episode's end, then reset.

        ``last_frame`` is the episode's last frame index (default: the last pushed one); frames pushed after
        it are not the episode's. With ``success`` True/False the horizon stops at ``V(T) = 0`` and the last
        frame gets the terminal reward; with None the episode is truncated (see the module docstring). In
        precomputed-rewards mode the pushed rewards are used and a known outcome only ends the horizon.
        """
        pending = list(self._queue)
        self.reset()
        if last_frame is None:
            last_frame = pending[-1].tick if pending else -1
        late = [p for p in pending if p.tick > last_frame]
        self.stats.unpublished_tail += len(late)
        pending = [p for p in pending if p.tick <= last_frame]
        if not pending:
            return []
        valued = {p.tick: p for p in pending}
        out: list[AdvantageRecord] = []
        if success is None:
            end = pending[-1].tick  # truncated: horizons stop at the last valued frame
            for p in pending:
                target = p.tick + self.n_step
                if target <= end:
                    bootstrap = self._nearest(target, valued, upto=end)
                    out += self._emit(p, bootstrap, last_frame=None, pool=valued)
                elif p.tick < end:
                    out += self._emit(p, valued[end], last_frame=None, pool=valued, truncated=True)
                else:
                    self.stats.unpublished_tail += 1
            return out
        terminal_frames = last_frame + 1
        for p in pending:
            target = p.tick + self.n_step
            if target >= terminal_frames:
                out += self._emit(p, None, last_frame=last_frame, pool=valued, success=success)
            else:
                bootstrap = self._nearest(target, valued, upto=last_frame)
                out += self._emit(p, bootstrap, last_frame=None, pool=valued)
        return out

    # -------------------------------------------------------------------------------------------- math

    def _nearest(self, target: int, valued: dict[int, _Pending], upto: int) -> _Pending | None:
        """The valued frame nearest to ``target`` within the tolerance (ties: the earlier), or None."""
        for d in range(self.tolerance + 1):
            for tick in (target - d, target + d):
                if tick <= upto and tick in valued:
                    return valued[tick]
        return None

    def _reward(self, tick: int, pool: dict[int, _Pending], last_frame: int | None,
                success: bool | None) -> float | None:
        """The normalized reward of frame ``tick`` (None: unknown in precomputed mode)."""
        if self.reward.precomputed_rewards:
            p = pool.get(tick)
            return None if p is None else p.reward
        if tick == last_frame and success is not None:
            return terminal_reward(bool(success), self.reward) / self._scale
        # Same operation as episode_rewards(...) / scale offline, so the floats are identical.
        return -float(self.reward.step_penalty) / self._scale

    def _emit(
        self,
        p: _Pending,
        bootstrap: _Pending | None,
        last_frame: int | None,
        pool: dict[int, _Pending],
        success: bool | None = None,
        truncated: bool = False,
    ) -> list[AdvantageRecord]:
        if bootstrap is None and last_frame is None:
            self.stats.missing += 1
            return []
        end = bootstrap.tick if bootstrap is not None else last_frame + 1
        rewards = [self._reward(k, pool, last_frame, success) for k in range(p.tick, end)]
        if any(r is None for r in rewards):
            self.stats.missing += 1
            return []
        value_next = bootstrap.value if bootstrap is not None else 0.0
        advantage, reward_sum = window_advantage(rewards, p.value, value_next)
        horizon = end - p.tick
        self.stats.published += 1
        if bootstrap is not None and not truncated and horizon != self.n_step:
            self.stats.shifted += 1
        if truncated:
            self.stats.truncated += 1
        return [
            AdvantageRecord(
                tick=p.tick,
                stamp=p.stamp,
                n_step=horizon,
                advantage=advantage,
                value=p.value,
                value_next=float(value_next),
                reward_sum=reward_sum,
                terminal=bootstrap is None,
                positive=is_positive(advantage, self._threshold),
                threshold=self._threshold,
                truncated=truncated,
            )
        ]
