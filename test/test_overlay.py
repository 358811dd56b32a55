# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The overlay drawing (pure numpy/OpenCV)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("cv2")

from ove_ros.overlay import (  # noqa: E402
    NEGATIVE_COLOR,
    POSITIVE_COLOR,
    UNKNOWN_COLOR,
    bar_rect,
    draw_value_overlay,
    spark_rect,
    value_color,
    value_fraction,
)

H, W = 96, 128


def _grey() -> np.ndarray:
    return np.full((H, W, 3), 100, np.uint8)


def _filled_rows(img: np.ndarray) -> int:
    """Rows of the bar's centre column that carry the fill colour (anything far from the dark panel)."""
    x0, y0, x1, y1 = bar_rect(*img.shape[:2])
    column = img[y0:y1, (x0 + x1) // 2].astype(int)
    return int((column.max(axis=1) > 150).sum())


@pytest.mark.parametrize("value, fraction", [(-1.0, 0.0), (-0.5, 0.5), (0.0, 1.0), (-0.25, 0.75)])
def test_bar_fill_is_proportional_to_the_value(value, fraction):
    out = draw_value_overlay(_grey(), value)
    x0, y0, x1, y1 = bar_rect(H, W)
    assert abs(_filled_rows(out) - fraction * (y1 - y0)) <= 1


def test_values_outside_the_range_are_clipped():
    _, y0, _, y1 = bar_rect(H, W)
    assert _filled_rows(draw_value_overlay(_grey(), 3.0)) == y1 - y0
    assert _filled_rows(draw_value_overlay(_grey(), -7.0)) == 0
    assert _filled_rows(draw_value_overlay(_grey(), math.nan)) == 0


def test_custom_range():
    _, y0, _, y1 = bar_rect(H, W)
    assert abs(_filled_rows(draw_value_overlay(_grey(), 5.0, v_min=0.0, v_max=10.0)) - (y1 - y0) / 2) <= 1
    with pytest.raises(ValueError, match="v_min < v_max"):
        draw_value_overlay(_grey(), 0.0, v_min=1.0, v_max=0.0)


def test_input_is_not_modified_and_output_matches_shape():
    img = _grey()
    out = draw_value_overlay(img, -0.3, history=[-0.9, -0.5, -0.3], advantage_positive=True, text="task")
    assert np.all(img == 100)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)


def test_colour_goes_from_red_to_green():
    low, high = value_color(0.0), value_color(1.0)
    assert low[0] > low[1] and high[1] > high[0]
    assert value_fraction(-0.5) == 0.5


def _sign_pixel(img: np.ndarray) -> np.ndarray:
    """A pixel of the sign disc away from the +/- strokes."""
    radius = max(4, min(H, W) // 12)
    c = radius + max(1, H // 40)
    return img[c - radius + 2, c].astype(int)


@pytest.mark.parametrize(
    "positive, color", [(True, POSITIVE_COLOR), (False, NEGATIVE_COLOR), (None, UNKNOWN_COLOR)]
)
def test_advantage_sign_colour(positive, color):
    out = draw_value_overlay(_grey(), -0.5, advantage_positive=positive)
    assert np.abs(_sign_pixel(out) - np.array(color)).max() <= 30


def test_positive_sign_has_a_vertical_stroke_and_negative_does_not():
    radius = max(4, min(H, W) // 12)
    c = radius + max(1, H // 40)
    above = (c, c - radius * 3 // 5 + 1)  # (x, y) on the vertical arm of "+"
    plus = draw_value_overlay(_grey(), -0.5, advantage_positive=True)
    minus = draw_value_overlay(_grey(), -0.5, advantage_positive=False)
    assert plus[above[1], above[0]].min() > 200
    assert minus[above[1], above[0]].min() < 200


def test_sparkline_follows_the_history():
    flat_low = draw_value_overlay(_grey(), -0.5, history=[-1.0] * 10)
    flat_high = draw_value_overlay(_grey(), -0.5, history=[0.0] * 10)
    sx0, sy0, sx1, sy1 = spark_rect(H, W)
    xm = (sx0 + sx1) // 2

    def line_row(img):
        column = img[sy0:sy1, xm].astype(int)
        yellow = (column[:, 0] > 150) & (column[:, 1] > 120) & (column[:, 2] < 120)
        return sy0 + int(np.flatnonzero(yellow).mean())

    assert line_row(flat_low) > line_row(flat_high)  # lower value -> lower on screen (larger row)
    assert abs(line_row(flat_low) - (sy1 - 1)) <= 1
    assert abs(line_row(flat_high) - sy0) <= 1


def test_non_finite_history_entries_are_skipped():
    out = draw_value_overlay(_grey(), -0.5, history=[math.nan, -0.2, math.inf, -0.4])
    assert out.shape == (H, W, 3)


def test_text_never_covers_the_bar_on_small_images():
    out = draw_value_overlay(np.zeros((48, 64, 3), np.uint8), -0.5, history=[-0.5, -0.2],
                             text="a long task description")
    _, y0, _, y1 = bar_rect(48, 64)
    assert abs(_filled_rows(out) - 0.5 * (y1 - y0)) <= 1


@pytest.mark.parametrize(
    "bad", [np.zeros((H, W), np.uint8), np.zeros((H, W, 4), np.uint8), np.zeros((H, W, 3), np.float32),
            np.zeros((8, 8, 3), np.uint8)]
)
def test_bad_images_are_rejected(bad):
    with pytest.raises(ValueError):
        draw_value_overlay(bad, -0.5)
