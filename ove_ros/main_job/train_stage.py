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


def member_seed(cfg: DemoConfig, args: Sequence[str], member: int) -> int:
    """Training seed of ensemble member ``member``: the run's own seed (the training config's, or the last
    ``training.seed=`` of ``args``) plus ``member``, so member 0 is the single model of the same settings."""
    seeds = [a.split("=", 1)[1] for a in args if a.startswith("training.seed=")]
    if seeds:
        return int(seeds[-1]) + member
    from ove_ros.training.config import load_config

    path = Path(cfg.train_config)
    return load_config(path if path.is_absolute() else REPO_ROOT / path, [], require_run_name=False,
                       what="training config").training.seed + member


def train_run(cfg: DemoConfig, dataset: Path, run_dir: Path, args: Sequence[str], log: Path) -> Path:
    """One ``ove_ros.training.train`` run (subprocess, one torch thread), or its cached checkpoint."""
    from ove_ros.training import checkpoint as ckpt

    latest = ckpt.latest_checkpoint(run_dir) if run_dir.is_dir() else None
    if latest is not None and int(ckpt.read_meta(latest).get("step", -1)) != cfg.train_steps:
        latest = None  # an interrupted run: train again
    if latest is None or not cfg.use_cache:
        shutil.rmtree(run_dir, ignore_errors=True)
        cmd = [sys.executable, "-m", "ove_ros.training.train", f"config={cfg.train_config}",
               f"run_name={run_dir.name}", f"output_root={run_dir.parents[1]}", f"data.root={dataset}",
               f"training.steps={cfg.train_steps}", "training.num_threads=1", *args]
        env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
        with log.open("w") as f:  # tqdm's bar goes to the terminal, the log keeps everything else
            code = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=f, stderr=None).returncode
        if code != 0:
            raise StageError(f"training failed (exit {code}); see {log}")
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is None:
            raise StageError(f"training wrote no checkpoint under {run_dir}; see {log}")
    return latest


def train_and_bundle(cfg: DemoConfig, dataset: Path, run_root: Path, run_name: str, bundle: Path,
                     logs: Path, extra: Sequence[str] = ()) -> tuple[Path, dict[str, Any]]:
    """``ove_ros.training.train`` for each of the ``cfg.ensemble`` members (one after the other), then
    ``ove_ros.training.convert`` into one bundle; returns the bundle and the training's record.

    Member 0 is the run ``run_name`` with the settings as given; member k trains as ``<run_name>_m<k>``
    with the training seed k above member 0's (each is cached on its own)."""
    from ove_ros.training import checkpoint as ckpt
    from ove_ros.training.convert import convert

    args = [*extra, *cfg.train_overrides]
    checkpoints = []
    for k in range(cfg.ensemble):
        name, log = (run_name, "train.log") if k == 0 else (f"{run_name}_m{k}", f"train_m{k}.log")
        member_args = args if k == 0 else [*args, f"training.seed={member_seed(cfg, args, k)}"]
        checkpoints.append(train_run(cfg, dataset, run_root / "ove_ros" / name, member_args, logs / log))
    meta = ckpt.read_meta(checkpoints[0])
    metrics = {k: v for k, v in meta.get("metrics", {}).items() if isinstance(v, (int, float))}
    shutil.rmtree(bundle, ignore_errors=True)
    info: dict[str, Any] = {"checkpoint": str(checkpoints[0]), "val_metrics": metrics}
    if len(checkpoints) > 1:
        info["members"] = [str(c) for c in checkpoints]
    return convert(checkpoints[0], bundle, members=checkpoints[1:]), info
