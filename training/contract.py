# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What a converted dataset says about how its frames were made, for the bundle's data contract.

The bag converter records its resampling tolerance and each camera's image preprocessing beside the dataset
(``meta/ove_ros_episodes.json``); training copies them into the checkpoint and the bundle, so the live node
places ticks on the same frame grid and prepares images the same way. Datasets made elsewhere have no such
file: the contract then holds what LeRobot's own metadata gives (the fps), and the node uses its defaults.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ove_ros.images import ImageError, ImagePreprocessing, specs_from_dict

EPISODES_META = "meta/ove_ros_episodes.json"  # written by the bag converter (bag_to_lerobot.EPISODES_META)
IMAGE_SPEC_KEY = "image_preprocessing"  # its per-camera image preprocessing (bag_to_lerobot.IMAGE_SPEC_KEY)


def _episodes_meta(root: str | Path) -> tuple[Path, dict[str, Any] | None]:
    file = Path(root) / EPISODES_META
    if not file.is_file():
        return file, None
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImageError(f"cannot read {file}: {exc}; convert the bags again") from None
    return file, meta if isinstance(meta, dict) else {}


def read_dataset_image_spec(root: str | Path) -> dict[str, ImagePreprocessing] | None:
    """``{camera: spec}`` of the dataset at ``root``; None for a dataset the converter did not write, or wrote
    before it recorded the spec (its frames came from elsewhere: nothing says how they were made).

    Raises ``ImageError`` (a ``ValueError``) when the recorded spec cannot be read, naming the file.
    """
    file, meta = _episodes_meta(root)
    if meta is None or IMAGE_SPEC_KEY not in meta:
        return None
    try:
        return specs_from_dict(meta[IMAGE_SPEC_KEY])
    except ImageError as exc:
        raise ImageError(f"{file}, {IMAGE_SPEC_KEY}: {exc}") from None


def conversion_contract(root: str | Path) -> dict[str, Any]:
    """``{"tolerance_periods": float, "images": {camera: spec as a dict}}`` of a converted dataset, or ``{}``.

    The image specs are checked (``read_dataset_image_spec``) before they go into a checkpoint."""
    _, meta = _episodes_meta(root)
    if meta is None:
        return {}
    out: dict[str, Any] = {}
    if isinstance(meta.get("tolerance_periods"), (int, float)):
        out["tolerance_periods"] = float(meta["tolerance_periods"])
    if read_dataset_image_spec(root) is not None:
        out["images"] = meta[IMAGE_SPEC_KEY]
    return out
