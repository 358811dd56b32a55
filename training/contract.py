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

EPISODES_META = "meta/ove_ros_episodes.json"


def conversion_contract(root: str | Path) -> dict[str, Any]:
    """``{"tolerance_periods": float, "images": {camera: spec}}`` of a converted dataset, or ``{}``."""
    file = Path(root) / EPISODES_META
    if not file.is_file():
        return {}
    try:
        meta = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file}: unreadable ({exc}); re-run the bag conversion") from exc
    out: dict[str, Any] = {}
    if isinstance(meta.get("tolerance_periods"), (int, float)):
        out["tolerance_periods"] = float(meta["tolerance_periods"])
    images = meta.get("image_preprocessing")
    if isinstance(images, dict):
        out["images"] = images
    return out
