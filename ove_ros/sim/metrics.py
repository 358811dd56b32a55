# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Metrics of the main job (pure numpy): explained variance, failure AUROC, online-vs-offline agreement.

- EV: how much of the variance of the true normalized return the predicted value explains, over all frames
  of the held-out episodes (1 is perfect, 0 is no better than the mean).
- AUROC: how well the value at the middle frame of an episode separates failures from successes (1 is a
  perfect ranking, 0.5 is chance); failures are the positive class, scored by ``-value``.
- EV ceiling without a clock: the EV of a predictor that knows every episode's outcome and, for successes,
  the exact steps to go, but predicts the mean target of its task's failures for every failure frame. A
  failed episode ends at the time limit, and nothing in a frame says how long the episode has run, so no
  model can beat this by much; it puts the achieved EV in context.
- Agreement: the largest and mean absolute difference between the live node's values and the same bundle
  run offline on the same frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from ove_ros.values import RewardConfig, episode_rewards, mc_returns, normalize_returns


def explained_variance(pred: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    """``1 - Var(target - pred) / Var(target)``; NaN when the target is constant or empty."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    t = np.asarray(target, dtype=np.float64).reshape(-1)
    if p.shape != t.shape:
        raise ValueError(f"pred has {p.size} values but target has {t.size}")
    var = float(np.var(t)) if t.size else 0.0
    if var <= 0.0:
        return float("nan")
    return 1.0 - float(np.var(t - p)) / var


def auroc(scores: Sequence[float] | np.ndarray, positive: Sequence[bool] | np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count 1/2); NaN if one class
    is missing."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(positive, dtype=bool).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))


def normalized_targets(
    length: int, success: bool, scale: float, reward: RewardConfig | None = None
) -> np.ndarray:
    """The normalized Monte Carlo return of every frame of one episode (what the value should predict)."""
    return normalize_returns(mc_returns(episode_rewards(length, success, reward or RewardConfig())), scale)


def mid_index(length: int) -> int:
    """The middle frame of an episode of ``length`` frames."""
    return (int(length) - 1) // 2


def mid_value(values: np.ndarray) -> float:
    """The value at the middle frame, or at the nearest frame that has one (NaN marks frames not valued)."""
    valid = np.flatnonzero(np.isfinite(values))
    if valid.size == 0:
        return float("nan")
    return float(values[valid[np.argmin(np.abs(valid - mid_index(len(values))))]])


@dataclass
class Agreement:
    """Online (live node) vs offline (same bundle, same frames) values."""

    frames: int
    max_abs_diff: float
    mean_abs_diff: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def agreement(online: Sequence[float] | np.ndarray, offline: Sequence[float] | np.ndarray) -> Agreement:
    a = np.asarray(online, dtype=np.float64).reshape(-1)
    b = np.asarray(offline, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"{a.size} online values but {b.size} offline values")
    if a.size == 0:
        return Agreement(0, float("nan"), float("nan"))
    diff = np.abs(a - b)
    return Agreement(int(a.size), float(diff.max()), float(diff.mean()))


@dataclass
class EpisodeValues:
    """One evaluated episode: predicted values per frame and what they should have been."""

    episode_id: str
    task: str
    success: bool
    values: np.ndarray  # predicted normalized value per frame (NaN: the frame was not valued)
    targets: np.ndarray  # normalized MC return per frame


def ev_ceiling_without_clock(episodes: Sequence[EpisodeValues]) -> float:
    """EV of the outcome oracle described in the module docstring (NaN without episodes)."""
    if not episodes:
        return float("nan")
    preds = []
    for e in episodes:
        if e.success:
            preds.append(e.targets)
        else:
            same = [o.targets for o in episodes if o.task == e.task and not o.success]
            preds.append(np.full(len(e.targets), float(np.concatenate(same).mean())))
    return explained_variance(np.concatenate(preds), np.concatenate([e.targets for e in episodes]))


def value_metrics(episodes: Sequence[EpisodeValues]) -> dict[str, float]:
    """EV over all frames, mid-episode failure AUROC, and per-outcome summaries."""
    if not episodes:
        return {"episodes": 0, "frames": 0, "ev": float("nan"), "auroc_mid": float("nan")}
    pred = np.concatenate([e.values for e in episodes])
    target = np.concatenate([e.targets for e in episodes])
    valued = np.isfinite(pred)
    pred, target = pred[valued], target[valued]
    mids = np.array([mid_value(e.values) for e in episodes])
    failed = np.array([not e.success for e in episodes])
    return {
        "episodes": len(episodes),
        "frames": int(pred.size),
        "frames_not_valued": int((~valued).sum()),
        "successes": int((~failed).sum()),
        "failures": int(failed.sum()),
        "ev": explained_variance(pred, target),
        "ev_ceiling_without_clock": ev_ceiling_without_clock(episodes),
        "mae": float(np.mean(np.abs(pred - target))),
        "auroc_mid": auroc(-mids, failed),
        "mid_value_success_mean": float(mids[~failed].mean()) if (~failed).any() else float("nan"),
        "mid_value_failure_mean": float(mids[failed].mean()) if failed.any() else float("nan"),
    }
