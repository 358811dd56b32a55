# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Small synthetic LeRobot v3 datasets whose values are learnable, for tests, benchmarks and smoke runs.

Every frame shows the episode's outcome and progress: the red channel is high in failed episodes, the green
channel and state joint 0 grow with progress ``t / (T - 1)``. A model that reads them can predict the
Monte Carlo value exactly. Rewards follow ARCHITECTURE.md (0 everywhere, +1/-1 on the last frame) unless
``reward_style="dense"`` (a precomputed per-frame reward) or ``"none"`` (no reward/is_done columns).

    python -m ove_ros.training.synthetic root=/tmp/syn num_episodes=12   (--help: every key)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ove_ros import typed_cli
from ove_ros.typed_cli import REQUIRED
from ove_ros.typed_config import setting

REWARD_STYLES = ("outcome", "dense", "none")
REPO_ID = "synthetic/values"


@dataclass
class SyntheticSpec:
    """Shape and content of a synthetic dataset."""

    num_episodes: int = setting(8, "Number of episodes (older spelling --episodes).", ge=1)
    min_length: int = setting(6, "Shortest episode (frames).", ge=1)
    max_length: int = setting(12, "Longest episode (frames).", ge=1)
    image_size: int = setting(32, "Square camera frames of this size.", ge=1)
    cameras: tuple[str, ...] = setting(("cam_high",), "Camera short names.")
    state_dim: int = setting(4, "Joints in observation.state.", ge=1)
    tasks: tuple[str, ...] = setting(("pick the bottle",), "Tasks, cycled over episodes.")
    failure_every: int = setting(3, "Every k-th episode fails (0 = none fail).", ge=0)
    reward_style: str = setting("outcome", "Per-frame reward columns.", choices=REWARD_STYLES)
    fps: int = setting(10, "Frames per second.", ge=1)
    use_videos: bool = setting(False, "Store cameras as MP4, else PNG in parquet (older spelling --videos).")
    vcodec: str = setting("h264", "Video codec when use_videos.")
    seed: int = setting(0, "Seed of lengths and noise.")


@dataclass
class SyntheticJob(SyntheticSpec):
    """The command line: where to write, and the spec."""

    root: str = setting(REQUIRED, "Required. Output directory (must not exist).")
    repo_id: str = setting(REPO_ID, "Dataset id.")

    def spec(self) -> SyntheticSpec:
        return SyntheticSpec(**{f.name: getattr(self, f.name) for f in fields(SyntheticSpec)})


def episode_plan(spec: SyntheticSpec) -> list[tuple[int, bool, str]]:
    """(length, success, task) of every episode."""
    rng = np.random.default_rng(spec.seed)
    plan = []
    for ep in range(spec.num_episodes):
        length = int(rng.integers(spec.min_length, spec.max_length + 1))
        success = not (spec.failure_every and (ep + 1) % spec.failure_every == 0)
        plan.append((length, success, spec.tasks[ep % len(spec.tasks)]))
    return plan


def dense_rewards(length: int, success: bool) -> np.ndarray:
    """The per-frame reward written in ``reward_style="dense"``: -0.5 per step, +2 / -3 at the end."""
    r = np.full(length, -0.5, dtype=np.float32)
    r[-1] = 2.0 if success else -3.0
    return r


def frame_image(
    size: int, progress: float, success: bool, camera: int, rng: np.random.Generator
) -> np.ndarray:
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[..., 0] = 40 if success else 210
    img[..., 1] = int(round(20 + 215 * progress))
    img[..., 2] = 60 + 40 * camera
    noise = rng.integers(-6, 7, size=img.shape)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _features(spec: SyntheticSpec) -> dict[str, dict[str, Any]]:
    kind = "video" if spec.use_videos else "image"
    feats: dict[str, dict[str, Any]] = {
        f"observation.images.{cam}": {
            "dtype": kind,
            "shape": (spec.image_size, spec.image_size, 3),
            "names": ["height", "width", "channels"],
        }
        for cam in spec.cameras
    }
    feats["observation.state"] = {
        "dtype": "float32",
        "shape": (spec.state_dim,),
        "names": [f"joint_{i}" for i in range(spec.state_dim)],
    }
    feats["action"] = {
        "dtype": "float32",
        "shape": (spec.state_dim,),
        "names": [f"joint_{i}" for i in range(spec.state_dim)],
    }
    if spec.reward_style != "none":
        feats["reward"] = {"dtype": "float32", "shape": (1,), "names": None}
        feats["is_done"] = {"dtype": "bool", "shape": (1,), "names": None}
    return feats


def squeeze_scalar_features(dataset: Any) -> None:
    """Store ``[1]``-shaped frame values as 0-d arrays before ``save_episode``.

    lerobot 0.4.4 stacks ``[1]`` values into ``[T, 1]`` and then encodes each row with ``float(row)``, which
    NumPy >= 2.4 rejects ("only 0-dimensional arrays can be converted to Python scalars"); 0-d values stack to
    ``[T]`` and encode as scalars, which is the on-disk layout lerobot expects for ``[1]`` features.
    """
    buffer = dataset.episode_buffer
    for key, ft in dataset.features.items():
        if (
            tuple(ft.get("shape", ())) == (1,)
            and ft["dtype"] not in ("image", "video", "string")
            and key in buffer
        ):
            values = buffer[key]
            if isinstance(values, list) and values and isinstance(values[0], np.ndarray):
                buffer[key] = [np.asarray(v).reshape(()) for v in values]


def make_synthetic_dataset(
    root: str | Path, repo_id: str = REPO_ID, spec: SyntheticSpec | None = None
) -> Path:
    """Write a synthetic LeRobot v3 dataset to ``root`` (atomically: built beside it, then renamed)."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    spec = spec or SyntheticSpec()
    if spec.reward_style not in REWARD_STYLES:
        raise ValueError(f"reward_style {spec.reward_style!r}; choose one of {REWARD_STYLES}")
    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} already exists")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    build = staging / "ds"
    try:
        ds = LeRobotDataset.create(
            repo_id,
            fps=spec.fps,
            features=_features(spec),
            root=build,
            use_videos=spec.use_videos,
            vcodec=spec.vcodec,
        )
        rng = np.random.default_rng(spec.seed + 1)
        for length, success, task in episode_plan(spec):
            rewards = dense_rewards(length, success)
            for t in range(length):
                progress = t / max(length - 1, 1)
                state = rng.normal(0.0, 0.1, size=spec.state_dim).astype(np.float32)
                state[0] = progress
                frame: dict[str, Any] = {
                    f"observation.images.{cam}": frame_image(spec.image_size, progress, success, c, rng)
                    for c, cam in enumerate(spec.cameras)
                }
                frame["observation.state"] = state
                frame["action"] = state.copy()
                frame["task"] = task
                if spec.reward_style != "none":
                    last = t == length - 1
                    if spec.reward_style == "dense":
                        r = float(rewards[t])
                    else:
                        r = (1.0 if success else -1.0) if last else 0.0
                    frame["reward"] = np.array([r], dtype=np.float32)
                    frame["is_done"] = np.array([last], dtype=bool)
                ds.add_frame(frame)
            squeeze_scalar_features(ds)
            ds.save_episode()
        ds.finalize()
        shutil.rmtree(build / "images", ignore_errors=True)
        build.replace(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


USAGE = "usage: python -m ove_ros.training.synthetic root=<dir> [config=<yaml>] [key=value ...]"
RENAMED = {"episodes": "num_episodes", "videos": "use_videos"}  # the older flag names


def main(argv: Sequence[str] | None = None) -> None:
    job = typed_cli.parse_or_exit(SyntheticJob, argv, USAGE, __doc__.splitlines()[0], renamed=RENAMED,
                                  config_file=True, what="synthetic options", example="num_episodes=12")
    try:
        path = make_synthetic_dataset(job.root, job.repo_id, job.spec())
    except FileExistsError as exc:
        typed_cli.fail(f"{exc}; choose another root=<dir>")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
