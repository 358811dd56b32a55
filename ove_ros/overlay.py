# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Draws the value estimate onto a camera image (numpy/OpenCV only, no ROS).

Layout, scaled to the image: a vertical value bar on the right edge (filled from the bottom, red at v_min
to green at v_max), a sparkline of recent values along the bottom, a disc with the sign of the latest
advantage in the top-left corner (green "+", red "-", grey when none is known yet) and one line of text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

# RGB colours.
NEGATIVE_COLOR = (220, 40, 40)
POSITIVE_COLOR = (40, 200, 60)
UNKNOWN_COLOR = (150, 150, 150)
PANEL_COLOR = (20, 20, 20)
SPARK_COLOR = (255, 220, 0)


def value_fraction(value: float, v_min: float = -1.0, v_max: float = 0.0) -> float:
    """Position of ``value`` in ``[v_min, v_max]`` as a number in [0, 1] (NaN -> 0)."""
    if not v_min < v_max:
        raise ValueError(f"the value range needs v_min < v_max, got v_min={v_min}, v_max={v_max}")
    if not math.isfinite(value):
        return 0.0
    return min(1.0, max(0.0, (float(value) - v_min) / (v_max - v_min)))


def value_color(fraction: float) -> tuple[int, int, int]:
    """RGB colour from red (0) through yellow (0.5) to green (1)."""
    f = min(1.0, max(0.0, float(fraction)))
    red = 230 if f < 0.5 else int(round(230 * (1.0 - f) * 2))
    green = int(round(210 * f * 2)) if f < 0.5 else 210
    return red, green, 40


def bar_rect(height: int, width: int) -> tuple[int, int, int, int]:
    """The value bar's inner area ``(x0, y0, x1, y1)``, end-exclusive; the fill grows from y1 upwards."""
    margin = max(1, height // 40)
    bar_w = max(3, width // 16)
    return width - margin - bar_w, margin, width - margin, height - margin


def spark_rect(height: int, width: int) -> tuple[int, int, int, int]:
    """The sparkline's area ``(x0, y0, x1, y1)``, end-exclusive, left of the bar along the bottom edge."""
    bx0, _, _, by1 = bar_rect(height, width)
    margin = max(1, height // 40)
    spark_h = max(6, height // 5)
    return margin, by1 - spark_h, max(margin + 2, bx0 - margin), by1


def _blend_rect(img: np.ndarray, rect: tuple[int, int, int, int], color: tuple[int, int, int], alpha: float):
    x0, y0, x1, y1 = rect
    roi = img[y0:y1, x0:x1]
    roi[:] = (roi.astype(np.float32) * (1.0 - alpha) + np.asarray(color, np.float32) * alpha).astype(np.uint8)


def draw_value_overlay(
    image: np.ndarray,
    value: float,
    history: Sequence[float] = (),
    advantage_positive: bool | None = None,
    text: str = "",
    v_min: float = -1.0,
    v_max: float = 0.0,
) -> np.ndarray:
    """Return a copy of the RGB ``image`` (HxWx3 uint8) with the value bar, sparkline, sign and text drawn.

    ``history`` holds recent values, oldest first (non-finite ones are skipped); ``advantage_positive`` is the
    label of the latest advantage, or None before the first one.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = getattr(image, "shape", type(image).__name__), getattr(image, "dtype", None)
        raise ValueError(f"draw_value_overlay needs an HxWx3 uint8 RGB image, got {got}")
    height, width = image.shape[:2]
    if height < 16 or width < 16:
        raise ValueError(f"the image is too small for an overlay ({width}x{height}); it needs at least 16x16")
    out = np.ascontiguousarray(image).copy()

    # Sparkline of recent values on a translucent strip.
    sx0, sy0, sx1, sy1 = spark_rect(height, width)
    _blend_rect(out, (sx0, sy0, sx1, sy1), PANEL_COLOR, 0.5)
    finite = [float(v) for v in history if math.isfinite(v)]
    if len(finite) >= 2:
        xs = np.linspace(sx0, sx1 - 1, len(finite))
        ys = [sy1 - 1 - value_fraction(v, v_min, v_max) * (sy1 - sy0 - 1) for v in finite]
        pts = np.round(np.stack([xs, ys], axis=1)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(out, [pts], False, SPARK_COLOR, 1, cv2.LINE_AA)

    # Advantage sign: a disc with "+" or "-" drawn with lines (no font needed at small sizes).
    radius = max(4, min(height, width) // 12)
    cx, cy = radius + max(1, height // 40), radius + max(1, height // 40)
    color = UNKNOWN_COLOR if advantage_positive is None else (
        POSITIVE_COLOR if advantage_positive else NEGATIVE_COLOR)
    cv2.circle(out, (cx, cy), radius, color, -1, cv2.LINE_AA)
    arm = max(2, radius * 3 // 5)
    thick = max(1, radius // 4)
    if advantage_positive is not None:
        cv2.line(out, (cx - arm, cy), (cx + arm, cy), (255, 255, 255), thick)
        if advantage_positive:
            cv2.line(out, (cx, cy - arm), (cx, cy + arm), (255, 255, 255), thick)

    # One line of text: the value, then the caller's text.
    label = f"V {value:+.2f}" if math.isfinite(value) else "V nan"
    if text:
        label = f"{label} {text}"
    scale = max(0.25, height / 480.0 * 0.7)
    thickness = max(1, int(round(scale * 2)))
    org = (cx + radius + max(2, radius // 2), cy + int(10 * scale))
    cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
    cv2.putText(out, label, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)

    # Value bar last, so that long text never covers it: dark panel, then the fill from the bottom.
    frac = value_fraction(value, v_min, v_max)
    x0, y0, x1, y1 = bar_rect(height, width)
    _blend_rect(out, (x0, y0, x1, y1), PANEL_COLOR, 0.75)
    fill_top = y1 - int(round(frac * (y1 - y0)))
    if fill_top < y1:
        out[fill_top:y1, x0:x1] = value_color(frac)

    return out
