# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The report's pictures: value-curve plots and the node's overlay as a video and a PNG strip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ove_ros.main_job.episode_bags import RecordedEpisode


def plot_curves(path: Path, rows: list[dict[str, Any]]) -> Path:
    """One panel per episode: target return, offline value, the live node's value, and any reference
    curves (``row["references"]``: name -> values, e.g. the best trivial predictor and the causal
    ceiling)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(4, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.8 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.set_visible(False)
    for ax, row in zip(axes.ravel(), rows, strict=False):
        ax.set_visible(True)
        x = np.arange(len(row["target"]))
        ax.plot(x, row["target"], "k--", lw=1.2, label="return (target)")
        ax.plot(x, row["offline"], color="tab:blue", lw=1.2, label="offline")
        ax.plot(x, row["online"], ".", color="tab:orange", ms=3, label="live node")
        for (name, values), color in zip(row.get("references", {}).items(), ("tab:gray", "tab:green"),
                                         strict=False):
            ax.plot(x, values, color=color, lw=1.0, alpha=0.8, label=name)
        ax.set_ylim(-1.05, 0.05)
        ax.set_title(row["title"], fontsize=8, color="tab:green" if row["success"] else "tab:red")
        ax.set_xlabel("frame", fontsize=7)
        ax.tick_params(labelsize=7)
    axes.ravel()[0].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_overlay_media(out: Path, episodes: Sequence[RecordedEpisode], fps: float) -> dict[str, str]:
    """The node's ~/overlay frames: an MP4 of all held-out episodes and a PNG strip (one success, one
    failure)."""
    import cv2

    frames = [(ep, img) for ep in episodes for _, img in ep.overlay]
    if not frames:
        return {}
    scale = max(1, 256 // frames[0][1].shape[0])
    h, w = frames[0][1].shape[0] * scale, frames[0][1].shape[1] * scale
    video = out / "overlay.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for _, img in frames:
        big = cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)
        writer.write(cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    writer.release()
    strip_rows = []
    for want in (True, False):
        ep = next((e for e in episodes if e.success == want and e.overlay), None)
        if ep is None:
            continue
        picks = np.linspace(0, len(ep.overlay) - 1, 8).round().astype(int)
        tiles = [cv2.resize(ep.overlay[i][1], (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
                 for i in picks]
        strip_rows.append(np.concatenate(tiles, axis=1))
    if not strip_rows:
        return {"video": str(video)}
    strip = out / "overlay_strip.png"
    cv2.imwrite(str(strip), cv2.cvtColor(np.concatenate(strip_rows, axis=0), cv2.COLOR_RGB2BGR))
    return {"video": str(video), "strip": str(strip)}
