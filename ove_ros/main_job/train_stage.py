# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Stages 2-4 settings and runs: the bag conversion config, training in a subprocess, and the deploy bundle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ove_ros.main_job.config import REPO_ROOT, DemoConfig
from ove_ros.main_job.stages import StageError


def conversion_config(cfg: DemoConfig):
    from ove_ros.sim.episodes import ROBOT_JOINTS
    from ove_ros.training.bag_config import (
        BagConversionConfig,
        CameraConfig,
        EpisodeConfig,
        JointStateConfig,
        VideoConfig,
    )

    return BagConversionConfig(
        fps=80,  # one tick per simulated frame (MetaWorld: 12.5 ms)
        cameras=[CameraConfig(name=c, topic=f"/camera/{c}/image_raw") for c in cfg.cameras],
        state=JointStateConfig(topic="/joint_states", joints=list(ROBOT_JOINTS)),
        episodes=EpisodeConfig(events_topic="/episode_events", split="events"),
        video=VideoConfig(use_videos=False),  # small PNG frames: decoding them while training is cheap
        robot_type="sawyer_metaworld",
        progress=True,
    )


def train_and_bundle(cfg: DemoConfig, dataset: Path, run_root: Path, run_name: str, bundle: Path,
                     logs: Path, extra: Sequence[str] = ()) -> tuple[Path, dict[str, Any]]:
    """``ove_ros.training.train`` (subprocess, one torch thread), then ``ove_ros.training.convert``; returns
    the bundle."""
    from ove_ros.training import checkpoint as ckpt

    run_dir = run_root / "ove_ros" / run_name
    latest = ckpt.latest_checkpoint(run_dir) if run_dir.is_dir() else None
    if latest is not None and int(ckpt.read_meta(latest).get("step", -1)) != cfg.train_steps:
        latest = None  # an interrupted run: train again
    if latest is None or not cfg.use_cache:
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [sys.executable, "-m", "ove_ros.training.train", f"config={cfg.train_config}",
               f"run_name={run_name}",
               f"output_root={run_root}", f"data.root={dataset}", f"training.steps={cfg.train_steps}",
               "training.num_threads=1", *extra, *cfg.train_overrides]
        env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
        log = logs / "train.log"
        with log.open("w") as f:  # tqdm's bar goes to the terminal, the log keeps everything else
            code = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=f, stderr=None).returncode
        if code != 0:
            raise StageError(f"training failed (exit {code}); see {log}")
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is None:
            raise StageError(f"training wrote no checkpoint under {run_dir}; see {log}")
    meta = ckpt.read_meta(latest)
    metrics = {k: v for k, v in meta.get("metrics", {}).items() if isinstance(v, (int, float))}
    from ove_ros.training.convert import convert

    shutil.rmtree(bundle, ignore_errors=True)
    return convert(latest, bundle), {"checkpoint": str(latest), "val_metrics": metrics}
