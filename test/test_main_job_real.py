# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The main job's real-data mode, shortened: the G1 episodes (../shared/data) -> training copy -> train ->
bundle -> held-out evaluation. One ``python -m ove_ros.main_job real`` run with 15 optimizer steps."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO_ROOT, SHARED_DATA

G1 = SHARED_DATA / "g1_pick_bottle_mini"
HELDOUT = 2


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> tuple[Path, dict]:
    if not G1.is_dir():
        pytest.skip(f"real-data fixture {G1} is absent (it lives beside the checkout in ../shared/data)")
    root = tmp_path_factory.mktemp("real_job")
    out = root / "demo_real"
    cmd = [sys.executable, "-m", "ove_ros.main_job", "real", "--output", str(out), "--cache-dir",
           str(root / "cache"), "--no-cache", "--heldout", str(HELDOUT), "--train-steps", "15"]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"real demo failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "EV on held-out episodes" in proc.stdout
    return out, json.loads((out / "summary.json").read_text())


def test_heldout_episodes_are_the_last_ones_and_all_their_frames_are_evaluated(real_run):
    _, summary = real_run
    info = json.loads((G1 / "meta" / "info.json").read_text())
    total = int(info["total_episodes"])
    assert summary["mode"] == "real"
    assert summary["heldout_episodes"] == list(range(total - HELDOUT, total))
    lengths = [json.loads(line) for line in (G1 / "meta" / "episodes.jsonl").read_text().splitlines()]
    expected = sum(e["length"] for e in lengths if e["episode_index"] in summary["heldout_episodes"])
    metrics = summary["heldout_metrics"]
    assert int(metrics["count"]) == expected
    assert all(math.isfinite(metrics[k]) for k in ("ev", "mae", "rmse", "loss"))
    assert 0.0 <= metrics["mae"] <= 1.0  # values and targets both live in [-1, 0]


def test_training_copy_has_the_success_reward_convention(real_run):
    _, summary = real_run
    copy = Path(summary["training_copy"])
    frames = pd.concat([pd.read_parquet(p) for p in sorted((copy / "data").rglob("*.parquet"))])
    for _, episode in frames.groupby("episode_index"):
        episode = episode.sort_values("frame_index")
        done = episode["is_done"].to_numpy().astype(bool)
        reward = episode["reward"].to_numpy().astype(float)
        assert done[-1] and not done[:-1].any()
        assert reward[-1] == 1.0 and not reward[:-1].any()  # demonstrations: every episode succeeds
    info = json.loads((copy / "meta" / "info.json").read_text())
    cameras = [k for k, f in info["features"].items() if f["dtype"] == "image"]
    assert cameras and all(info["features"][k]["shape"][1] == 64 for k in cameras)


def test_bundle_values_a_real_frame(real_run):
    import torch

    from ove_ros.engine import InferenceEngine

    out, summary = real_run
    engine = InferenceEngine.from_bundle(out / "bundle")
    copy = Path(summary["training_copy"])
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(f"local/{G1.name}", root=copy)
    item = dataset[len(dataset) - 1]
    by_camera = {k.rsplit(".", 1)[-1]: k for k in dataset.meta.camera_keys}
    images = [(item[by_camera[c]] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
              for c in engine.camera_names]
    result = engine.infer(images, item["observation.state"].numpy(), item["task"])
    assert -1.0 <= result.value <= 0.0
    assert result.probs.shape == (201,) and abs(float(result.probs.sum()) - 1.0) < 1e-4


def test_evaluation_wrote_plots(real_run):
    out, _ = real_run
    assert list((out / "eval").rglob("*.png")), "no value-curve plots"
    assert (out / "eval" / "metrics.json").is_file()
