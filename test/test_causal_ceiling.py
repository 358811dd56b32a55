# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The causal value ceiling (pure numpy): outcome known only from the mistake's onset, hedged before it."""

from __future__ import annotations

import numpy as np
import pytest

from ove_ros.training.baselines import FrameSet
from ove_ros.training.ceiling import causal_ceiling


def success_target(length: int) -> np.ndarray:
    return -(length - 1 - np.arange(length)) / 20.0


def failure_target(length: int) -> np.ndarray:
    return -1.0 + np.arange(length) / 40.0


def frames(episodes: list[tuple[int, str, bool, int]]) -> FrameSet:
    """(episode id, task, success, length) -> one FrameSet with the targets above."""
    rows = []
    for episode, task, success, length in episodes:
        target = success_target(length) if success else failure_target(length)
        rows.append({"episode": episode, "task": task, "success": success,
                     "states": np.zeros((length, 1)), "targets": target})
    return FrameSet.from_episodes(rows)


TRAIN = [(0, "a", True, 6), (1, "a", True, 6), (2, "a", True, 6), (3, "a", False, 10)]


def test_a_failure_shown_from_the_start_gets_the_failures_curve():
    train, test = frames(TRAIN), frames([(10, "a", False, 10), (11, "a", True, 6)])
    pred = causal_ceiling(train, test, {0: None, 1: None, 2: None, 3: 0, 10: 0, 11: None})
    np.testing.assert_allclose(pred[:10], failure_target(10))
    # Training failures all showed at frame 0: nothing hides among the successes, so q = 1.
    np.testing.assert_allclose(pred[10:], success_target(6))


def test_before_the_onset_the_estimate_hedges_with_the_training_share_of_successes():
    train, test = frames(TRAIN), frames([(10, "a", False, 10), (11, "a", True, 6)])
    onsets = {0: None, 1: None, 2: None, 3: 4, 10: 3, 11: None}
    pred = causal_ceiling(train, test, onsets)
    fail, succ = failure_target(10), success_target(6)
    q = np.array([3 / 4] * 4 + [1.0] * 2)  # three successes hide one failure up to its onset at frame 4
    hedge = q * succ + (1 - q) * fail[:6]
    # The held-out failure: hedged up to its own onset (frame 3), its outcome known from there on.
    np.testing.assert_allclose(pred[:3], hedge[:3])
    np.testing.assert_allclose(pred[3:10], fail[3:])
    # The held-out success is hedged while a failure could still be hiding.
    np.testing.assert_allclose(pred[10:], hedge)
    # Later onsets can only lose: the ceiling's error grows as the mistake shows later.
    errors = []
    for onset in (0, 2, 4, 8):
        later = onsets | {3: onset, 10: onset}
        errors.append(float(np.mean((causal_ceiling(train, test, later) - test.target) ** 2)))
    assert errors[0] == pytest.approx(0.0, abs=1e-12) and errors == sorted(errors) and errors[-1] > 0.01


def test_tasks_are_kept_apart_and_every_episode_needs_an_onset():
    train = frames(TRAIN + [(4, "b", True, 8)])
    test = frames([(10, "b", True, 8)])
    onsets = {0: None, 1: None, 2: None, 3: 9, 4: None, 10: None}
    # Task b never failed in training: its success is predicted exactly, whatever task a's failures do.
    np.testing.assert_allclose(causal_ceiling(train, test, onsets), success_target(8))
    with pytest.raises(ValueError, match=r"no mistake onset for episodes \[10\]"):
        causal_ceiling(train, test, {k: v for k, v in onsets.items() if k != 10})
    bare = FrameSet(episode=test.episode, frame=test.frame, task=test.task, state=test.state,
                    target=test.target)
    with pytest.raises(ValueError, match="outcome"):
        causal_ceiling(train, bare, onsets)
