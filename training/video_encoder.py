# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Per-camera streaming video encoder for converting recordings into LeRobot datasets.

LeRobot 0.4.4's own streaming encoder is built for live recording: it drops a frame when its queue stays
full for 0.1 s, exposes no encoder preset for h264/hevc (x264 then runs at ``medium``, several times
slower than ``ultrafast``), converts RGB -> YUV through PIL and swscale, and updates image statistics on
every frame (a cost comparable to encoding it). A file converter wants the opposite
trade-offs, so this class keeps LeRobot's episode interface (``start_episode`` / ``feed_frame`` /
``finish_episode`` / ``cancel_episode`` / ``close``) and changes what happens inside:

- ``feed_frame`` blocks while the camera's queue is full: a conversion never loses a frame;
- the x264/x265 preset, CRF and keyframe interval are settings (``ultrafast`` encodes much faster than
  ``medium`` and writes larger files; ``veryfast`` is the middle ground; README, Benchmarks);
- RGB -> YUV 4:2:0 (BT.601, limited range: what swscale produces for ``yuv420p``) is one OpenCV call that
  releases the GIL, so the camera threads really run side by side;
- image statistics come from every ``stats_every``-th frame and ~5000 pixels of it (LeRobot's own offline
  path also samples frames), counted exactly in 256 bins per channel (:class:`PixelStats`) instead of
  LeRobot's 5000-bin running histograms: far cheaper, and the quantiles are exact.

The result per camera is ``(mp4 path, stats)`` exactly as LeRobot's ``save_episode`` expects.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ove_ros.training.bag_config import VideoConfig

_STOP = object()  # end-of-episode sentinel
_PUT_POLL_S = 0.5  # how often a blocked feed_frame checks that its encoder thread is still alive
STATS_PIXELS = 5000  # pixels per sampled frame that feed the image statistics


_VIDEO = VideoConfig()  # the defaults live in the conversion config (documented there)


@dataclass(frozen=True)
class EncoderSettings:
    vcodec: str = _VIDEO.vcodec
    preset: str | None = _VIDEO.preset
    crf: int = _VIDEO.crf
    gop: int = _VIDEO.gop
    threads: int | None = _VIDEO.encoder_threads
    stats_every: int = _VIDEO.stats_every  # plus the last frame when fewer than 2 were sampled
    queue_maxsize: int = _VIDEO.encoder_queue_maxsize

    @classmethod
    def from_config(cls, video: VideoConfig) -> EncoderSettings:
        return cls(
            vcodec=video.vcodec,
            preset=video.preset,
            crf=video.crf,
            gop=video.gop,
            threads=video.encoder_threads,
            stats_every=video.stats_every,
            queue_maxsize=video.encoder_queue_maxsize,
        )

    def codec_options(self, cameras: int = 1) -> dict[str, str]:
        options = {"g": str(self.gop), "crf": str(self.crf)}
        if self.preset is not None:
            options["preset"] = str(self.preset)
        threads = self.threads if self.threads is not None else auto_threads(cameras)
        if self.vcodec == "libsvtav1":
            options["svtav1-params"] = f"lp={threads}"
        else:
            options["threads"] = str(threads)
        return options


def auto_threads(cameras: int) -> int:
    """Codec threads per camera: the usable cores shared among the cameras' encoders.

    Each camera already has its own encoder thread, so once the cameras outnumber the cores, codec threads on
    top only add switching (3 cameras on 2 cores: 1 thread each and x264's own choice measured within
    run-to-run noise, benchmarks/results/bag_to_lerobot.json); with one camera on many cores they matter.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, cameras))


class EncoderError(RuntimeError):
    """An encoder thread failed; the message names the camera and the codec's error."""


class _CameraEncoder(threading.Thread):
    def __init__(self, key: str, path: Path, fps: int, settings: EncoderSettings, cameras: int) -> None:
        super().__init__(daemon=True, name=f"encode:{key}")
        self.key, self.path, self.fps, self.settings = key, path, fps, settings
        self.options = settings.codec_options(cameras)
        self.frames: queue.Queue = queue.Queue(maxsize=settings.queue_maxsize)
        self.cancelled = threading.Event()
        self.error: str | None = None
        self.stats: dict | None = None
        self.count = 0

    def run(self) -> None:
        try:
            self._encode()
        except Exception as exc:  # reported to the converter thread by feed_frame / finish
            self.error = f"{type(exc).__name__}: {exc}"

    def _encode(self) -> None:
        import av
        import cv2

        from ove_ros.training.lerobot_compat import auto_downsample_height_width

        container = stream = None
        tracker = PixelStats()
        sampled = 0
        last: np.ndarray | None = None
        try:
            while True:
                item = self.frames.get()
                if item is _STOP or self.cancelled.is_set():
                    break
                frame = _as_hwc_uint8(item)
                if container is None:
                    height, width = frame.shape[:2]
                    if height % 2 or width % 2:
                        raise ValueError(
                            f"{self.key}: yuv420p needs even width and height, got {width}x{height}"
                        )
                    container = av.open(str(self.path), "w")
                    stream = container.add_stream(self.settings.vcodec, self.fps, options=self.options)
                    stream.pix_fmt = "yuv420p"
                    stream.width, stream.height = width, height
                    stream.time_base = Fraction(1, self.fps)
                yuv = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)
                picture = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                picture.pts = self.count
                picture.time_base = Fraction(1, self.fps)
                for packet in stream.encode(picture):
                    container.mux(packet)
                if self.count % self.settings.stats_every == 0:
                    tracker.update(_stats_pixels(frame, auto_downsample_height_width))
                    sampled += 1
                    last = None
                else:
                    last = frame
                self.count += 1
            if self.cancelled.is_set():
                return
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
            if sampled < 2 and last is not None:
                tracker.update(_stats_pixels(last, auto_downsample_height_width))
                sampled += 1
            self.stats = tracker.get_statistics() if sampled >= 2 else None
        finally:
            if container is not None:
                container.close()


class PixelStats:
    """Running statistics of uint8 pixels per channel, from exact 256-bin counts.

    Gives what LeRobot's ``RunningQuantileStats.get_statistics`` gives for the same pixels (keys, shapes,
    dtypes; min / max / mean / std / count equal) with exact quantiles: the smallest value whose cumulative
    share reaches q. LeRobot's histograms over [min, max] only approximate them (within a grey level).
    """

    def __init__(self, quantiles: tuple[float, ...] | None = None) -> None:
        if quantiles is None:
            from ove_ros.training.lerobot_compat import DEFAULT_QUANTILES

            quantiles = tuple(DEFAULT_QUANTILES)
        self.quantiles = quantiles
        self.counts: np.ndarray | None = None  # [channels, 256]

    def update(self, pixels: np.ndarray) -> None:
        """``pixels``: uint8 ``[N, C]``."""
        if pixels.dtype != np.uint8 or pixels.ndim != 2:
            raise ValueError(f"PixelStats takes uint8 [N, C] pixels, got {pixels.dtype} {pixels.shape}")
        if self.counts is None:
            self.counts = np.zeros((pixels.shape[1], 256), dtype=np.int64)
        for c in range(pixels.shape[1]):
            self.counts[c] += np.bincount(pixels[:, c], minlength=256)

    @property
    def count(self) -> int:
        return 0 if self.counts is None else int(self.counts[0].sum())

    def get_statistics(self) -> dict[str, np.ndarray]:
        if self.count < 2:
            raise ValueError("PixelStats needs at least 2 pixels")
        counts = self.counts
        n = counts.sum(axis=1)
        values = np.arange(256, dtype=np.float64)
        mean = counts @ values / n
        variance = counts @ (values**2) / n - mean**2
        present = counts > 0
        low = np.argmax(present, axis=1)
        high = 255 - np.argmax(present[:, ::-1], axis=1)
        cumulative = np.cumsum(counts, axis=1)
        stats = {
            "min": low.astype(np.uint8),
            "max": high.astype(np.uint8),
            "mean": mean,
            "std": np.sqrt(np.maximum(0.0, variance)),
            "count": np.array([int(n[0])]),
        }
        for q in self.quantiles:
            target = q * n
            stats[f"q{int(round(q * 100)):02d}"] = np.array(
                [float(np.searchsorted(cumulative[c], target[c])) for c in range(len(n))]
            )
        return stats


def _as_hwc_uint8(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
        image = image.transpose(1, 2, 0)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def _stats_pixels(frame: np.ndarray, downsample) -> np.ndarray:
    """Pixels for the image statistics: LeRobot's own downsampling (~150 px a side), then a regular stride
    down to ~5000 pixels, which keeps the histogram update small next to encoding the frame."""
    small = downsample(frame.transpose(2, 0, 1))  # CHW, as LeRobot's compute_episode_stats sees images
    stride = max(1, math.ceil(math.sqrt(small.shape[1] * small.shape[2] / STATS_PIXELS)))
    return small[:, ::stride, ::stride].transpose(1, 2, 0).reshape(-1, small.shape[0])


class StreamingVideoWriter:
    """Drop-in for LeRobot's ``StreamingVideoEncoder`` that never drops frames (see the module docstring)."""

    def __init__(self, fps: int, settings: EncoderSettings | None = None) -> None:
        self.fps = int(fps)
        self.settings = settings or EncoderSettings()
        if self.settings.stats_every < 1 or self.settings.queue_maxsize < 1 or self.settings.gop < 1:
            raise ValueError(
                f"EncoderSettings: stats_every, queue_maxsize and gop must be >= 1: {self.settings}"
            )
        self._threads: dict[str, _CameraEncoder] = {}
        self._temp_dirs: list[Path] = []

    def start_episode(self, video_keys: list[str], temp_dir: Path) -> None:
        self.cancel_episode()
        for key in video_keys:
            folder = Path(tempfile.mkdtemp(dir=temp_dir, prefix=".encode-"))
            self._temp_dirs.append(folder)
            path = folder / f"{key.replace('/', '_')}.mp4"
            thread = _CameraEncoder(key, path, self.fps, self.settings, len(video_keys))
            thread.start()
            self._threads[key] = thread

    def feed_frame(self, video_key: str, image: np.ndarray) -> None:
        thread = self._threads.get(video_key)
        if thread is None:
            raise RuntimeError(f"feed_frame({video_key!r}) outside an episode or for an unknown camera")
        while True:
            self._raise_if_failed(thread)
            try:
                # The converter hands over a fresh array per frame and never touches it again: no copy.
                thread.frames.put(image, timeout=_PUT_POLL_S)
                return
            except queue.Full:
                continue

    def finish_episode(self) -> dict[str, tuple[Path, dict | None]]:
        if not self._threads:
            raise RuntimeError("finish_episode() without an active episode")
        for thread in self._threads.values():
            self._put_stop(thread)
        results = {}
        for key, thread in self._threads.items():
            thread.join()
            self._raise_if_failed(thread)
            results[key] = (thread.path, thread.stats)
        self._threads = {}
        # The caller moves the mp4 files into the dataset; their empty folders go at the next episode/close.
        return results

    def cancel_episode(self) -> None:
        for thread in self._threads.values():
            thread.cancelled.set()
            self._put_stop(thread)
        for thread in self._threads.values():
            thread.join()
        self._threads = {}
        self._remove_temp_dirs()

    def close(self) -> None:
        self.cancel_episode()

    def _put_stop(self, thread: _CameraEncoder) -> None:
        while thread.is_alive():
            try:
                thread.frames.put(_STOP, timeout=_PUT_POLL_S)
                return
            except queue.Full:
                if thread.cancelled.is_set():  # drain so the sentinel fits; the frames are being discarded
                    with contextlib.suppress(queue.Empty):
                        thread.frames.get_nowait()

    def _raise_if_failed(self, thread: _CameraEncoder) -> None:
        if thread.error is not None:
            raise EncoderError(
                f"video encoder for {thread.key} ({self.settings.vcodec}, preset {self.settings.preset}) "
                f"failed: {thread.error}"
            )
        if not thread.is_alive() and thread.frames.qsize() and not thread.cancelled.is_set():
            raise EncoderError(f"video encoder for {thread.key} stopped unexpectedly")

    def _remove_temp_dirs(self) -> None:
        for folder in self._temp_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._temp_dirs = []
