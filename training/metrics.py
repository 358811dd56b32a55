# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The value loss (cross-entropy over bins) and regression metrics of E[V] against the targets."""

from __future__ import annotations

from collections.abc import Sequence

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
