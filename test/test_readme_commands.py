# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Every command in README.md runs as written.

The code blocks are read from the README itself: each bash command is either run (in a scratch folder whose
``training`` link points at this checkout's, so relative paths resolve as from the repository root) or named
in SKIPPED with the reason it cannot run here. A command that is neither fails the test, so a new README
command needs a rule. Commands that train run in a short form: 2-3 steps instead of hundreds (the step
numbers in the checkpoint names shrink with them), one torch thread, no W&B. The W&B sweep commands run
without a W&B account and must end in the one-line message that says what is missing.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ove_ros.training import ros_types

from bag_fixtures import BagSpec, CameraSpec, EventSpec, write_bag

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"

# Commands (by their start) that cannot run on this machine, with the reason.
SKIPPED = {
    "make demo": "the whole product end to end (minutes); test_main_job.py covers it",
    "make test": "is this test suite itself",
    "mkdir -p ~/ove_ws/src": "workspace set-up on a ROS 2 install (rosdep, colcon, ros2 launch are not here)",
    "git clone": "workspace set-up on a ROS 2 install",
    "cd ~/ove_ws": "workspace set-up on a ROS 2 install",
    "rosdep install": "rosdep needs a ROS 2 install with apt",
    "pip install -r src/ove_ros/requirements/runtime.txt": "workspace set-up on a ROS 2 install",
    "colcon build --packages-select ove_ros": "workspace set-up; scripts/setup.sh runs the same colcon build",
    "source install/setup.bash": "workspace set-up on a ROS 2 install",
    "ros2 launch": "launch/launch_ros/ros2cli have no PyPI wheels; test_node_process.py starts the "
    "node instead",
    "ros2 run": "ros2cli has no PyPI wheel; test_node_process.py starts the same executable",
    "accelerate launch -m ove_ros.training.train config=training/configs/full.yaml": (
        "the full preset (SigLIP so400m + Gemma-3 270M) needs a GPU and a real dataset (data.repo_id)"
    ),
    "accelerate launch --config_file": "8 GPUs or 2 machines; test_multiprocess_training.py runs both "
    "configs as two CPU processes",
    "docker build": "no container daemon here; the Dockerfile installs what the README's training "
    "install does",
    "CLOUD=": "a shell variable for the cloud commands below",
    "python -m ove_ros.training.cloud.": "submits to Vertex AI (no cloud here); test_cloud_jobs.py runs the "
    "launchers with --dry-run and checks the requests field by field",
}

# The short form of the training commands: the README's step counts shrink to 2 / 1 / 3.
SHORT = {
    "training.num_steps=300": "training.num_steps=2",
    "checkpoint_200.safetensors": "checkpoint_1.safetensors",
    "training.num_steps=600": "training.num_steps=3",
    "checkpoint_600.safetensors": "checkpoint_3.safetensors",
    "sweep.n_trials=20": "sweep.n_trials=1",
    "<SWEEP_ID>": "abc123",
}
QUICK = [
    "training.save_every=1", "training.warmup_steps=0", "training.val_every=0", "training.log_every=1",
    "data.num_workers=0", "training.num_threads=1", "wandb.mode=disabled",
]
WANDB_SWEEP = ("sweep_config=", "sweep_id=")


def readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), flags=re.S)


def bash_commands() -> list[str]:
    """Every command of the README's bash blocks, continuation lines joined and comments dropped."""
    commands = []
    for block in readme_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(" ".join(words))
    return commands


def skip_reason(command: str) -> str | None:
    return next((why for start, why in SKIPPED.items() if command.startswith(start)), None)


def short_form(command: str) -> str:
    for long, short in SHORT.items():
        command = command.replace(long, short)
    return command


def write_fixture_bags(root: Path) -> None:
    """Two recordings with the topics of training/configs/bag_example.yaml (the README's bag command)."""
    joints = tuple(f"right_j{i}" for i in range(7))
    cams = [
        CameraSpec(name="corner", topic="/cam0/image_raw"), CameraSpec(name="wrist", topic="/cam1/image_raw")
    ]
    for i, outcome in enumerate((ros_types.OUTCOME_SUCCESS, ros_types.OUTCOME_FAILURE)):
        events = [
            EventSpec(0.0, ros_types.EVENT_START, task="pick", episode_id=f"e{i}"),
            EventSpec(0.9, ros_types.EVENT_END, outcome=outcome, task="pick", episode_id=f"e{i}"),
        ]
        spec = BagSpec(cameras=cams, joint_names=joints, action_topic=None, events=events)
        write_bag(root / f"ep_{i}", spec)


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    words = shlex.split(command)
    expanded: list[str] = []
    for w in words:  # the shell's glob, for `--bags bags/ep_*`
        expanded += sorted(str(p.relative_to(cwd)) for p in cwd.glob(w)) if "*" in w else [w]
    if expanded[0] == "python":
        expanded[0] = sys.executable
    return subprocess.run(expanded, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "training").symlink_to(REPO_ROOT / "training")
    write_fixture_bags(tmp_path / "bags")
    return tmp_path


def _env(tmp_path: Path, wandb_account: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    if wandb_account:
        env["WANDB_MODE"] = "disabled"
    else:  # a machine where nobody logged in to W&B
        for key in ("WANDB_API_KEY", "WANDB_MODE"):
            env.pop(key, None)
        env["NETRC"] = str(tmp_path / "no-netrc")
    return env


def test_every_readme_command_has_a_rule():
    commands = bash_commands()
    # The parser found the blocks.
    assert any(c.startswith("python -m ove_ros.training.train") for c in commands)
    runnable = ("python -m ove_ros.training.",)
    unknown = [c for c in commands if skip_reason(c) is None and not c.startswith(runnable)]
    assert not unknown, f"README commands without a rule in this test: {unknown}"


@pytest.mark.slow
def test_readme_training_commands_run_as_written(workdir: Path):
    done = []
    for command in bash_commands():
        if skip_reason(command) is not None:
            continue
        cmd = short_form(command)
        wandb_sweep = cmd.startswith("python -m ove_ros.training.sweep") and any(
            k in cmd for k in WANDB_SWEEP
        )
        if cmd.startswith("python -m ove_ros.training.train"):
            cmd = f"{cmd} {' '.join(QUICK)}"
        elif cmd.startswith("python -m ove_ros.training.sweep") and "sweep.backend=optuna" in cmd:
            cmd = f"{cmd} {' '.join(QUICK)} training.steps=2"
        result = run(cmd, workdir, _env(workdir, wandb_account=not wandb_sweep))
        if wandb_sweep:
            assert result.returncode == 1, (cmd, result.stdout, result.stderr)
            err = result.stderr.strip().splitlines()
            assert len(err) == 1 and "WANDB_API_KEY" in err[0], (cmd, err)
            assert "Traceback" not in result.stderr
        else:
            assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        done.append(command)
    run_dir = workdir / "outputs" / "ove_ros" / "my_run"
    assert (run_dir / "checkpoint_3.safetensors").is_file()
    assert (run_dir / "checkpoint_ema.safetensors").is_file()
    assert (workdir / "bundles" / "my_run" / "model.safetensors").is_file()
    from ove_ros.bundle import ensemble_members

    assert ensemble_members(workdir / "bundles" / "my_run_x2") == 2
    assert (workdir / "outputs" / "data" / "my_robot_adv" / "meta" / "advantage.json").is_file()
    assert (workdir / "datasets" / "my_robot" / "meta" / "info.json").is_file()
    assert len(done) >= 12

    # The Python blocks, in the same folder (they read what the commands wrote).
    for block in readme_blocks("python"):
        result = subprocess.run(
            [sys.executable, "-c", block], cwd=workdir, env=_env(workdir), capture_output=True, text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"{block}\n{result.stderr[-5000:]}"
