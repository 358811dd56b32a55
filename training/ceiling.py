# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The causal value ceiling (pure numpy): the best EV any value estimate that sees only the past can reach.

A failure is the same episode as a success up to the frame where its fatal mistake first changes anything
(in the simulator: ``ove_ros.sim.episodes.mistake_onsets``). Before that frame no observer can tell the two
apart, so the best estimate of the target is the mixture ``q(t) * success(t) + (1 - q(t)) * failure(t)``,
where ``q(t)`` is the share of successes among the training episodes of the task still running at frame
``t`` with no mistake shown, and ``success(t)``, ``failure(t)`` are the mean targets of the training
successes and failures at that frame. From the onset on, the outcome is granted (``failure(t)``).

It is the best causal estimate in expectation over episodes drawn like the training ones: no predictor that
reads frames, joints and the clock does better on average, though on a small held-out set one whose prior
happens to match that set's mix of outcomes can land above it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ove_ros.training.baselines import FrameSet, frame_means


def causal_ceiling(train: FrameSet, test: FrameSet, onsets: Mapping[int, int | None]) -> np.ndarray:
    """The ceiling's estimate for every ``test`` frame.

    ``onsets`` maps every episode of ``train`` and ``test`` to the first frame at which its fatal mistake
    shows (None: an episode without one); ``FrameSet.success`` holds the outcomes. A failed episode without
    an onset counts as showing from frame 0 (nothing hides its outcome). A task with no training failures
    (or successes) predicts the training targets of that task at the frame index.
    """
    missing = sorted({int(e) for e in np.unique(np.r_[train.episode, test.episode])} - set(onsets))
    if missing:
        raise ValueError(f"causal_ceiling: no mistake onset for episodes {missing[:5]}; pass one per "
                         "episode (None where there is no fatal mistake)")
    if not train.success or not test.success:
        raise ValueError("causal_ceiling: both FrameSets need each episode's outcome (FrameSet.success)")
    horizon = int(max(train.frame.max(), test.frame.max())) + 1
    out = np.full(len(test), np.nan)

    def shown_from(episode: int) -> int:
        """First frame at which the episode's outcome is known (a success: never)."""
        if train.success.get(episode, test.success.get(episode, True)):
            return horizon
        onset = onsets[episode]
        return 0 if onset is None else int(onset)

    for task in np.unique(test.task):
        tr = train.task == task
        success = np.array([train.success[int(e)] for e in train.episode[tr]])
        frames, targets = train.frame[tr], train.target[tr]
        if success.all() or not success.any():  # one outcome only: nothing to hedge
            succ_curve = fail_curve = frame_means(frames, targets, horizon)
        else:
            succ_curve = frame_means(frames[success], targets[success], horizon)
            fail_curve = frame_means(frames[~success], targets[~success], horizon)
        hidden_success, hidden_failure = np.zeros(horizon), np.zeros(horizon)
        for e in np.unique(train.episode[tr]):
            length = int((train.episode == e).sum())
            if train.success[int(e)]:
                hidden_success[:length] += 1
            else:
                hidden_failure[:min(length, shown_from(int(e)))] += 1
        q = hidden_success / np.maximum(hidden_success + hidden_failure, 1)
        q[(hidden_success + hidden_failure) == 0] = 1.0  # past every training episode: a success's curve
        hedge = q * succ_curve + (1 - q) * fail_curve
        rows = np.flatnonzero(test.task == task)
        for e in np.unique(test.episode[rows]):
            mine = rows[test.episode[rows] == e]
            t = test.frame[mine]
            out[mine] = np.where(t >= shown_from(int(e)), fail_curve[t], hedge[t])
    return out
