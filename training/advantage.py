# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Offline advantages: label every frame of a dataset with the value model's advantage.

    python -m ove_ros.training.advantage config=training/configs/tiny.yaml \
        advantage.checkpoint=bundles/my_run \
        advantage.mode=n_step advantage.n_step=50 advantage.output_repo_id=local/pick_adv \
        [advantage.output_root=/data/pick_adv]

Writes a copy of the dataset with three extra per-frame features: ``value`` (E[V], float32), ``advantage``
(float32) and ``advantage_positive`` (bool, ``advantage > threshold[task]``), plus ``meta/advantage.json``
with the per-task thresholds, normalizers and settings (``ove_ros.training.convert --advantage-info`` puts
them in a
bundle). The math is that of :mod:`ove_ros.values`, which the live node uses too: with the bundle's reward
settings and per-task scales, ``A_t = sum_{k<N'} r_{t+k}/scale + V(t+N') - V(t)`` (``n_step``) or
``clip(G_t/scale, -1, 0) - V(t)`` (``mc``: the return in the clipped units the values were trained on).

For policy training, the labels read as prompt text::

    from ove_ros.training.advantage import compute_task_advantage_thresholds, binarize_advantages
    thresholds = compute_task_advantage_thresholds(dataset, percentile=30.0)
    labels = binarize_advantages(advantages, thresholds, tasks)   # -> ["Advantage: Positive", ...]
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader

from ove_ros.output_guard import OutputRefused, check_output, is_lerobot_dataset
from ove_ros.training.checkpoint import replace_dir
from ove_ros.training.config import Config, ConfigError, run_cli
from ove_ros.training.dataset import (
    IMAGES_PREFIX,
    ValueFrameDataset,
    ValueTargets,
    _column,
    load_or_compute_targets,
    open_lerobot_dataset,
    task_table,
)
from ove_ros.training.modeling import LoadedModel, load_value_model
from ove_ros.training.train import cache_dir, collate, to_device
from ove_ros.values import (
    NEGATIVE_LABEL,
    POSITIVE_LABEL,
    binarize_advantages,
    clip_counts,
    compute_task_thresholds,
    mc_advantages,
    n_step_advantages,
    normalize_returns,
)

__all__ = [
    "NEGATIVE_LABEL",
    "POSITIVE_LABEL",
    "AdvantageResult",
    "binarize_advantages",
    "compute_advantages",
    "compute_task_advantage_thresholds",
    "label_dataset",
    "predict_values",
]

logger = logging.getLogger("ove_ros.training.advantage")

ADVANTAGE_KEY = "advantage"
LABEL_KEY = "advantage_positive"
VALUE_KEY = "value"
INFO_FILE = "meta/advantage.json"


# ----------------------------------------------------------------------------------------------- math


@torch.inference_mode()
def predict_values(
    model: Any, frames: ValueFrameDataset, batch_size: int, num_workers: int = 0, device: Any = "cpu"
) -> np.ndarray:
    """E[V] of every sample of ``frames`` (in ``frames`` order), batched."""
    model.eval()
    loader = DataLoader(
        frames, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate
    )
    out = np.empty(len(frames), dtype=np.float64)
    pos = 0
    for batch in loader:
        batch = to_device(batch, torch.device(device))
        v = model.get_expected_value(model(batch)).double().cpu().numpy()
        out[pos : pos + v.size] = v
        pos += v.size
    return out


def compute_advantages(
    targets: ValueTargets, values: np.ndarray, scales: np.ndarray, mode: str = "n_step", n_step: int = 50
) -> np.ndarray:
    """Per-frame advantages (in ``targets`` order) from raw rewards/returns, per-frame scales and values."""
    if mode not in ("n_step", "mc"):
        raise ValueError(f"advantage mode {mode!r}; choose 'n_step' or 'mc'")
    adv = np.empty(len(targets), dtype=np.float64)
    if mode == "mc":
        below, above = clip_counts(targets.returns, scales)
        if below or above:
            logger.warning(
                "MC advantages: %d of %d returns fall outside [-1, 0] after dividing by the model's scales "
                "(%d below, %d above) and are clipped, as the values were trained. Episodes longer than any "
                "training episode lose their early frames' spread: retrain with them in the training split, "
                "or use advantage.mode=n_step", below + above, len(targets), below, above,
            )
    cut = set(targets.truncated)
    for ep, sl in targets.episode_slices().items():
        scale = float(scales[sl.start])
        v = values[sl]
        if mode == "n_step":
            adv[sl] = n_step_advantages(targets.rewards[sl] / scale, v, n_step, truncated=ep in cut)
        elif ep in cut:
            # Nothing is known past the cut: the return up to it, then the last frame's value (as n_step does
            # with a horizon that reaches the cut).
            adv[sl] = n_step_advantages(targets.rewards[sl] / scale, v, sl.stop - sl.start, truncated=True)
        else:
            # The values were trained on clip(G / scale, -1, 0): compare them with returns in those units.
            adv[sl] = mc_advantages(normalize_returns(targets.returns[sl], scale), v)
    return adv


def compute_task_advantage_thresholds(
    dataset: Any, percentile: float = 30.0, advantage_key: str = ADVANTAGE_KEY
) -> dict[str, float]:
    """Per-task threshold (the ``percentile`` of the task's advantages) of a labelled LeRobot dataset."""
    table = dataset.hf_dataset.data
    if advantage_key not in table.column_names:
        raise ValueError(
            f"dataset {dataset.repo_id} has no {advantage_key!r} column; label it with "
            "`python -m ove_ros.training.advantage` first"
        )
    adv = _column(table, advantage_key).astype(np.float64)
    tasks = task_table(dataset)
    frame_tasks = [tasks[int(i)] for i in _column(table, "task_index")]
    return compute_task_thresholds(adv, frame_tasks, percentile)


# ------------------------------------------------------------------------------------------- labelling


@dataclass
class AdvantageResult:
    """The labelled copy and what went into it (arrays in dataset-index order)."""

    output_root: Path
    repo_id: str
    thresholds: dict[str, float]
    index: np.ndarray
    values: np.ndarray
    advantages: np.ndarray
    labels: list[str] = field(default_factory=list)


def _stats(x: np.ndarray) -> dict[str, list[float]]:
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    q = {f"q{p:02d}": np.quantile(x, p / 100, axis=0).tolist() for p in (1, 10, 50, 90, 99)}
    return {
        "min": x.min(0).tolist(),
        "max": x.max(0).tolist(),
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        "count": [int(x.shape[0])],
        **q,
    }


def _file_order(root: Path, by_index: dict[int, int]) -> np.ndarray:
    """Positions (into index-sorted arrays) of the frames in the order lerobot's copy reads the files."""
    order = []
    for path in sorted((root / "data").glob("*/*.parquet")):
        idx = pq.read_table(path, columns=["index"]).column("index").to_numpy()
        order.append(np.asarray([by_index[int(i)] for i in idx], dtype=np.int64))
    return np.concatenate(order)


def check_labelled_output(output_root: Path, inputs: Sequence[Path], overwrite: bool) -> Path:
    """The labelled copy may replace only an older LeRobot dataset, never its source or a folder above it."""
    try:
        return check_output(
            output_root,
            kind="LeRobot dataset",
            recognise=is_lerobot_dataset,
            inputs=inputs,
            overwrite=overwrite,
            flag="advantage.overwrite=true",
        )
    except OutputRefused as exc:
        raise ConfigError(str(exc)) from None


def write_labelled_copy(
    dataset: Any,
    output_root: Path,
    repo_id: str,
    columns: dict[str, tuple[np.ndarray, dict[str, Any]]],
    info: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """A copy of ``dataset`` with ``columns`` added, built beside ``output_root`` and renamed into place."""
    from lerobot.datasets.dataset_tools import modify_features
    from lerobot.datasets.utils import load_stats, write_stats

    output_root = check_labelled_output(output_root, [Path(dataset.root)], overwrite)
    output_root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_root.name}.", dir=output_root.parent))
    build = staging / "ds"
    try:
        modify_features(dataset, add_features=columns, output_dir=build, repo_id=repo_id)
        stats = load_stats(build) or {}
        for name, (arr, _) in columns.items():
            stats[name] = _stats(arr)
        write_stats(stats, build)
        (build / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
        replace_dir(build, output_root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_root


def label_dataset(cfg: Config) -> AdvantageResult:
    """Values, advantages, thresholds and labels for every frame; writes the labelled copy."""
    a = cfg.advantage
    if not a.checkpoint:
        raise ConfigError(
            "advantage.checkpoint is required (a bundle directory, a checkpoint_<step>.safetensors / "
            "checkpoint_ema.safetensors file or a run directory)"
        )
    if cfg.data.episodes:
        raise ConfigError("advantage labelling covers the whole dataset; unset data.episodes")
    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded: LoadedModel = load_value_model(a.checkpoint, use_ema=a.use_ema, device=device)
    dataset = open_lerobot_dataset(cfg.data.repo_id, cfg.data.root, None, cfg.data.video_backend)
    repo_id = a.output_repo_id or f"{cfg.data.repo_id}_advantage"
    if a.output_root:
        output_root = Path(a.output_root)
    else:
        output_root = Path(dataset.root).parent / repo_id.split("/")[-1]
    # Refused before the inference pass, not after it.
    output_root = check_labelled_output(output_root, [Path(dataset.root), Path(loaded.path)], a.overwrite)
    # The model's own reward settings and scales: its values are in those units (and the live node uses them).
    targets = load_or_compute_targets(
        dataset, loaded.reward, cache_dir(cfg), cfg.data.reward_key, cfg.data.assume_success_without_reward
    )
    model = loaded.model
    keys = [IMAGES_PREFIX + c for c in model.config.camera_names]
    frames = ValueFrameDataset(dataset, targets, None, keys, cfg.data.state_key, model.config.image_size)
    values = predict_values(model, frames, cfg.data.eval_batch_size, cfg.data.num_workers, device)
    episode_task = targets._episode_first_task()
    frame_episode_task = [episode_task[int(e)] for e in targets.episode_index]
    scales = np.asarray([loaded.scale_for(t) for t in frame_episode_task], dtype=np.float64)
    advantages = compute_advantages(targets, values, scales, a.mode, a.n_step)
    tasks = targets.frame_tasks()
    thresholds = compute_task_thresholds(advantages, tasks, a.percentile)
    labels = binarize_advantages(advantages, thresholds, tasks)
    positive = np.asarray([lab == POSITIVE_LABEL for lab in labels], dtype=bool)

    by_index = {int(i): k for k, i in enumerate(targets.index.tolist())}
    order = _file_order(Path(dataset.root), by_index)
    scalar = {"shape": (1,), "names": None}
    columns = {
        VALUE_KEY: (values[order].astype(np.float32), {"dtype": "float32", **scalar}),
        ADVANTAGE_KEY: (advantages[order].astype(np.float32), {"dtype": "float32", **scalar}),
        LABEL_KEY: (positive[order], {"dtype": "bool", **scalar}),
    }
    info = {
        "mode": a.mode,
        "n_step": int(a.n_step),
        "percentile": float(a.percentile),
        "thresholds": thresholds,
        "task_normalizers": {t: loaded.scale_for(t) for t in set(frame_episode_task)},
        "reward": loaded.reward.to_dict(),
        "checkpoint": str(loaded.path),
        "source": loaded.source,
        "used_ema": loaded.used_ema,
        "positive_fraction": float(positive.mean()),
        "labels": {"true": POSITIVE_LABEL, "false": NEGATIVE_LABEL},
    }
    write_labelled_copy(dataset, output_root, repo_id, columns, info, overwrite=a.overwrite)
    logger.info("wrote %s (%d frames, %.0f%% positive)", output_root, len(targets), 100 * positive.mean())
    return AdvantageResult(
        output_root=output_root,
        repo_id=repo_id,
        thresholds=thresholds,
        index=targets.index,
        values=values,
        advantages=advantages,
        labels=labels,
    )


def main(argv: Sequence[str] | None = None) -> None:
    result = run_cli("ove_ros.training.advantage", __doc__, argv, label_dataset, require_run_name=False)
    if result is None:
        return
    print(
        json.dumps(
            {
                "output_root": str(result.output_root),
                "repo_id": result.repo_id,
                "thresholds": result.thresholds,
            }
        )
    )


if __name__ == "__main__":
    main()
