# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The value loss (cross-entropy over bins), regression metrics of E[V] against the targets, and the
value-quality metrics of whole curves (rank correlation, failure AUROC, smoothness, calibration)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ove_ros.values import BinSupport, encode_targets


def value_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    support: BinSupport,
    kind: str = "one_hot",
    sigma: float | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy between the predicted bin distribution and the encoded targets (float32)."""
    dist = encode_targets(targets.detach().float(), support, kind=kind, sigma=sigma).to(logits.device)
    per_sample = -(dist * F.log_softmax(logits.float(), dim=-1)).sum(-1)
    if reduction == "none":
        return per_sample
    return per_sample.mean()


def consistency_loss(pred: torch.Tensor, target: torch.Tensor, pred_later: torch.Tensor,
                     target_later: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over the ``valid`` pairs of ``((pred - target) - (pred_later - target_later))**2``: zero when the
    value moves from a frame to a later one of its episode exactly as the Monte Carlo return does (a
    TD-consistency term on the targets' own rewards), whatever the error they share. 0 without a pair."""
    valid = valid.to(pred.device, torch.bool)
    if not bool(valid.any()):
        return pred.sum() * 0.0  # keeps the graph (and DDP's gradient bookkeeping) intact
    gap = (pred.float() - target.float()) - (pred_later.float() - target_later.float())
    return (gap[valid] ** 2).mean()


def explained_variance(pred: np.ndarray, target: np.ndarray) -> float:
    """``1 - Var(target - pred) / Var(target)`` (NaN when the targets are constant)."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    var = float(np.var(target))
    if target.size < 2 or var <= 1e-12:
        return float("nan")
    return 1.0 - float(np.var(target - pred)) / var


def regression_metrics(
    pred: np.ndarray, target: np.ndarray, loss: np.ndarray | None = None
) -> dict[str, float]:
    """loss (mean per-sample CE when given), MAE, RMSE and explained variance of E[V] vs target."""
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    err = pred - target
    out = {
        "mae": float(np.abs(err).mean()) if err.size else float("nan"),
        "rmse": float(np.sqrt((err**2).mean())) if err.size else float("nan"),
        "ev": explained_variance(pred, target),
        "count": float(err.size),
    }
    if loss is not None:
        out["loss"] = float(np.mean(loss)) if len(loss) else float("nan")
    return out


def per_task_metrics(
    pred: np.ndarray, target: np.ndarray, loss: np.ndarray, tasks: Sequence[str]
) -> dict[str, dict[str, float]]:
    task_arr = np.asarray(list(tasks), dtype=object)
    return {
        str(task): regression_metrics(
            pred[task_arr == task], target[task_arr == task], loss[task_arr == task]
        )
        for task in dict.fromkeys(task_arr.tolist())
    }


# ------------------------------------------------------------------------------------ value quality

AUROC_FRACTIONS = (0.25, 0.5, 0.75)


def distribution_quantiles(probs: np.ndarray, centers: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles ``[B, len(qs)]`` of bin distributions ``[B, bins]``: the first center whose CDF reaches q."""
    p = np.asarray(probs, dtype=np.float64)
    c = np.asarray(centers, dtype=np.float64)
    cdf = np.cumsum(p, axis=-1)
    cdf /= np.maximum(cdf[..., -1:], 1e-12)
    idx = np.stack([(cdf < q - 1e-9).sum(-1) for q in qs], axis=-1)
    return c[np.minimum(idx, c.size - 1)]


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.arange(x.size, dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (NaN when either side is constant or has < 2 values)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def _episode_runs(episode: np.ndarray, frame: np.ndarray) -> list[np.ndarray]:
    """Row indices of each episode, in frame order."""
    order = np.lexsort((frame, episode))
    ep_sorted = episode[order]
    cuts = np.flatnonzero(np.diff(ep_sorted)) + 1
    return np.split(order, cuts)


def smoothness(
    episode: np.ndarray, frame: np.ndarray, pred: np.ndarray, target: np.ndarray
) -> dict[str, float]:
    """Jitter of the predicted curves: mean |V(t+1) - V(t)| over consecutive frames of each episode, that
    divided by the same for the target (1 = as smooth as the truth), and the fraction of consecutive
    non-zero steps of V whose sign flips."""
    dv, dt, flips, pairs = [], [], 0, 0
    for rows in _episode_runs(episode, frame):
        consecutive = np.diff(frame[rows]) == 1
        d_pred = np.diff(pred[rows])[consecutive]
        dv.append(np.abs(d_pred))
        dt.append(np.abs(np.diff(target[rows])[consecutive]))
        s = np.sign(d_pred)
        s = s[s != 0]
        flips += int((s[1:] != s[:-1]).sum())
        pairs += max(0, s.size - 1)
    dv_mean = float(np.concatenate(dv).mean()) if dv and np.concatenate(dv).size else float("nan")
    dt_mean = float(np.concatenate(dt).mean()) if dt and np.concatenate(dt).size else float("nan")
    return {
        "mean_abs_dv": dv_mean,
        "mean_abs_dtarget": dt_mean,
        "smoothness_ratio": dv_mean / dt_mean if dt_mean and np.isfinite(dt_mean) else float("nan"),
        "sign_flip_fraction": flips / pairs if pairs else float("nan"),
    }


def auroc_at_fractions(
    episode: np.ndarray, frame: np.ndarray, pred: np.ndarray, success: Mapping[int, bool],
    fractions: Sequence[float] = AUROC_FRACTIONS,
) -> dict[str, float]:
    """Failure-vs-success AUROC of V at each fraction of the episode (failures positive, scored by -V);
    NaN where the frames hold only one outcome."""
    from ove_ros.sim.metrics import auroc

    runs = _episode_runs(episode, frame)
    failed = np.array([not success.get(int(episode[r[0]]), True) for r in runs], dtype=bool)
    out = {}
    for f in fractions:
        v = np.array([pred[r[int(round(f * (r.size - 1)))]] for r in runs])
        out[f"auroc_{round(f * 100)}"] = auroc(-v, failed) if runs else float("nan")
    return out


def value_quality(
    episode: np.ndarray,
    frame: np.ndarray,
    task: Sequence[str] | np.ndarray,
    target: np.ndarray,
    pred: np.ndarray,
    success: Mapping[int, bool] | None = None,
    q_low: np.ndarray | None = None,
    q_high: np.ndarray | None = None,
) -> dict[str, Any]:
    """Everything that says whether a value curve is worth trusting, on one set of frames.

    EV, MAE, RMSE (overall and per task), mean within-episode Spearman correlation with the target,
    failure AUROC at 25/50/75 % of each episode, smoothness and, given the predicted 10/90 % quantiles, the
    fraction of targets inside that interval (0.8 for a calibrated distribution).
    """
    episode = np.asarray(episode, dtype=np.int64).reshape(-1)
    frame = np.asarray(frame, dtype=np.int64).reshape(-1)
    target = np.asarray(target, dtype=np.float64).reshape(-1)
    pred = np.asarray(pred, dtype=np.float64).reshape(-1)
    tasks = np.asarray(list(task), dtype=object)
    if not episode.size == frame.size == target.size == pred.size == tasks.size:
        raise ValueError("value_quality needs one episode, frame, task, target and prediction per row")
    out: dict[str, Any] = regression_metrics(pred, target)
    out["per_task"] = {
        str(t): regression_metrics(pred[tasks == t], target[tasks == t])
        for t in dict.fromkeys(tasks.tolist())
    }
    rhos = [spearman(pred[r], target[r]) for r in _episode_runs(episode, frame)]
    rhos = [r for r in rhos if np.isfinite(r)]
    out["spearman_within_episode"] = float(np.mean(rhos)) if rhos else float("nan")
    out.update(auroc_at_fractions(episode, frame, pred, success or {}))
    out.update(smoothness(episode, frame, pred, target))
    if q_low is not None and q_high is not None:
        lo = np.asarray(q_low, dtype=np.float64).reshape(-1)
        hi = np.asarray(q_high, dtype=np.float64).reshape(-1)
        out["coverage_10_90"] = float(np.mean((target >= lo - 1e-9) & (target <= hi + 1e-9)))
        out["interval_width_10_90"] = float(np.mean(hi - lo))
    return out
