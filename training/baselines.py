# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Trivial value predictors fitted on training episodes only, and a report of the model against them.

A value function is worth something only if it knows more than the clock and the joints. Each baseline here
is fitted on the training frames and predicts the evaluation frames; :func:`baseline_report` scores the model
and every baseline with the same metrics on the same frames and names the best baseline and the model's
margin over it. Pure numpy: the offline evaluation and the simulated demo both call it.

Baselines (all per task when the task was seen in training, else over all training frames):

- ``training_mean``: the mean training target;
- ``frame_index_mean``: the mean training target at each frame index (the last known index beyond);
- ``frame_index_linear``: least squares on the frame index;
- ``state_knn`` / ``state_linear``: k nearest neighbours / ridge regression on the joint vector scaled by the
  training min/max;
- ``state_time_knn`` / ``state_time_linear``: the same on the joint vector plus the scaled frame index.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ove_ros.training.metrics import value_quality

KNN_K = 10
RIDGE = 1e-6  # only keeps the solve well posed (constant joints); scaled by the frame count


@dataclass
class FrameSet:
    """Frames of some episodes, one row each: what the baselines see and what they must predict."""

    episode: np.ndarray  # [N] episode id
    frame: np.ndarray  # [N] frame index within the episode
    task: np.ndarray  # [N] task text (object array)
    state: np.ndarray  # [N, D] raw joint values
    target: np.ndarray  # [N] normalized value target
    success: Mapping[int, bool] = field(default_factory=dict)  # episode -> outcome

    def __post_init__(self) -> None:
        self.episode = np.asarray(self.episode, dtype=np.int64).reshape(-1)
        self.frame = np.asarray(self.frame, dtype=np.int64).reshape(-1)
        self.task = np.asarray(list(self.task), dtype=object).reshape(-1)
        self.state = np.asarray(self.state, dtype=np.float64)
        if self.state.ndim == 1:
            self.state = self.state[:, None]
        self.target = np.asarray(self.target, dtype=np.float64).reshape(-1)
        n = self.episode.size
        sizes = {"frame": self.frame.size, "task": self.task.size, "state": self.state.shape[0],
                 "target": self.target.size}
        bad = {k: v for k, v in sizes.items() if v != n}
        if bad:
            raise ValueError(f"FrameSet: {n} episode ids but {bad}; pass one row per frame in every array")
        self.success = {int(k): bool(v) for k, v in self.success.items()}

    def __len__(self) -> int:
        return int(self.episode.size)

    @classmethod
    def from_episodes(cls, episodes: Sequence[Mapping[str, Any]]) -> FrameSet:
        """One FrameSet from per-episode dicts with ``episode``, ``task``, ``states`` [T, D], ``targets`` [T]
        and optionally ``success`` (frame indices are 0..T-1)."""
        if not episodes:
            raise ValueError("FrameSet.from_episodes needs at least one episode")
        parts: dict[str, list[Any]] = {"episode": [], "frame": [], "task": [], "state": [], "target": []}
        success = {}
        for ep in episodes:
            t = np.asarray(ep["targets"], dtype=np.float64).reshape(-1)
            parts["episode"].append(np.full(t.size, int(ep["episode"])))
            parts["frame"].append(np.arange(t.size))
            parts["task"].append(np.full(t.size, str(ep["task"]), dtype=object))
            parts["state"].append(np.asarray(ep["states"], dtype=np.float64).reshape(t.size, -1))
            parts["target"].append(t)
            success[int(ep["episode"])] = bool(ep.get("success", True))
        return cls(**{k: np.concatenate(v) for k, v in parts.items()}, success=success)


# ------------------------------------------------------------------------------------------- baselines


def _per_task(
    train: FrameSet, test: FrameSet, fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Apply ``fit_predict(train_rows, test_rows)`` per task; tasks unseen in training use every train row."""
    out = np.empty(len(test), dtype=np.float64)
    known = set(train.task.tolist())
    everything = np.arange(len(train))
    for task in dict.fromkeys(test.task.tolist()):
        rows = np.flatnonzero(test.task == task)
        tr = np.flatnonzero(train.task == task) if task in known else everything
        out[rows] = fit_predict(tr, rows)
    return out


def training_mean(train: FrameSet, test: FrameSet) -> np.ndarray:
    return _per_task(train, test, lambda tr, te: np.full(te.size, train.target[tr].mean()))


def frame_means(frame: np.ndarray, target: np.ndarray, horizon: int) -> np.ndarray:
    """Mean ``target`` at each frame index ``0 .. horizon - 1`` (pass a horizon past every ``frame``); an
    index no row has is interpolated between its seen neighbours, and past the last seen one takes its
    mean. All NaN without rows."""
    counts = np.bincount(frame, minlength=horizon)[:horizon]
    sums = np.bincount(frame, weights=target, minlength=horizon)[:horizon]
    seen = np.flatnonzero(counts)
    if seen.size == 0:
        return np.full(horizon, np.nan)
    return np.interp(np.arange(horizon), seen, sums[seen] / counts[seen])


def frame_index_mean(train: FrameSet, test: FrameSet) -> np.ndarray:
    def fit(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        horizon = int(max(train.frame[tr].max(), test.frame[te].max())) + 1
        return frame_means(train.frame[tr], train.target[tr], horizon)[test.frame[te]]

    return _per_task(train, test, fit)


def _ridge(x_train: np.ndarray, y: np.ndarray, x_test: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    a = np.hstack([x_train, np.ones((x_train.shape[0], 1))])
    b = np.hstack([x_test, np.ones((x_test.shape[0], 1))])
    reg = ridge * np.eye(a.shape[1])
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    w = np.linalg.solve(a.T @ a + reg * a.shape[0], a.T @ y)
    return b @ w


def knn_regress(x_train: np.ndarray, y: np.ndarray, x_test: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Mean ``y`` of the ``k`` nearest training rows (Euclidean) of each test row."""
    k = max(1, min(int(k), x_train.shape[0]))
    out = np.empty(x_test.shape[0], dtype=np.float64)
    sq_train = (x_train**2).sum(1)
    for start in range(0, x_test.shape[0], 512):  # bounded memory: 512 x N distances at a time
        q = x_test[start : start + 512]
        d = (q**2).sum(1)[:, None] - 2.0 * q @ x_train.T + sq_train[None, :]
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k]
        out[start : start + q.shape[0]] = y[nearest].mean(1)
    return out


class _Features:
    """Joint vector (and optionally frame index) scaled to [0, 1] with the training frames' min/max."""

    def __init__(self, train: FrameSet, with_time: bool, with_state: bool = True) -> None:
        self.with_time, self.with_state = with_time, with_state
        raw = self.raw(train)
        self.low = raw.min(0)
        span = raw.max(0) - self.low
        self.span = np.where(span > 1e-12, span, 1.0)

    def raw(self, frames: FrameSet) -> np.ndarray:
        cols = []
        if self.with_state:
            cols.append(frames.state)
        if self.with_time:
            cols.append(frames.frame[:, None].astype(np.float64))
        return np.hstack(cols)

    def __call__(self, frames: FrameSet) -> np.ndarray:
        return (self.raw(frames) - self.low) / self.span


def _feature_model(
    with_time: bool, with_state: bool, kind: str
) -> Callable[[FrameSet, FrameSet], np.ndarray]:
    def predict(train: FrameSet, test: FrameSet) -> np.ndarray:
        feats = _Features(train, with_time, with_state)
        x_train, x_test = feats(train), feats(test)
        solver = knn_regress if kind == "knn" else _ridge
        return _per_task(train, test, lambda tr, te: solver(x_train[tr], train.target[tr], x_test[te]))

    return predict


BASELINES: dict[str, Callable[[FrameSet, FrameSet], np.ndarray]] = {
    "training_mean": training_mean,
    "frame_index_mean": frame_index_mean,
    "frame_index_linear": _feature_model(with_time=True, with_state=False, kind="linear"),
    "state_knn": _feature_model(with_time=False, with_state=True, kind="knn"),
    "state_linear": _feature_model(with_time=False, with_state=True, kind="linear"),
    "state_time_knn": _feature_model(with_time=True, with_state=True, kind="knn"),
    "state_time_linear": _feature_model(with_time=True, with_state=True, kind="linear"),
}


def fit_baselines(
    train: FrameSet, test: FrameSet, names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Predictions of each baseline on ``test``, fitted on ``train`` only; clipped to the value range."""
    if len(train) == 0:
        raise ValueError("the baselines need training frames; the training split is empty")
    chosen = list(BASELINES) if names is None else list(names)
    unknown = sorted(set(chosen) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {sorted(BASELINES)}")
    lo, hi = min(train.target.min(), -1.0), max(train.target.max(), 0.0)
    return {name: np.clip(BASELINES[name](train, test), lo, hi) for name in chosen}


# ---------------------------------------------------------------------------------------------- report


def baseline_report(
    train: FrameSet,
    test: FrameSet,
    pred: np.ndarray,
    q_low: np.ndarray | None = None,
    q_high: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    predictions: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The model's value quality on ``test`` next to every baseline's, on the same frames and targets.

    ``pred`` is the model's E[V] per test frame; ``q_low``/``q_high`` its 10 % and 90 % quantiles (for the
    calibration figure); ``predictions`` (from ``fit_baselines(train, test, names)``) spares fitting the
    baselines again when the caller also draws them. Returns ``{"model": {...}, "baselines": {name: {...}},
    "best_baseline": name, "margin_ev": model EV - best baseline EV, "beats_every_baseline": bool,
    "frames": n}``; the best baseline is the one with the highest EV.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    if pred.size != len(test):
        raise ValueError(f"{pred.size} predictions for {len(test)} evaluation frames; pass one per frame")
    model = value_quality(test.episode, test.frame, test.task, test.target, pred, test.success, q_low, q_high)
    if predictions is None:
        predictions = fit_baselines(train, test, names)
    baselines = {
        name: value_quality(test.episode, test.frame, test.task, test.target, p, test.success)
        for name, p in predictions.items()
    }
    scored = {k: v["ev"] for k, v in baselines.items() if np.isfinite(v["ev"])}
    best = max(scored, key=scored.get) if scored else None
    margin = model["ev"] - scored[best] if best is not None else float("nan")
    return {
        "frames": len(test),
        "train_frames": len(train),
        "train_episodes": int(np.unique(train.episode).size),
        "eval_episodes": int(np.unique(test.episode).size),
        "model": model,
        "baselines": baselines,
        "best_baseline": best,
        "best_baseline_ev": scored.get(best, float("nan")) if best is not None else float("nan"),
        "margin_ev": float(margin),
        "beats_every_baseline": bool(best is not None and model["ev"] > scored[best]),
    }
