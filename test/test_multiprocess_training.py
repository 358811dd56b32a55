# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Data-parallel training through the shipped accelerate configs, on CPU (gloo): two processes with half
the per-process batch follow the one-process run (same global batch): losses, logged metrics, validation,
checkpoints, EMA and resume. The multi-node config runs as two single-process "machines" on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ove_ros.training import checkpoint as ckpt
from ove_ros.training.train import train

from dataset_fixtures import learnable_dataset, synthetic_dataset, tiny_config  # noqa: F401

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = REPO / "training" / "configs" / "accelerate"
TINY = REPO / "training" / "configs" / "tiny.yaml"
GLOBAL_BATCH = 8
SETTINGS = {
    "training.steps": 6,
    "training.warmup_steps": 2,
    "training.learning_rate": 2e-3,
    "training.save_every": 3,
    "training.keep_last": 5,
    "training.val_every": 3,
    "training.ema_decay": 0.9,
    "training.gradient_accumulation_steps": 1,
    "data.val_episodes": [0, 1],
}
LIMIT_S = 900  # generous: several torch processes on a shared 2-core machine


def _value(v):
    return "[" + ",".join(map(str, v)) + "]" if isinstance(v, list) else str(v)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(output_root: Path, dataset: Path, run_name: str, per_process_batch: int, **extra) -> list[str]:
    keys = {
        **SETTINGS,
        "output_root": output_root,
        "data.root": dataset,
        "data.repo_id": "synthetic/values",
        "data.num_workers": 0,
        "data.cache_dir": output_root / "cache",
        "wandb.mode": "disabled",
        "training.num_threads": 1,
        "training.log_every": 1,
        "data.batch_size": per_process_batch,
        "run_name": run_name,
        **extra,
    }
    return [f"config={TINY}", *(f"{k}={_value(v)}" for k, v in keys.items())]


def _launch(config: str, flags: list[str], args: list[str]) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(ACCELERATE / config),
        *flags,
        "-m",
        "ove_ros.training.train",
        *args,
    ]
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="1")
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _done(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=LIMIT_S)
    assert proc.returncode == 0, out[-5000:]
    return out


def _two_processes(output_root: Path, dataset: Path, run_name: str, **extra) -> Path:
    flags = ["--num_processes", "2", "--main_process_port", str(_free_port())]
    _done(_launch("one_node.yaml", flags, _args(output_root, dataset, run_name, GLOBAL_BATCH // 2, **extra)))
    return output_root / "ove_ros" / run_name


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_same_weights(a: Path, b: Path, atol: float = 2e-5) -> None:
    for use_ema in (False, True):
        wa, ema_a = ckpt.load_weights(a, use_ema=use_ema)
        wb, ema_b = ckpt.load_weights(b, use_ema=use_ema)
        assert ema_a == ema_b == use_ema
        assert wa.keys() == wb.keys()
        for key in wa:
            torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=atol, msg=f"{key} (ema={use_ema})")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, learnable_dataset):  # noqa: F811
    """The reference: one process, the whole global batch."""
    root = tmp_path_factory.mktemp("world1")
    cfg = tiny_config(root, learnable_dataset, run_name="w1", **{**SETTINGS, "data.batch_size": GLOBAL_BATCH})
    return train(cfg).run_dir


def test_two_processes_follow_one_process_at_the_same_global_batch(tmp_path, learnable_dataset, one_process):  # noqa: F811
    two = _two_processes(tmp_path, learnable_dataset, "w2")
    ref, got = _records(one_process), _records(two)
    assert [(r["split"], r["step"]) for r in got] == [(r["split"], r["step"]) for r in ref]
    for a, b in zip(ref, got, strict=True):
        for key in ("loss", "mae", "rmse", "ev", "lr", "grad_norm", "count"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), (a["split"], a["step"], key)
    for a, b in zip(ref, got, strict=True):  # metrics cover the whole global batch, not one process's half
        if a["split"] == "train":
            assert b["samples_per_s"] > 0 and b["epoch"] == pytest.approx(a["epoch"])
    names = [p.name for p in ckpt.list_checkpoints(two)]
    assert names == [p.name for p in ckpt.list_checkpoints(one_process)] and len(names) == 2
    for a, b in zip(ckpt.list_checkpoints(one_process), ckpt.list_checkpoints(two), strict=True):
        _assert_same_weights(a, b)
        assert (
            ckpt.read_meta(b)["dataset"]["train_episodes"] == ckpt.read_meta(a)["dataset"]["train_episodes"]
        )
    state = ckpt.load_training_state(ckpt.latest_checkpoint(two))
    assert len(state["rng"]) == 2  # each process's RNG state, for an exact resume


def test_two_processes_resume_where_they_stopped(tmp_path, learnable_dataset, one_process):  # noqa: F811
    _two_processes(tmp_path, learnable_dataset, "w2r", **{"training.max_steps_this_run": 3})
    run = _two_processes(tmp_path, learnable_dataset, "w2r", **{"training.resume": "true"})
    assert [r["step"] for r in _records(run) if r["split"] == "train"] == list(range(1, 7))
    _assert_same_weights(ckpt.latest_checkpoint(one_process), ckpt.latest_checkpoint(run))


def test_multi_node_config_with_two_single_process_machines(tmp_path, learnable_dataset, one_process):  # noqa: F811
    port = str(_free_port())
    procs = []
    for rank in (0, 1):  # each "machine" has its own disk
        flags = [
            "--num_machines",
            "2",
            "--num_processes",
            "2",
            "--machine_rank",
            str(rank),
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            port,
        ]
        args = _args(tmp_path / f"machine{rank}", learnable_dataset, "mn", GLOBAL_BATCH // 2)
        procs.append(_launch("multi_node.yaml", flags, args))
    for proc in procs:
        _done(proc)
    primary = tmp_path / "machine0" / "ove_ros" / "mn"
    other = tmp_path / "machine1" / "ove_ros" / "mn"
    assert (
        ckpt.list_checkpoints(other) == [] and not (other / "metrics.jsonl").exists()
    )  # main process writes
    _assert_same_weights(ckpt.latest_checkpoint(one_process), ckpt.latest_checkpoint(primary))
    ref = [r["loss"] for r in _records(one_process) if r["split"] == "train"]
    got = [r["loss"] for r in _records(primary) if r["split"] == "train"]
    assert got == pytest.approx(ref, rel=1e-4)
