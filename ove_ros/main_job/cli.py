# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The main job on a laptop: simulated robot -> rosbag2 -> LeRobot dataset -> training -> bundle -> live node.

    python -m ove_ros.main_job [--output outputs/demo] [--episodes 48] [--heldout 12] [--train-steps 800]
    python -m ove_ros.main_job real [--data ../shared/data/g1_pick_bottle_mini] [--output outputs/demo_real]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ove_ros.main_job.config import DEMO_TRAIN_CONFIG, DemoConfig, RealConfig
from ove_ros.main_job.real_mode import run_real
from ove_ros.main_job.sim_mode import run_demo
from ove_ros.main_job.stages import StageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ove_ros.main_job", description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="sim", choices=["sim", "real"],
                        help="sim: the full ROS 2 pipeline on MetaWorld; real: train/evaluate on the G1 data")
    parser.add_argument("--output", type=Path, help="output folder (replaced); default outputs/demo[_real]")
    parser.add_argument("--cache-dir", type=Path, default=DemoConfig.cache_dir)
    parser.add_argument("--no-cache", action="store_true", help="regenerate bags, dataset and training run")
    parser.add_argument("--episodes", type=int, default=DemoConfig.episodes, help="training episodes (sim)")
    parser.add_argument("--heldout", type=int, help=f"held-out episodes (sim: {DemoConfig.heldout} live "
                        f"episodes; real: {RealConfig.heldout})")
    parser.add_argument("--tasks", nargs="+", default=list(DemoConfig.tasks))
    parser.add_argument("--max-steps", type=int, default=DemoConfig.max_steps,
                        help="frames per episode at most (sim)")
    parser.add_argument("--image-size", type=int, default=DemoConfig.image_size)
    parser.add_argument("--train-steps", type=int, help=f"optimizer steps (default {DemoConfig.train_steps} "
                        f"sim, {RealConfig.train_steps} real)")
    parser.add_argument("--rate", type=float, default=DemoConfig.live_rate_hz,
                        help="frames per second of the live run (sim)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default=DemoConfig.storage)
    parser.add_argument("--data", type=Path, help="real mode: the LeRobot v2.1/v3 dataset folder")
    parser.add_argument("--train-config", default=DEMO_TRAIN_CONFIG)
    parser.add_argument("overrides", nargs="*", default=[], help="training overrides key=value")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.mode == "real":
            real = RealConfig(output=args.output or Path("outputs/demo_real"), cache_dir=args.cache_dir,
                              train_config=args.train_config, train_overrides=tuple(args.overrides),
                              use_cache=not args.no_cache)
            if args.data:
                real.data = args.data
            if args.heldout:
                real.heldout = args.heldout
            if args.train_steps:
                real.train_steps = args.train_steps
            run_real(real)
        else:
            run_demo(DemoConfig(
                output=args.output or Path("outputs/demo"), cache_dir=args.cache_dir,
                use_cache=not args.no_cache,
                tasks=tuple(args.tasks), image_size=args.image_size, max_steps=args.max_steps,
                episodes=args.episodes, heldout=args.heldout or DemoConfig.heldout,
                train_steps=args.train_steps or DemoConfig.train_steps,
                train_config=args.train_config, train_overrides=tuple(args.overrides), live_rate_hz=args.rate,
                storage=args.storage,
            ))
    except (StageError, FileNotFoundError, ValueError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0
