# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Read back the per-camera image preprocessing a converted dataset's frames went through.

The bag converter records it (``ove_ros.images.ImagePreprocessing`` per camera) in the dataset's episodes
metadata, so training can carry it into the deploy bundle and the live node can decode like the converter did.
"""

from __future__ import annotations

import json
from pathlib import Path

from ove_ros.images import ImageError, ImagePreprocessing, specs_from_dict
from ove_ros.training.bag_to_lerobot import EPISODES_META, IMAGE_SPEC_KEY


def read_dataset_image_spec(root: str | Path) -> dict[str, ImagePreprocessing] | None:
    """``{camera: spec}`` of the dataset at ``root``; None for a dataset the converter did not write, or wrote
    before it recorded the spec (its frames came from elsewhere: nothing says how they were made).

    Raises ``ImageError`` when the recorded spec cannot be read, naming the file.
    """
    path = Path(root) / EPISODES_META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageError(f"cannot read {path}: {exc}; convert the bags again") from None
    if not isinstance(meta, dict) or IMAGE_SPEC_KEY not in meta:
        return None
    try:
        return specs_from_dict(meta[IMAGE_SPEC_KEY])
    except ImageError as exc:
        raise ImageError(f"{path}, {IMAGE_SPEC_KEY}: {exc}") from None
