# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Small synthetic LeRobot v3 datasets (written with lerobot's own writer) and a tiny trained run, for tests.

Import the fixtures into a test module to use them::

    from dataset_fixtures import synthetic_dataset, trained_run  # noqa: F401

Datasets are built once per test session per spec and shared (tests must not modify them).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from ove_ros.training.config import Config, load_config
from ove_ros.training.synthetic import SyntheticSpec, episode_plan, make_synthetic_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY_YAML = REPO_ROOT / "training" / "configs" / "tiny.yaml"

# The learnable dataset of the training tests: half the episodes fail, 32 px frames (the tiny model's size).
LEARNABLE = SyntheticSpec(num_episodes=8, min_length=6, max_length=10, failure_every=2, image_size=32, seed=3)


def make_dataset(root: Path, repo_id: str = "synthetic/values", **spec: Any) -> Path:
    """Write a synthetic dataset at ``root`` (see :class:`ove_ros.training.synthetic.SyntheticSpec`)."""
    return make_synthetic_dataset(root, repo_id, SyntheticSpec(**spec))


def plan(**spec: Any) -> list[tuple[int, bool, str]]:
    """(length, success, task) per episode of the dataset ``make_dataset(**spec)`` writes."""
    return episode_plan(SyntheticSpec(**spec))


def tiny_config(
    output_root: Path, dataset_root: Path, repo_id: str = "synthetic/values", **overrides: Any
) -> Config:
    """``training/configs/tiny.yaml`` pointed at a dataset, quiet and single-threaded, plus overrides."""
    base = {
        "output_root": str(output_root),
        "data.root": str(dataset_root),
        "data.repo_id": repo_id,
        "data.num_workers": 0,
        "data.cache_dir": str(Path(output_root) / "cache"),
        "wandb.mode": "disabled",
        "training.num_threads": 1,
        "training.log_every": 1,
    }
    base.update(overrides)
    return load_config(TINY_YAML, [f"{k}={_yaml_value(v)}" for k, v in base.items()], require_run_name=False)


def _yaml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_yaml_value(x) for x in v) + "]"
    return str(v)


class DatasetFactory:
    """Builds each distinct spec once per session under one temp directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, Path] = {}

    def __call__(self, **spec: Any) -> Path:
        full = asdict(SyntheticSpec(**spec))
        key = hashlib.sha1(json.dumps(full, sort_keys=True, default=list).encode()).hexdigest()[:12]
        if key not in self._made:
            self._made[key] = make_dataset(self.root / f"ds_{key}", **spec)
        return self._made[key]


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> DatasetFactory:
    """``synthetic_dataset(**spec) -> Path`` of a (shared, read-only) synthetic dataset."""
    return DatasetFactory(tmp_path_factory.mktemp("datasets"))


@pytest.fixture(scope="session")
def learnable_dataset(synthetic_dataset: DatasetFactory) -> Path:
    return synthetic_dataset(**asdict(LEARNABLE))


# The shared run's training settings: a few steps of the tiny model, episodes 0-1 held out.
SHARED_RUN = {
    "training.steps": 30,
    "training.warmup_steps": 3,
    "training.val_every": 0,
    "training.save_every": 30,
    "training.learning_rate": 3e-3,
    "training.ema_decay": 0.9,
    "data.batch_size": 8,
    "data.val_episodes": [0, 1],
}


def _train_shared(out: Path, dataset: Path, run_name: str, **overrides: Any) -> dict[str, Any]:
    from ove_ros.training.train import train

    cfg = tiny_config(out, dataset, run_name=run_name, **{**SHARED_RUN, **overrides})
    return {"cfg": cfg, "result": train(cfg), "dataset": dataset}


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, learnable_dataset: Path) -> dict[str, Any]:
    """A tiny model trained briefly on the learnable dataset: {"cfg", "result", "dataset"}."""
    return _train_shared(tmp_path_factory.mktemp("trained"), learnable_dataset, "shared")


@pytest.fixture(scope="session")
def trained_run_seed1(tmp_path_factory: pytest.TempPathFactory,
                      trained_run: dict[str, Any]) -> dict[str, Any]:
    """``trained_run`` again with training seed 1: a second member for an ensemble."""
    return _train_shared(tmp_path_factory.mktemp("trained_seed1"), trained_run["dataset"], "shared_seed1",
                         **{"training.seed": 1})


def log_records(run_dir: Path, split: str) -> list[dict[str, Any]]:
    """The ``split`` records ("train" or "val") of a run's ``metrics.jsonl``, in order."""
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["split"] == split]


def run_batch(run: dict[str, Any], n: int) -> tuple[dict[str, Any], Any]:
    """``n`` frames spread over a trained run's dataset as one collated batch, and the dataset."""
    import numpy as np
    from torch.utils.data import default_collate

    from ove_ros.training.dataset import ValueFrameDataset, load_or_compute_targets, open_lerobot_dataset

    cfg = run["cfg"]
    dataset = open_lerobot_dataset(cfg.data.repo_id, cfg.data.root)
    targets = load_or_compute_targets(dataset, cfg.reward, None)
    frames = ValueFrameDataset(dataset, targets, None, dataset.meta.camera_keys, image_size=32)
    return default_collate([frames[i] for i in np.linspace(0, len(frames) - 1, n).astype(int)]), dataset
