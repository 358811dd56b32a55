# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's settings checked against the deploy bundle: the data contract (fps, n_step, tolerance) comes
from the bundle, and a parameter overrides it only when set. Plain data in and out, no ROS graph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ove_ros.ros import params


def default_task(meta, task: str) -> str:
    """``task``, or the bundle's first task when it is empty."""
    if task:
        return task
    if not meta.task_normalizers:
        raise params.ConfigError("no task: set the 'task' parameter (the bundle names no tasks)")
    return next(iter(meta.task_normalizers))


def contract_text(contract: dict[str, str]) -> str:
    """'fps from bundle, n_step from parameter n_step, ...' for the logs and diagnostics."""
    return ", ".join(f"{k} from {v}" for k, v in contract.items())


def resolve(s: params.Settings, meta, warn: Callable[[str], None]) -> tuple[params.Settings, dict[str, str]]:
    """The settings in force with ``meta`` (BundleMetadata), and where each contract value came from.

    Raises ConfigError naming the mismatch and the fix; ``warn`` hears of overrides that make online labels
    differ from the offline ones."""
    cams = meta.camera_names
    if len(s.camera_topics) != len(cams):
        raise params.ConfigError(
            f"camera_topics lists {len(s.camera_topics)} topic(s) {list(s.camera_topics)} but the "
            f"bundle {s.checkpoint} was trained with {len(cams)} camera(s) {cams}: set camera_topics to "
            "one topic per camera, in that order")
    joints = s.joint_names or tuple(meta.joint_names)
    if len(joints) != len(meta.joint_names):
        raise params.ConfigError(
            f"joint_names has {len(joints)} names but the model takes {len(meta.joint_names)} joints "
            f"(bundle order: {meta.joint_names}); list one name per model joint or use [''] for the "
            "bundle's names")
    task = s.task or default_task(meta, s.task)
    contract = {}
    fps, n_step, tolerance = s.fps, s.n_step, s.tolerance_periods
    contract["fps"] = "parameter sync.fps" if fps else "bundle"
    fps = fps or meta.fps
    if not fps:
        raise params.ConfigError(
            f"the bundle {s.checkpoint} does not record its dataset's fps (exported by an older "
            "ove_ros.training.convert): set sync.fps to the fps of the dataset the model was trained on, "
            "or "
            "re-export the bundle with `python -m ove_ros.training.convert`")
    contract["n_step"] = "parameter n_step" if n_step else "bundle"
    if n_step and meta.advantage_thresholds and n_step != meta.n_step:
        warn(f"n_step={n_step} overrides the bundle's {meta.n_step}, with which its advantage thresholds "
             "were computed: online labels will not match the offline ones")
    n_step = n_step or meta.n_step
    contract["tolerance_periods"] = "parameter" if tolerance else "bundle"
    tolerance = tolerance or meta.tolerance_periods
    if s.bootstrap_tolerance >= n_step:
        raise params.ConfigError(
            f"bootstrap_tolerance={s.bootstrap_tolerance} must be smaller than n_step={n_step}")
    settings = replace(s, joint_names=joints, task=task, fps=float(fps), n_step=int(n_step),
                       tolerance_periods=float(tolerance))
    return settings, contract
