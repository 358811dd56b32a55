# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A frame-index prior over the value bins that the model's head corrects (the "anchored head").

On small data the mean target at each frame index is a strong predictor: in a time-limited task most of the
value's variance is the time left. With the prior on, the model's logits are ``head(h) + log p(task, t)``
where ``p`` is a discretized Gaussian over the bins, centred so that its mean is the mean training target at
the frame's time bin, with the residual spread of the training targets there. A zero head then predicts the
frame-index baseline exactly, and training only has to learn what the images and joints add.

The table is fitted on the training episodes only (:func:`fit_value_prior`) and stored in the model config
(``ValueModelConfig.value_prior``) as plain lists, so it travels in checkpoints and bundles; the model builds
its log-probability rows from it (:func:`prior_log_probs`). Pure numpy: no model, no ROS.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ove_ros.prompt import clean_task

logger = logging.getLogger(__name__)

REQUEST_KEYS = {"bin_frames"}
TABLE_KEYS = {"bin_frames", "tasks"}
TASK_KEYS = {"mean", "std"}
DECIMALS = 6  # stored precision: far below a bin width (1/200)


def _fail(problem: str) -> ValueError:
    return ValueError(
        f"value_prior: {problem}. Expected {{'bin_frames': int >= 1, 'tasks': {{task: {{'mean': [...], "
        "'std': [...]}}}}}} as fitted by ove_ros.training.train (model.overrides={value_prior: "
        "{bin_frames: N}})"
    )


def is_request(spec: Mapping[str, Any] | None) -> bool:
    """True for ``{"bin_frames": N}`` without tables: a prior to be fitted at training start."""
    return isinstance(spec, Mapping) and "tasks" not in spec


def check_request(spec: Any) -> int:
    """The ``bin_frames`` of a prior request (``model.overrides={value_prior: {bin_frames: N}}``)."""
    if not isinstance(spec, Mapping) or set(spec) - REQUEST_KEYS:
        raise _fail(f"a request to fit a prior takes only {sorted(REQUEST_KEYS)}, got {spec!r}")
    frames = spec.get("bin_frames", 1)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise _fail(f"bin_frames must be an int >= 1, got {frames!r}")
    return frames


def validate_prior(spec: Any, v_min: float, v_max: float) -> dict[str, Any]:
    """A checked, normalized copy of a fitted prior table (ValueError naming the first problem)."""
    if not isinstance(spec, Mapping):
        raise _fail(f"must be a mapping, got {type(spec).__name__}")
    if set(spec) != TABLE_KEYS:
        raise _fail(f"keys {sorted(spec)} (need exactly {sorted(TABLE_KEYS)})")
    frames = spec["bin_frames"]
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise _fail(f"bin_frames must be an int >= 1, got {frames!r}")
    tasks = spec["tasks"]
    if not isinstance(tasks, Mapping) or not tasks:
        raise _fail("tasks must be a non-empty mapping of task text to {'mean', 'std'} lists")
    out: dict[str, Any] = {}
    for task, row in tasks.items():
        if not isinstance(task, str) or clean_task(task) != task:
            raise _fail(f"task key {task!r} is not a cleaned task text (single spaces, no padding)")
        if not isinstance(row, Mapping) or set(row) != TASK_KEYS:
            raise _fail(f"task {task!r} needs exactly {sorted(TASK_KEYS)}, got {row!r:.80}")
        try:
            mean = np.asarray(row["mean"], dtype=np.float64)
            std = np.asarray(row["std"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise _fail(f"task {task!r}: mean/std must be lists of numbers ({exc})") from exc
        if mean.ndim != 1 or mean.size == 0 or std.shape != mean.shape:
            raise _fail(f"task {task!r}: mean and std must be non-empty lists of one length, got "
                        f"{mean.shape} and {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise _fail(f"task {task!r}: mean/std hold NaN or infinite values")
        if mean.min() < v_min or mean.max() > v_max:
            raise _fail(f"task {task!r}: means range over [{mean.min():g}, {mean.max():g}], outside the "
                        f"value support [{v_min:g}, {v_max:g}]")
        if std.min() <= 0:
            raise _fail(f"task {task!r}: std must be > 0, got a minimum of {std.min():g}")
        out[task] = {"mean": mean.tolist(), "std": std.tolist()}
    return {"bin_frames": int(frames), "tasks": out}


def fit_value_prior(
    tasks: Sequence[str], frame_index: np.ndarray, targets: np.ndarray, bin_frames: int, min_std: float
) -> dict[str, Any]:
    """Per task, the mean and spread of ``targets`` in each time bin ``frame_index // bin_frames``.

    Pass the training episodes' frames only (the prior must not see validation or held-out episodes). The
    spread is the standard deviation of the targets around the bin mean, floored at ``min_std`` (a bin
    width): bins seen by one episode would otherwise claim certainty.
    """
    frame_index = np.asarray(frame_index, dtype=np.int64)
    targets = np.asarray(targets, dtype=np.float64)
    names = np.asarray([clean_task(t) for t in tasks], dtype=object)
    if not (frame_index.shape == targets.shape == names.shape) or targets.size == 0:
        raise ValueError(f"fit_value_prior: got {names.size} tasks, {frame_index.size} frame indices and "
                         f"{targets.size} targets; pass one of each per training frame (at least one)")
    if frame_index.min() < 0:
        raise ValueError("fit_value_prior: frame indices must be >= 0")
    out: dict[str, Any] = {}
    for task in dict.fromkeys(names.tolist()):
        rows = names == task
        b = frame_index[rows] // bin_frames
        y = targets[rows]
        counts = np.bincount(b)
        sums = np.bincount(b, weights=y)
        seen = np.flatnonzero(counts)
        mean = np.interp(np.arange(counts.size), seen, sums[seen] / counts[seen])  # no gaps in practice
        var = np.bincount(b, weights=(y - mean[b]) ** 2, minlength=counts.size)
        std = np.sqrt(np.where(counts > 0, var / np.maximum(counts, 1), 0.0))
        out[str(task)] = {
            "mean": np.round(mean, DECIMALS).tolist(),
            "std": np.round(np.maximum(std, min_std), DECIMALS).tolist(),
        }
    return {"bin_frames": int(bin_frames), "tasks": out}


def _gaussian_rows(loc: np.ndarray, std: np.ndarray, centers: np.ndarray) -> np.ndarray:
    z = -0.5 * ((centers[None, :] - loc[:, None]) / std[:, None]) ** 2
    z -= z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def prior_log_probs(mean: np.ndarray, std: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """``[n, bins]`` log-probabilities: Gaussians of ``std`` over the bin centers whose discrete mean is
    ``mean`` (the location is solved for, so a mean near an end of the support is not pulled inward by the
    truncation)."""
    mean = np.clip(np.asarray(mean, dtype=np.float64), centers[0], centers[-1])
    std = np.asarray(std, dtype=np.float64)
    span = float(centers[-1] - centers[0])
    lo = np.full_like(mean, centers[0] - 10.0 * span)
    hi = np.full_like(mean, centers[-1] + 10.0 * span)
    for _ in range(60):  # bisection on the location: the discrete mean rises monotonically with it
        mid = 0.5 * (lo + hi)
        m = np.exp(_gaussian_rows(mid, std, centers)) @ centers
        below = m < mean
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return _gaussian_rows(0.5 * (lo + hi), std, centers)


class PriorTable:
    """The fitted table as rows of log-probabilities plus a (task, frame index) -> row lookup."""

    def __init__(self, spec: Mapping[str, Any], centers: np.ndarray) -> None:
        self.bin_frames = int(spec["bin_frames"])
        self.offsets: dict[str, tuple[int, int]] = {}
        means, stds = [], []
        for task, row in spec["tasks"].items():
            self.offsets[task] = (sum(len(m) for m in means), len(row["mean"]))
            means.append(row["mean"])
            stds.append(row["std"])
        self.log_probs = prior_log_probs(np.concatenate(means), np.concatenate(stds), np.asarray(centers))
        self.warned: set[str] = set()

    def rows(self, tasks: Sequence[str], frame_index: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Row of each sample (``-1`` for a task the prior does not know) and a mask of known samples."""
        out = np.full(len(tasks), -1, dtype=np.int64)
        for i, (task, f) in enumerate(zip(tasks, frame_index, strict=True)):
            key = clean_task(task)
            where = self.offsets.get(key)
            if where is None:
                if key not in self.warned:
                    self.warned.add(key)
                    logger.warning(
                        "task %r is not in the value prior (known: %s): its values get no frame-index prior",
                        key, sorted(self.offsets),
                    )
                continue
            if int(f) < 0:
                raise ValueError(f"frame_index must be >= 0, got {int(f)}")
            start, length = where
            out[i] = start + min(int(f) // self.bin_frames, length - 1)  # clamped past the longest episode
        return out, out >= 0


def min_std_for(num_bins: int, v_min: float, v_max: float) -> float:
    """The spread floor: one bin width."""
    return (v_max - v_min) / (num_bins - 1) if num_bins > 1 else math.inf
