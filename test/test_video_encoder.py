# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The converter's streaming video writer: no dropped frames, faithful colours, statistics, named errors."""

from __future__ import annotations

import av
import numpy as np
import pytest

from ove_ros.training.video_encoder import EncoderError, EncoderSettings, PixelStats, StreamingVideoWriter

KEY = "observation.images.front"


def _frames(n: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    out = []
    for i in range(n):
        img = np.zeros((height, width, 3), np.uint8)
        img[..., 0] = 40 + 4 * i  # a colour that changes every frame, so every frame is identifiable
        img[..., 1] = 200 - 3 * i
        img[..., 2] = 90
        out.append(img)
    return out


def _decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])
def test_every_frame_is_encoded_even_with_a_one_slot_queue(tmp_path, preset):
    frames = _frames(37)
    writer = StreamingVideoWriter(30, EncoderSettings(preset=preset, crf=18, queue_maxsize=1, stats_every=5))
    writer.start_episode([KEY], tmp_path)
    for f in frames:
        writer.feed_frame(KEY, f)
    results = writer.finish_episode()
    path, stats = results[KEY]
    decoded = _decode(path)
    assert len(decoded) == len(frames)
    for got, want in zip(decoded, frames, strict=True):
        # yuv420p at crf 18: flat colours come back within a few levels (a channel swap or range error
        # would not)
        assert np.abs(got.astype(int) - want.astype(int)).mean(axis=(0, 1)).max() < 4.0
    # statistics from frames 0, 5, ..., 35: means match those frames' colours
    sampled = np.stack([f[0, 0] for f in frames[::5]]).astype(float)
    assert stats is not None
    assert np.allclose(stats["mean"], sampled.mean(axis=0), atol=0.5)
    assert int(np.asarray(stats["count"]).ravel()[0]) == 8 * 48 * 64
    writer.close()
    assert not any(p.name.startswith(".encode-") for p in tmp_path.iterdir())


def test_short_episode_still_gets_statistics(tmp_path):
    writer = StreamingVideoWriter(30, EncoderSettings(stats_every=10))
    writer.start_episode([KEY], tmp_path)
    for f in _frames(3):
        writer.feed_frame(KEY, f)
    _, stats = writer.finish_episode()[KEY]
    assert stats is not None and int(np.asarray(stats["count"]).ravel()[0]) == 2 * 48 * 64
    writer.close()


def test_encoder_failure_names_the_camera(tmp_path):
    writer = StreamingVideoWriter(30)
    writer.start_episode([KEY], tmp_path)
    writer.feed_frame(KEY, np.zeros((47, 64, 3), np.uint8))  # odd height: yuv420p cannot hold it
    with pytest.raises(EncoderError, match=r"observation\.images\.front.*even width and height"):
        for _ in range(50):
            writer.feed_frame(KEY, np.zeros((47, 64, 3), np.uint8))
        writer.finish_episode()
    writer.close()


def test_cancel_discards_the_episode(tmp_path):
    writer = StreamingVideoWriter(30, EncoderSettings(queue_maxsize=2))
    writer.start_episode([KEY, "observation.images.wrist"], tmp_path)
    for f in _frames(10):
        writer.feed_frame(KEY, f)
    writer.cancel_episode()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="outside an episode"):
        writer.feed_frame(KEY, _frames(1)[0])


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="stats_every"):
        StreamingVideoWriter(30, EncoderSettings(stats_every=0))


def test_pixel_statistics_are_exact_and_in_lerobots_format():
    from lerobot.datasets.compute_stats import RunningQuantileStats

    rng = np.random.default_rng(3)
    pixels = np.clip(rng.normal([60, 128, 200], [10, 40, 30], (30000, 3)), 0, 255).astype(np.uint8)
    ours, lerobot = PixelStats(), RunningQuantileStats()
    for chunk in np.array_split(pixels, 9):
        ours.update(chunk)
        lerobot.update(chunk)
    got, ref = ours.get_statistics(), lerobot.get_statistics()
    assert got.keys() == ref.keys()
    for key in ref:
        assert (got[key].shape, got[key].dtype) == (ref[key].shape, ref[key].dtype), key
    exact = pixels.astype(np.float64)
    np.testing.assert_array_equal(got["min"], pixels.min(axis=0))
    np.testing.assert_array_equal(got["max"], pixels.max(axis=0))
    np.testing.assert_allclose(got["mean"], exact.mean(axis=0), rtol=1e-12)
    # LeRobot squares the uint8 pixels in uint8 (its std comes out 0 here); ours is numpy's std.
    np.testing.assert_allclose(got["std"], exact.std(axis=0), rtol=1e-9)
    assert got["count"].tolist() == [len(pixels)]
    for q in (1, 10, 50, 90, 99):
        want = np.quantile(pixels, q / 100, axis=0, method="inverted_cdf")
        np.testing.assert_array_equal(got[f"q{q:02d}"], want.astype(np.float64))
        assert np.abs(got[f"q{q:02d}"] - ref[f"q{q:02d}"]).max() <= 1.0  # LeRobot's histogram approximation
    with pytest.raises(ValueError, match="uint8"):
        PixelStats().update(pixels.astype(np.float32))
