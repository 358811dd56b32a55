# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The text half of the model input: joint normalization, 256-bin discretization and the prompt string.

The prompt is ``"Task: <task>, State: <b1 b2 ...>;"`` where ``b_i`` is joint ``i`` mapped to ``[-1, 1]`` with
the per-joint min/max of the training data and cut into 256 equal bins. Training, the bundle and the live
engine all go through :class:`StateNormalizer` and :func:`discretize` so the same joint reading always gives
the same bins.

A model trained with elapsed time as an input (``ValueModelConfig.time_bin_frames > 0``) reads
``"Task: <task>, Time: <t>, State: ...;"`` where ``t`` is :func:`time_bin` of the frame index (frames since
the episode started, at the dataset's frame rate): in a time-limited task the value of a state depends on
the time left, which nothing in one frame shows.

Joint values outside the training range are clipped to it; :class:`StateNormalizer` counts them and warns
once per set of statistics, since the model never saw such states.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

STATE_BINS = 256
MAX_TIME_BIN = 255  # later frames share the last bin
PROMPT_PREFIX = "Task: {task}, State:"
PROMPT_SUFFIX = ";"
# Ranges narrower than this are treated as constant joints (mapped to 0) instead of dividing by ~0.
MIN_RANGE = 1e-8


def _joint_label(index: int, names: Sequence[str] | None) -> str:
    if names is not None and index < len(names):
        return f"joint {index} ({names[index]!r})"
    return f"joint {index}"


def check_finite(values: np.ndarray, names: Sequence[str] | None = None, what: str = "state") -> None:
    """Raise ValueError naming the first non-finite joint of a ``[D]`` or ``[B, D]`` array."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    idx = np.argwhere(bad)[0]
    joint = int(idx[-1])
    row = f" in row {int(idx[0])}" if values.ndim == 2 else ""
    raise ValueError(
        f"{what} has a non-finite value ({values[tuple(idx)]}) at {_joint_label(joint, names)}{row}; "
        "drop or repair this sample (e.g. wait for a valid joint reading) before calling the value model"
    )


@dataclass
class StateNormalizer:
    """Per-joint affine map of ``[low, high]`` onto ``[-1, 1]``, clipped outside the training range."""

    low: np.ndarray
    high: np.ndarray
    joint_names: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        self.low = np.asarray(self.low, dtype=np.float64).reshape(-1)
        self.high = np.asarray(self.high, dtype=np.float64).reshape(-1)
        if self.low.shape != self.high.shape:
            raise ValueError(
                f"StateNormalizer: low has {self.low.size} joints but high has {self.high.size}; "
                "pass one min and one max per joint"
            )
        if self.low.size == 0:
            raise ValueError("StateNormalizer: no joints; pass the per-joint min/max of the training states")
        check_finite(self.low, self.joint_names, "state_low")
        check_finite(self.high, self.joint_names, "state_high")
        inverted = np.flatnonzero(self.low > self.high)
        if inverted.size:
            j = int(inverted[0])
            raise ValueError(
                f"StateNormalizer: low > high at {_joint_label(j, self.joint_names)} "
                f"({self.low[j]} > {self.high[j]}); pass (min, max) in that order"
            )
        if self.joint_names is not None:
            self.joint_names = [str(n) for n in self.joint_names]
            if len(self.joint_names) != self.low.size:
                raise ValueError(
                    f"StateNormalizer: {len(self.joint_names)} joint names for {self.low.size} joints; "
                    "pass one name per joint (or none)"
                )

    @property
    def dim(self) -> int:
        return int(self.low.size)

    @classmethod
    def from_data(cls, states: np.ndarray, joint_names: Sequence[str] | None = None) -> StateNormalizer:
        """Min/max over the rows of ``states`` ``[N, D]`` (the training data)."""
        states = np.asarray(states, dtype=np.float64)
        if states.ndim != 2 or states.shape[0] == 0:
            raise ValueError(f"StateNormalizer.from_data needs states of shape [N>0, D], got {states.shape}")
        check_finite(states, joint_names, "training states")
        return cls(states.min(axis=0), states.max(axis=0), None if joint_names is None else list(joint_names))

    def normalize(self, state: np.ndarray | Sequence[float]) -> np.ndarray:
        """Map ``[D]`` or ``[B, D]`` raw joint values to ``[-1, 1]`` (float64)."""
        x = np.asarray(state, dtype=np.float64)
        if x.ndim not in (1, 2) or x.shape[-1] != self.dim:
            raise ValueError(
                f"state has shape {x.shape} but the model expects {self.dim} joints "
                f"({self.joint_names if self.joint_names else 'in training order'}); pass [D] or [B, D]"
            )
        check_finite(x, self.joint_names)
        span = self.high - self.low
        degenerate = span < MIN_RANGE
        # A joint that never moved in the training data carries no information: map it to the middle.
        scaled = np.where(degenerate, 0.0, 2.0 * (x - self.low) / np.where(degenerate, 1.0, span) - 1.0)
        outside = np.abs(scaled) > 1.0 + 1e-9
        if outside.any():
            self._count_clipped(x, outside)
        return np.clip(scaled, -1.0, 1.0)

    def _count_clipped(self, x: np.ndarray, outside: np.ndarray) -> None:
        key = self._key()
        _CLIPPED[key] = _CLIPPED.get(key, 0) + int(outside.sum())
        if key in _WARNED:
            return
        _WARNED.add(key)
        idx = np.argwhere(outside)[0]
        j = int(idx[-1])
        logger.warning(
            "%s = %.6g is outside the training range [%.6g, %.6g] and is clipped to it (%d joint value(s) "
            "clipped in this call; StateNormalizer.clipped_count() keeps the total). The model never saw "
            "such states: check the joint order and units against the bundle's joint_names, or retrain "
            "with data that covers them", _joint_label(j, self.joint_names), float(x[tuple(idx)]),
            self.low[j], self.high[j], int(outside.sum()),
        )

    def _key(self) -> tuple[bytes, bytes]:
        return self.low.tobytes(), self.high.tobytes()

    def clipped_count(self) -> int:
        """Joint values clipped so far by normalizers with these statistics (in this process)."""
        return _CLIPPED.get(self._key(), 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "low": [float(v) for v in self.low],
            "high": [float(v) for v in self.high],
            "joint_names": self.joint_names,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StateNormalizer:
        return cls(np.asarray(data["low"]), np.asarray(data["high"]), data.get("joint_names"))


# Clipped joint values per set of statistics (the model rebuilds its normalizer on every call).
_CLIPPED: dict[tuple[bytes, bytes], int] = {}
_WARNED: set[tuple[bytes, bytes]] = set()


def discretize(x: np.ndarray | Sequence[float], num_bins: int = STATE_BINS) -> np.ndarray:
    """Cut values in ``[-1, 1]`` into ``num_bins`` equal bins; returns int64 in ``[0, num_bins - 1]``.

    Values outside ``[-1, 1]`` land in the end bins; ``1.0`` itself belongs to the last bin.
    """
    if num_bins < 2:
        raise ValueError(f"discretize needs num_bins >= 2, got {num_bins}")
    x = np.asarray(x, dtype=np.float64)
    check_finite(x, None, "normalized state")
    bins = np.floor((x + 1.0) * 0.5 * num_bins)
    return np.clip(bins, 0, num_bins - 1).astype(np.int64)


def clean_task(task: str) -> str:
    """Collapse whitespace (newlines would change tokenization between datasets); reject empty tasks."""
    if not isinstance(task, str):
        raise TypeError(f"task must be a str, got {type(task).__name__}")
    text = " ".join(task.split())
    if not text:
        raise ValueError("task description is empty; pass the task text the model was trained with")
    return text


def time_bin(frame_index: int, frames_per_bin: int) -> int:
    """Elapsed-time bin of a frame: ``frame_index // frames_per_bin``, at most :data:`MAX_TIME_BIN`."""
    f = int(frame_index)
    if f < 0:
        raise ValueError(f"frame_index must be >= 0 (frames since the episode started), got {f}")
    if int(frames_per_bin) < 1:
        raise ValueError(f"frames_per_bin must be >= 1, got {frames_per_bin}")
    return min(f // int(frames_per_bin), MAX_TIME_BIN)


def timed_task(task: str, time: int | None) -> str:
    """The task text with the elapsed-time bin after it (``"<task>, Time: <t>"``); the task when None.

    Everything that assembles prompts piecewise (the engine's token cache) treats this as the task, so the
    timed prompt is the same string in training and live.
    """
    text = clean_task(task)
    return text if time is None else f"{text}, Time: {int(time)}"


def prompt_prefix(task: str, time: int | None = None) -> str:
    """The part of the prompt before the first bin (constant while the task and time bin do not change)."""
    return PROMPT_PREFIX.format(task=timed_task(task, time))


def build_prompt(task: str, bins: Sequence[int] | np.ndarray, time: int | None = None) -> str:
    """``"Task: <task>, State: <b1 b2 ...>;"``; with a time bin ``"Task: <task>, Time: <t>, State: ...;"``."""
    values = np.asarray(bins).reshape(-1)
    if values.size == 0:
        raise ValueError("build_prompt needs at least one state bin")
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"build_prompt needs integer bins (see discretize), got dtype {values.dtype}")
    return prompt_prefix(task, time) + "".join(f" {int(b)}" for b in values) + PROMPT_SUFFIX
