# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The main job on a laptop: simulated robot -> rosbag2 -> LeRobot dataset -> training -> bundle -> live node.

    python -m ove_ros.main_job [output=outputs/demo] [episodes=48] [heldout=12] [train_steps=800]
    python -m ove_ros.main_job real [data=../shared/data/g1_pick_bottle_mini] [output=outputs/demo_real]

The keys are those of ``DemoConfig`` (sim) and ``RealConfig`` (real), which hold every default; a
``key=value`` whose key they lack is a training override (``training.learning_rate=3e-4``), checked against
the training config before any stage starts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ove_ros import typed_cli, typed_config
from ove_ros.main_job.config import REPO_ROOT, DemoConfig, RealConfig
from ove_ros.main_job.real_mode import run_real
from ove_ros.main_job.sim_mode import run_demo
from ove_ros.main_job.stages import StageError
from ove_ros.typed_config import ConfigError

MODES = {"sim": DemoConfig, "real": RealConfig}
PROG = "python -m ove_ros.main_job"
USAGE = f"usage: {PROG} [sim|real] [config=<yaml>] [key=value ...] [training overrides key=value ...]"
INTRO = (
    "sim (default): the full ROS 2 pipeline on MetaWorld; real: train and evaluate on the G1 episodes.\n"
    "config=<yaml>: a file of these keys, under the key=value arguments.\n"
    "A key=value whose key is not listed is passed to training (e.g. training.learning_rate=3e-4)."
)
RENAMED = {"rate": "live_rate_hz"}  # older flag names
SWITCHES = {"--no-cache": "use_cache=false"}


def help_page() -> str:
    """Both modes' keys with their defaults, and the older spellings."""
    sim = typed_cli.help_page(DemoConfig, USAGE, INTRO, positional=["mode"], renamed=RENAMED,
                              switches=SWITCHES)
    real = typed_config.help_text(RealConfig, f"\nreal mode ({PROG} real key=value ...):")
    return f"{sim}\n{real}"


def split_mode(argv: Sequence[str]) -> tuple[str, list[str]]:
    """The mode (a bare ``sim``/``real`` or ``mode=...``; default sim) and the other arguments."""
    args = list(argv)
    for i, arg in enumerate(args):
        after_flag = i > 0 and args[i - 1].startswith("--") and "=" not in args[i - 1]
        if arg in MODES and not after_flag:
            return arg, args[:i] + args[i + 1:]
        if arg.startswith("mode="):
            mode = arg.partition("=")[2]
            if mode not in MODES:
                raise ConfigError(f"mode must be one of {tuple(MODES)}, got {mode!r}")
            return mode, args[:i] + args[i + 1:]
    return "sim", args


def parse_args(argv: Sequence[str] | None = None) -> DemoConfig | RealConfig:
    """argv -> the checked config of its mode (``ConfigError`` names a bad key and what is allowed)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(help_page())
        raise SystemExit(0)
    mode, args = split_mode(args)
    return typed_cli.parse(MODES[mode], args, USAGE, INTRO, renamed=RENAMED, switches=SWITCHES,
                           config_file=True, rest="train_overrides", what=f"main job options ({mode} mode)",
                           example="episodes=12")


def check_training_overrides(cfg: DemoConfig | RealConfig) -> None:
    """Read the training config with the overrides now (``ConfigError`` names a bad key), not when the
    training stage starts minutes later; relative paths as the stage reads them, from the repository."""
    from ove_ros.training.config import load_config

    path = Path(cfg.train_config)
    model = cfg.training_args() if isinstance(cfg, DemoConfig) else []
    load_config(path if path.is_absolute() else REPO_ROOT / path, [*model, *cfg.train_overrides],
                require_run_name=False, what="training overrides")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        check_training_overrides(cfg)
    except ConfigError as exc:
        typed_cli.fail(exc)
    try:
        if isinstance(cfg, RealConfig):
            run_real(cfg)
        else:
            run_demo(cfg)
    except (StageError, FileNotFoundError, ValueError) as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    return 0
