# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Real-data mode: train on the G1 episodes but the last few, evaluate on those.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ove_ros.main_job.config import REPO_ROOT, DemoConfig, RealConfig, config_hash, jsonable
from ove_ros.main_job.reencode import training_copy
from ove_ros.main_job.stages import StageError, Stages
from ove_ros.main_job.train_stage import train_and_bundle


def prepare_real_dataset(cfg: RealConfig) -> tuple[Path, str, int]:
    """A v3 copy of the v2.1 dataset (converted once, cached); returns (root, repo_id, episodes)."""
    info = json.loads((cfg.data / "meta" / "info.json").read_text())
    repo_id = f"local/{cfg.data.name}"
    key = config_hash("real", str(cfg.data.resolve()), info.get("total_frames"), info.get("codebase_version"))
    parent = cfg.cache_dir.resolve() / "real" / key
    root = parent / repo_id
    if not (cfg.use_cache and (root / "meta" / "info.json").is_file()
            and json.loads((root / "meta" / "info.json").read_text())["codebase_version"].startswith("v3")):
        shutil.rmtree(parent, ignore_errors=True)
        shutil.copytree(cfg.data, root)
        if not str(info.get("codebase_version", "")).startswith("v3"):
            from lerobot.datasets.v30.convert_dataset_v21_to_v30 import convert_dataset

            convert_dataset(repo_id, root=parent, push_to_hub=False)
    total = int(json.loads((root / "meta" / "info.json").read_text())["total_episodes"])
    return root, repo_id, total


def run_real(cfg: RealConfig) -> dict[str, Any]:
    """Train on the real episodes but the last ``heldout``, report EV on those."""
    from rich.console import Console

    console = Console()
    started = time.perf_counter()
    out = cfg.output.resolve()
    shutil.rmtree(out, ignore_errors=True)
    logs = out / "logs"
    logs.mkdir(parents=True)
    stages = Stages(console)
    root, repo_id, total = stages.run("1 v2.1 -> v3 copy of the real dataset",
                                      lambda: prepare_real_dataset(cfg),
                                      lambda r: f"{r[2]} episodes at {r[0]}")
    heldout = list(range(total - cfg.heldout, total))
    small = root.parents[1] / f"w{cfg.image_width}" / repo_id

    def shrink() -> Path:
        if cfg.use_cache and (small / "meta" / "info.json").is_file():
            return small
        return training_copy(root, repo_id, small, cfg.image_width)

    stages.run("2 training-resolution copy (one decoding pass)", shrink, lambda p: str(p))
    demo_cfg = DemoConfig(train_steps=cfg.train_steps, train_config=cfg.train_config,
                          train_overrides=cfg.train_overrides, use_cache=cfg.use_cache, ensemble=1)
    extra = [f"data.repo_id={repo_id}", f"data.val_episodes=[{','.join(map(str, heldout))}]"]
    run_name = "real_" + config_hash(str(small), cfg.train_steps, (REPO_ROOT / cfg.train_config).read_text(),
                                     list(cfg.train_overrides))
    bundle, train_info = stages.run(
        "3 train and bundle", lambda: train_and_bundle(demo_cfg, small, cfg.cache_dir.resolve() / "runs",
                                                       run_name, out / "bundle", logs, extra),
        lambda r: r[1]["checkpoint"])

    def evaluate() -> dict[str, Any]:
        cmd = [sys.executable, "-m", "ove_ros.training.evaluate", f"config={cfg.train_config}",
               f"data.root={small}",
               *extra, f"evaluate.checkpoint={train_info['checkpoint']}", "evaluate.split=val",
               f"evaluate.output_dir={out / 'eval'}", "evaluate.video_episodes=1",
               f"evaluate.plot_episodes={cfg.heldout}", "training.num_threads=1"]
        with (logs / "evaluate.log").open("w") as f:
            code = subprocess.run(cmd, cwd=REPO_ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=f,
                                  stderr=subprocess.STDOUT).returncode
        if code != 0:
            raise StageError(f"evaluation failed; see {logs / 'evaluate.log'}")
        return json.loads((out / "eval" / "metrics.json").read_text())

    metrics = stages.run("4 evaluate held-out episodes", evaluate,
                         lambda m: f"EV {m.get('ev', float('nan')):.3f}")
    summary = {"mode": "real", "dataset": str(root), "training_copy": str(small), "heldout_episodes": heldout,
               "bundle": str(bundle),
               "training": train_info, "heldout_metrics": metrics, "stages": stages.times,
               "total_seconds": time.perf_counter() - started}
    (out / "summary.json").write_text(json.dumps(jsonable(summary), indent=2))
    console.print(f"real data: EV on held-out episodes {heldout} = {metrics.get('ev', float('nan')):.4f} "
                  f"(MAE {metrics.get('mae', float('nan')):.4f}); total {summary['total_seconds']:.0f} s.\n"
                  f"Look at {out / 'summary.json'} and {out / 'eval'} (plots, video).")
    return summary
