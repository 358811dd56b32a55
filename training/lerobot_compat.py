# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Every use of LeRobot's non-public internals, in one place, for the LeRobot versions they were checked on.

The converter writes datasets through ``LeRobotDataset`` and needs a few things its public API does not
offer: its own video writer in the dataset's streaming-encoder slot, skipping the per-row image embedding
when no image column exists, and two helpers of ``compute_stats``; it also changes the video file size
limit between episodes, which works only because of how LeRobot rolls its video files over. All of it
depends on LeRobot's internals, so importing this module checks the installed version against
:data:`KNOWN_VERSIONS` and refuses any other with :class:`LeRobotVersionError`: on a new LeRobot, re-check
each function below against its source, then add the version.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from importlib import metadata
from typing import Any

KNOWN_VERSIONS = ("0.4.4",)


class LeRobotVersionError(ImportError):
    """The installed LeRobot is not one whose internals this module was checked against."""


def check_version(version: str | None) -> None:
    """Raise :class:`LeRobotVersionError` unless ``version`` (None: not installed) is a known one."""
    if version is None:
        raise LeRobotVersionError(
            f"LeRobot is not installed; the training tools need lerobot {' or '.join(KNOWN_VERSIONS)} "
            "(pip install 'ove_ros[train]')"
        )
    if version not in KNOWN_VERSIONS:
        raise LeRobotVersionError(
            f"lerobot {version} is installed, but ove_ros's dataset writer was checked against lerobot "
            f"{', '.join(KNOWN_VERSIONS)} only (it uses LeRobot internals that change between releases); "
            f"install a known version (pip install 'lerobot=={KNOWN_VERSIONS[-1]}') or check "
            "training/lerobot_compat.py against the new release and add it to KNOWN_VERSIONS"
        )


def installed_version() -> str | None:
    try:
        return metadata.version("lerobot")
    except metadata.PackageNotFoundError:
        return None


check_version(installed_version())

# Imported after the check: on an unknown release these names may not exist at all.
from lerobot.datasets import lerobot_dataset as _lerobot_dataset  # noqa: E402
from lerobot.datasets.compute_stats import (  # noqa: E402
    DEFAULT_QUANTILES,
    auto_downsample_height_width,
)

__all__ = [
    "DEFAULT_QUANTILES",
    "KNOWN_VERSIONS",
    "LeRobotVersionError",
    "auto_downsample_height_width",
    "check_version",
    "images_not_embedded",
    "set_video_file_limit",
    "set_video_writer",
]


def set_video_writer(dataset: Any, writer: Any) -> None:
    """Put ``writer`` where ``LeRobotDataset`` keeps its streaming video encoder.

    The dataset drives whatever sits in that slot through ``start_episode`` / ``feed_frame`` /
    ``finish_episode`` / ``cancel_episode`` / ``close``
    (:class:`ove_ros.training.video_encoder.StreamingVideoWriter`).
    """
    if not hasattr(dataset, "_streaming_encoder"):
        raise LeRobotVersionError("LeRobotDataset lacks the _streaming_encoder slot; see lerobot_compat.py")
    dataset._streaming_encoder = writer


@contextlib.contextmanager
def images_not_embedded(dataset: Any) -> Iterator[None]:
    """Skip ``save_episode``'s row-by-row image embedding while the dataset has no image column.

    ``save_episode`` passes every frame through ``embed_images`` to inline image files into the parquet
    rows; with every camera stored as video there is nothing to inline and the pass returns the table
    unchanged, one row at a time. Restored on exit, errors included.
    """
    has_images = any(ft.get("dtype") == "image" for ft in dataset.features.values())
    original = getattr(_lerobot_dataset, "embed_images", None)
    if has_images or original is None:
        yield
        return
    _lerobot_dataset.embed_images = lambda table: table
    try:
        yield
    finally:
        _lerobot_dataset.embed_images = original


def set_video_file_limit(dataset: Any, size_mb: float) -> None:
    """Size at which LeRobot starts a new video file for a camera instead of appending to the current one.

    Below it, LeRobot appends an episode to the camera's current file by rewriting the whole file.
    """
    dataset.meta.update_chunk_settings(video_files_size_in_mb=float(size_mb))
