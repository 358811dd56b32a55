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
- Mistake-advantage AUROC: how well the n-step advantage of the frames just after an injected mistake ranks
  below that of mistake-free stretches, and how many of each are labelled Negative.
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


def mistake_advantage_auroc(
    advantages: Sequence[Sequence[float] | np.ndarray],
    mistakes: Sequence[Sequence[int]],
    window: int,
    thresholds: Sequence[float] | float,
    margin_before: int = 0,
) -> dict[str, float]:
    """How well the advantage singles out the frames right after an injected mistake.

    ``advantages[e]`` holds episode ``e``'s advantage per frame (NaN: not computed), ``mistakes[e]`` the
    frames where mistakes were injected. Frames ``m .. m + window - 1`` after a mistake are the positive
    class; frames of mistake-free stretches (outside every ``m - margin_before .. m + window - 1``; pass
    the n-step horizon as ``margin_before``, since an advantage looks that far ahead) are the negative
    class. Returns
    the AUROC of ``-advantage`` (1: every frame after a mistake scores below every clean frame), the
    fraction labelled Negative (``advantage <= threshold``, the labelling rule of the values module) in each
    class, and the frame counts.
    """
    if len(advantages) != len(mistakes):
        raise ValueError(f"{len(advantages)} episodes of advantages but {len(mistakes)} lists of mistakes")
    if int(window) < 1 or int(margin_before) < 0:
        raise ValueError(f"window must be >= 1 and margin_before >= 0, got {window} and {margin_before}")
    th = [float(thresholds)] * len(advantages) if np.isscalar(thresholds) else [float(t) for t in thresholds]
    if len(th) != len(advantages):
        raise ValueError(f"{len(th)} thresholds for {len(advantages)} episodes; pass one per episode or one")
    after_scores, clean_scores, after_neg, clean_neg = [], [], 0, 0
    for adv, marks, threshold in zip(advantages, mistakes, th, strict=True):
        a = np.asarray(adv, dtype=np.float64).reshape(-1)
        after = np.zeros(a.size, dtype=bool)
        near = np.zeros(a.size, dtype=bool)
        for m in marks:
            m = int(m)
            after[max(0, m) : max(0, m + int(window))] = True
            near[max(0, m - int(margin_before)) : max(0, m + int(window))] = True
        valued = np.isfinite(a)
        pos, neg = a[after & valued], a[~near & valued]
        after_scores.append(pos)
        clean_scores.append(neg)
        after_neg += int((pos <= threshold).sum())
        clean_neg += int((neg <= threshold).sum())
    pos = np.concatenate(after_scores) if after_scores else np.empty(0)
    neg = np.concatenate(clean_scores) if clean_scores else np.empty(0)
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(pos.size, dtype=bool), np.zeros(neg.size, dtype=bool)])
    return {
        "auroc": auroc(-scores, labels),
        "negative_fraction_after_mistake": after_neg / pos.size if pos.size else float("nan"),
        "negative_fraction_clean": clean_neg / neg.size if neg.size else float("nan"),
        "frames_after_mistake": int(pos.size),
        "frames_clean": int(neg.size),
    }
