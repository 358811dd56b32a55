# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Value-function math shared by training, offline labelling and the live node.

Everything here is pure (numpy and torch only) so that the offline and online code paths compute the same
numbers. The conventions (bins, rewards, returns, normalization, advantages, labels) are those of
``docs/ARCHITECTURE.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ove_ros import typed_config
from ove_ros.typed_config import ConfigError, setting

POSITIVE_LABEL = "Advantage: Positive"
NEGATIVE_LABEL = "Advantage: Negative"
TARGET_KINDS = ("one_hot", "two_hot", "hl_gauss")

ArrayLike = np.ndarray | torch.Tensor


# --------------------------------------------------------------------------------------------------- bins


@dataclass(frozen=True)
class BinSupport:
    """The discrete support of the value distribution: ``num_bins`` centers on ``[v_min, v_max]``."""

    num_bins: int = 201
    v_min: float = -1.0
    v_max: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.num_bins, bool) or not isinstance(self.num_bins, (int, np.integer)):
            raise TypeError(f"BinSupport.num_bins must be an int, got {type(self.num_bins).__name__}")
        if self.num_bins < 2:
            raise ValueError(f"BinSupport.num_bins must be >= 2, got {self.num_bins}")
        if not (math.isfinite(self.v_min) and math.isfinite(self.v_max)):
            raise ValueError(f"BinSupport bounds must be finite, got v_min={self.v_min}, v_max={self.v_max}")
        if not self.v_min < self.v_max:
            raise ValueError(f"BinSupport needs v_min < v_max, got v_min={self.v_min}, v_max={self.v_max}")

    @property
    def centers(self) -> np.ndarray:
        """Bin centers, float64, both ends included."""
        return bin_centers(self.num_bins, self.v_min, self.v_max)

    @property
    def width(self) -> float:
        """Distance between neighbouring centers."""
        return (self.v_max - self.v_min) / (self.num_bins - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"num_bins": int(self.num_bins), "v_min": float(self.v_min), "v_max": float(self.v_max)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BinSupport:
        return typed_config.from_mapping(cls, data)


def bin_centers(num_bins: int = 201, v_min: float = -1.0, v_max: float = 0.0) -> np.ndarray:
    """Equally spaced bin centers on ``[v_min, v_max]`` (float64, both ends included)."""
    if num_bins < 2:
        raise ValueError(f"num_bins must be >= 2, got {num_bins}")
    if not v_min < v_max:
        raise ValueError(f"bin_centers needs v_min < v_max, got v_min={v_min}, v_max={v_max}")
    return np.linspace(v_min, v_max, int(num_bins), dtype=np.float64)


# ------------------------------------------------------------------------------------ distribution stats


def _centers_like(probs: ArrayLike, centers: ArrayLike) -> ArrayLike:
    """Return ``centers`` in the array library (and dtype/device) of ``probs``; check the bin axis."""
    n = probs.shape[-1] if probs.ndim else 0
    if len(centers) != n:
        raise ValueError(
            f"probs has {n} bins on its last axis but centers has {len(centers)}; pass the centers of the "
            "BinSupport the model was trained with"
        )
    if isinstance(probs, torch.Tensor):
        dtype = probs.dtype if probs.is_floating_point() else torch.float32
        return torch.as_tensor(centers, dtype=dtype, device=probs.device)
    if isinstance(centers, torch.Tensor):
        centers = centers.detach().cpu().numpy()
    return np.asarray(centers, dtype=np.float64)


def _as_probs(probs: ArrayLike) -> ArrayLike:
    if isinstance(probs, torch.Tensor):
        return probs if probs.is_floating_point() else probs.float()
    return np.asarray(probs, dtype=np.float64)


def expected_value(probs: ArrayLike, centers: ArrayLike) -> ArrayLike:
    """E[V] over the last (bin) axis. torch in -> torch out (differentiable)."""
    probs = _as_probs(probs)
    c = _centers_like(probs, centers)
    return (probs * c).sum(-1)


def value_std(probs: ArrayLike, centers: ArrayLike) -> ArrayLike:
    """Standard deviation of V over the last (bin) axis.

    Computed around the mean (not as E[V^2] - E[V]^2) to avoid cancellation for sharp distributions.
    """
    probs = _as_probs(probs)
    c = _centers_like(probs, centers)
    mean = (probs * c).sum(-1)
    if isinstance(probs, torch.Tensor):
        var = (probs * (c - mean.unsqueeze(-1)) ** 2).sum(-1)
        # The clamp keeps sqrt's gradient finite at a one-hot distribution.
        return torch.sqrt(var.clamp_min(torch.finfo(var.dtype).tiny))
    var = (probs * (c - mean[..., None]) ** 2).sum(-1)
    return np.sqrt(np.maximum(var, 0.0))


def value_entropy(probs: ArrayLike) -> ArrayLike:
    """Shannon entropy in nats over the last axis; zero-probability bins contribute 0."""
    probs = _as_probs(probs)
    if isinstance(probs, torch.Tensor):
        # p * log(max(p, tiny)) is 0 at p = 0 and keeps a finite gradient there.
        safe = probs.clamp_min(torch.finfo(probs.dtype).tiny)
        return -(probs * torch.log(safe)).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(probs > 0, probs * np.log(np.where(probs > 0, probs, 1.0)), 0.0)
    return 0.0 - terms.sum(-1)  # 0.0 - x instead of -x: no "-0.0" for one-hot rows


# ----------------------------------------------------------------------------------------------- rewards


@dataclass(frozen=True)
class RewardConfig:
    """How per-frame rewards are obtained (see ARCHITECTURE.md, "Conventions")."""

    step_penalty: float = setting(
        1.0, "Reward -step_penalty on every frame but the last (terminal-outcome mode).", ge=0
    )
    fail_penalty: float = setting(
        100.0, "Extra penalty on the last frame of a failed episode (in steps).", ge=0
    )
    precomputed_rewards: bool = setting(
        False, "True: the reward column as is. False: built from the outcome and the two penalties."
    )

    def __post_init__(self) -> None:
        found = typed_config.problems(self, "RewardConfig.")  # the declared ranges (NaN fails them too)
        found += [f"RewardConfig.{n} must be a finite number >= 0, got {getattr(self, n)}"
                  for n in ("step_penalty", "fail_penalty") if math.isinf(getattr(self, n))]
        if found:
            raise ConfigError("; ".join(found))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RewardConfig:
        """Unknown keys and out-of-range values raise ``ConfigError`` naming them."""
        return typed_config.from_mapping(cls, data)


def terminal_reward(success: bool, cfg: RewardConfig) -> float:
    """Raw (unnormalized) reward of the last frame in terminal-outcome mode."""
    return 0.0 if success else -float(cfg.fail_penalty)


def episode_rewards(length: int, success: bool | None, cfg: RewardConfig | None = None) -> np.ndarray:
    """Raw per-frame rewards of one episode in terminal-outcome mode (float64, shape [length]).

    ``success=None`` is an episode cut short without an outcome: every frame, the last one too, costs the
    step penalty (nothing is known of what came after it).
    """
    cfg = cfg or RewardConfig()
    if cfg.precomputed_rewards:
        raise ValueError(
            "episode_rewards builds terminal-outcome rewards, but RewardConfig.precomputed_rewards is True; "
            "use rewards_from_column with the dataset's reward column instead"
        )
    if length < 1:
        raise ValueError(f"an episode needs at least one frame, got length={length}")
    rewards = np.full(int(length), -float(cfg.step_penalty), dtype=np.float64)
    if success is not None:
        rewards[-1] = terminal_reward(bool(success), cfg)
    return rewards


def rewards_from_column(
    reward_column: ArrayLike | Sequence[float], cfg: RewardConfig | None = None
) -> np.ndarray:
    """Raw per-frame rewards of one episode from its dataset ``reward`` column.

    Terminal-outcome mode reads only the sign of the last frame (>0 success, <0 failure); precomputed mode
    returns the column unchanged as float64.
    """
    cfg = cfg or RewardConfig()
    if isinstance(reward_column, torch.Tensor):
        reward_column = reward_column.detach().cpu().numpy()
    col = np.asarray(reward_column, dtype=np.float64).reshape(-1)
    if col.size == 0:
        raise ValueError("the episode's reward column is empty; an episode needs at least one frame")
    if cfg.precomputed_rewards:
        if not np.all(np.isfinite(col)):
            bad = int(np.flatnonzero(~np.isfinite(col))[0])
            raise ValueError(f"the reward column has a non-finite value at frame {bad}; fix the dataset")
        return col
    last = col[-1]
    if not np.isfinite(last):
        raise ValueError(f"the last frame's reward is {last}; it must be +1 (success) or -1 (failure)")
    if last == 0:
        raise ValueError(
            "the episode has no outcome: its last frame's reward is 0 (expected >0 for success, <0 for "
            "failure); label the episode's outcome, or set precomputed_rewards=True to use the column as is"
        )
    return episode_rewards(col.size, bool(last > 0), cfg)


def _finite_1d(x: ArrayLike | Sequence[float], name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one episode), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name} has a non-finite value ({arr[bad]}) at index {bad}")
    return arr


def mc_returns(rewards: ArrayLike | Sequence[float]) -> np.ndarray:
    """Undiscounted Monte Carlo returns ``G_t = sum_{k>=t} r_k`` (float64)."""
    r = _finite_1d(rewards, "rewards")
    return np.cumsum(r[::-1])[::-1].copy()


# --------------------------------------------------------------------------------------------- normalize


def compute_task_normalizers(
    returns_per_episode: Iterable[ArrayLike], tasks: Iterable[str]
) -> dict[str, float]:
    """Per-task return scale: ``max(1, max over the task's episodes of -min_t G_t)``."""
    returns_list = list(returns_per_episode)
    task_list = list(tasks)
    if len(returns_list) != len(task_list):
        raise ValueError(
            f"got {len(returns_list)} episodes of returns but {len(task_list)} tasks; "
            "pass one task per episode"
        )
    scales: dict[str, float] = {}
    for i, (g, task) in enumerate(zip(returns_list, task_list, strict=True)):
        g = _finite_1d(g, f"returns of episode {i}")
        if g.size == 0:
            raise ValueError(f"episode {i} (task {task!r}) has no frames")
        scales[task] = max(scales.get(task, 1.0), float(-g.min()))
    return scales


def _check_scale(scale: float) -> float:
    scale = float(scale)
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"the return scale must be a finite number > 0, got {scale}")
    return scale


def normalize_returns(returns: ArrayLike | Sequence[float], scale: float) -> np.ndarray:
    """``clip(G / scale, -1, 0)`` (float64)."""
    scale = _check_scale(scale)
    if isinstance(returns, torch.Tensor):
        returns = returns.detach().cpu().numpy()
    g = np.asarray(returns, dtype=np.float64)
    if np.isnan(g).any():
        raise ValueError("returns contain NaN; check the rewards they were computed from")
    return np.clip(g / scale, -1.0, 0.0)


def clip_counts(returns: ArrayLike | Sequence[float], scale: ArrayLike | float) -> tuple[int, int]:
    """How many returns :func:`normalize_returns` would clip: ``(below -1, above 0)`` after dividing by
    ``scale`` (one scale, or one per return). Clipping is lossy, so callers report these counts."""
    if isinstance(returns, torch.Tensor):
        returns = returns.detach().cpu().numpy()
    g = np.asarray(returns, dtype=np.float64).reshape(-1)
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1), g.shape)
    x = g / s
    return int((x < -1.0).sum()), int((x > 0.0).sum())


# ---------------------------------------------------------------------------------------------- targets


def encode_targets(
    values: ArrayLike | Sequence[float],
    support: BinSupport | None = None,
    kind: str = "one_hot",
    sigma: float | None = None,
) -> torch.Tensor:
    """Encode scalar targets ``values[B]`` as distributions ``[B, num_bins]`` over the support.

    ``one_hot``: the nearest bin. ``two_hot``: split between the two neighbouring bins so that E equals the
    (clamped) value exactly. ``hl_gauss``: the mass of N(value, sigma) in each bin (histogram loss), with
    ``sigma`` defaulting to 0.75 bin widths. Values outside the support are clamped to it; rows sum to 1.
    """
    support = support or BinSupport()
    if kind not in TARGET_KINDS:
        raise ValueError(f"unknown target encoding {kind!r}; choose one of {list(TARGET_KINDS)}")
    v = torch.as_tensor(values)
    if not v.is_floating_point():
        v = v.float()
    if v.ndim != 1:
        raise ValueError(f"encode_targets expects a 1-D batch of values, got shape {tuple(v.shape)}")
    if torch.isnan(v).any():
        raise ValueError("encode_targets got NaN target values; check the returns and their normalization")
    nb, width = support.num_bins, support.width
    v = v.clamp(support.v_min, support.v_max)
    pos = (v - support.v_min) / width  # fractional bin index in [0, nb - 1]
    out = torch.zeros(v.shape[0], nb, dtype=v.dtype, device=v.device)
    if kind == "one_hot":
        idx = torch.round(pos).long().clamp(0, nb - 1)
        out.scatter_(1, idx[:, None], 1.0)
        return out
    if kind == "two_hot":
        lo = torch.floor(pos).long().clamp(0, nb - 2)
        frac = (pos - lo.to(pos.dtype)).clamp(0.0, 1.0)
        out.scatter_(1, lo[:, None], (1.0 - frac)[:, None])
        out.scatter_add_(1, (lo + 1)[:, None], frac[:, None])
        return out
    sigma = 0.75 * width if sigma is None else float(sigma)
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"hl_gauss needs sigma > 0, got {sigma}")
    centers = torch.as_tensor(support.centers, dtype=v.dtype, device=v.device)
    edges = torch.cat([centers - width / 2, centers[-1:] + width / 2])
    cdf = 0.5 * (1.0 + torch.special.erf((edges[None, :] - v[:, None]) / (sigma * math.sqrt(2.0))))
    mass = cdf[:, 1:] - cdf[:, :-1]
    # Renormalize over the support: mass beyond the outer edges belongs to no bin.
    return mass / mass.sum(-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


# ------------------------------------------------------------------------------------------- advantages


def window_advantage(rewards: Sequence[float], value: float, value_next: float) -> tuple[float, float]:
    """One n-step advantage: ``sum(rewards) + value_next - value``; returns ``(advantage, reward_sum)``.

    ``math.fsum`` is exactly rounded, so the result does not depend on how the window was accumulated: the
    offline labeller and the online stream call this same function and agree bit for bit.
    """
    reward_sum = math.fsum(rewards)
    return reward_sum + float(value_next) - float(value), reward_sum


def n_step_advantages(
    rewards: ArrayLike | Sequence[float],
    values: ArrayLike | Sequence[float],
    n_step: int,
    terminal_value: float = 0.0,
    truncated: bool = False,
) -> np.ndarray:
    """n-step advantages of ONE episode from normalized rewards and values.

    ``A_t = sum_{k<N'} r_{t+k} + V(t+N') - V(t)`` with ``N' = min(N, T - t)`` and ``V(T) = terminal_value``.

    A ``truncated`` episode (cut short without an outcome) has no terminal state: its horizons stop at the
    last frame, ``N' = min(N, T - 1 - t)``, bootstrapping with ``V(T-1)`` (0 for the last frame itself)
    instead of scoring the cut as a success.
    """
    r = _finite_1d(rewards, "rewards")
    v = _finite_1d(values, "values")
    if r.shape != v.shape:
        raise ValueError(f"rewards and values must have the same length, got {r.size} and {v.size}")
    if isinstance(n_step, bool) or int(n_step) != n_step or n_step < 1:
        raise ValueError(f"n_step must be an integer >= 1, got {n_step}")
    if not math.isfinite(terminal_value):
        raise ValueError(f"terminal_value must be finite, got {terminal_value}")
    n_step = int(n_step)
    total = r.size
    r_list = r.tolist()
    v_ext = v.tolist() + [float(terminal_value)]
    out = np.empty(total, dtype=np.float64)
    last = total - 1 if truncated else total
    for t in range(total):
        end = min(t + n_step, last)
        out[t], _ = window_advantage(r_list[t:end], v_ext[t], v_ext[end])
    return out


def mc_advantages(returns: ArrayLike | Sequence[float], values: ArrayLike | Sequence[float]) -> np.ndarray:
    """Monte Carlo advantages ``G_t - V(t)`` of normalized returns and values."""
    g = _finite_1d(returns, "returns")
    v = _finite_1d(values, "values")
    if g.shape != v.shape:
        raise ValueError(f"returns and values must have the same length, got {g.size} and {v.size}")
    return g - v


# ------------------------------------------------------------------------------------------------ labels


def _task_list(tasks: Iterable[str] | str, n: int) -> list[str]:
    if isinstance(tasks, str):
        return [tasks] * n
    task_list = list(tasks)
    if len(task_list) != n:
        raise ValueError(f"got {n} advantages but {len(task_list)} tasks; pass one task per frame")
    return task_list


def _finite_flat(x: ArrayLike | Sequence[float], name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64).reshape(-1)
    if np.isnan(arr).any():
        raise ValueError(f"{name} contain NaN at index {int(np.flatnonzero(np.isnan(arr))[0])}")
    return arr


def compute_task_thresholds(
    advantages: ArrayLike | Sequence[float], tasks: Iterable[str] | str, percentile: float = 30.0
) -> dict[str, float]:
    """Per-task threshold: the given percentile of the task's advantages (default 30: top 70 % positive)."""
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    adv = _finite_flat(advantages, "advantages")
    task_arr = np.asarray(_task_list(tasks, adv.size), dtype=object)
    return {
        str(task): float(np.percentile(adv[task_arr == task], percentile))
        for task in dict.fromkeys(task_arr.tolist())
    }


def is_positive(advantage: float, threshold: float) -> bool:
    """The single labelling rule used offline and online: ``advantage > threshold`` (strict)."""
    if math.isnan(advantage) or math.isnan(threshold):
        raise ValueError(
            f"cannot label a NaN advantage or threshold (advantage={advantage}, threshold={threshold})"
        )
    return float(advantage) > float(threshold)


def binarize_advantages(
    advantages: ArrayLike | Sequence[float],
    thresholds: Mapping[str, float] | float,
    tasks: Iterable[str] | str | None = None,
) -> list[str]:
    """Label each advantage ``POSITIVE_LABEL`` or ``NEGATIVE_LABEL`` against its task's threshold."""
    adv = _finite_flat(advantages, "advantages")
    if not isinstance(thresholds, Mapping):
        th = float(thresholds)
        return [POSITIVE_LABEL if is_positive(a, th) else NEGATIVE_LABEL for a in adv.tolist()]
    if tasks is None:
        raise ValueError("per-task thresholds need the tasks argument (one task per advantage)")
    labels = []
    for a, task in zip(adv.tolist(), _task_list(tasks, adv.size), strict=True):
        if task not in thresholds:
            raise KeyError(f"no advantage threshold for task {task!r}; known tasks: {sorted(thresholds)}")
        labels.append(POSITIVE_LABEL if is_positive(a, thresholds[task]) else NEGATIVE_LABEL)
    return labels
