# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Evaluate a value model on a dataset: metrics, value-curve plots and videos with the value drawn on.

    python -m ove_ros.training.evaluate config=training/configs/tiny.yaml \
        evaluate.checkpoint=outputs/ove_ros/my_run/checkpoint_300.safetensors evaluate.split=val

``evaluate.checkpoint`` is a training checkpoint (EMA weights unless ``evaluate.use_ema=false``), a run
directory (its newest checkpoint) or a deploy bundle. Targets use the reward settings and per-task
normalizers the model was trained with, so the numbers compare with the training run's validation.
Writes ``metrics.json`` (overall and per task: loss, MAE, RMSE, explained variance), ``predictions.csv``,
``plots/episode_<n>.png`` and ``videos/episode_<n>.mp4``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ove_ros.output_guard import OutputRefused, check_output, is_evaluation_dir
from ove_ros.training.checkpoint import atomic_save_file, atomic_write_bytes, atomic_write_json
from ove_ros.training.config import Config, ConfigError, run_cli
from ove_ros.training.dataset import (
    IMAGES_PREFIX,
    ValueFrameDataset,
    ValueTargets,
    load_or_compute_targets,
    open_lerobot_dataset,
)
from ove_ros.training.modeling import LoadedModel, load_value_model
from ove_ros.training.train import cache_dir, eval_loader, predict_frames, summarize_predictions

logger = logging.getLogger("ove_ros.training.evaluate")


@dataclass
class EvalResult:
    """Where the report went and what it says."""

    output_dir: Path
    metrics: dict[str, Any]
    plots: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)


def renormalize(targets: ValueTargets, loaded: LoadedModel) -> None:
    """Normalize the returns with the scales the model was trained with (in place)."""
    first = targets._episode_first_task()
    unknown = sorted({t for t in first.values() if t not in loaded.task_normalizers})
    if unknown:
        logger.warning(
            "tasks %s were not in the training data; using scale %.1f", unknown, loaded.default_scale
        )
    for ep, sl in targets.episode_slices().items():
        scale = loaded.scale_for(first[ep])
        targets.values[sl] = np.clip(targets.returns[sl] / scale, -1.0, 0.0).astype(np.float32)
    targets.normalizers = {t: loaded.scale_for(t) for t in set(first.values())}


def select_episodes(cfg: Config, loaded: LoadedModel, targets: ValueTargets) -> list[int]:
    """The run's train or validation episodes when the dataset is the run's own, else all episodes."""
    all_eps = targets.episodes.tolist()
    split = cfg.evaluate.split
    data = loaded.meta.get("dataset", {}) if loaded.source == "checkpoint" else {}
    if split == "all":
        return all_eps
    if data.get("repo_id") != cfg.data.repo_id or f"{split}_episodes" not in data:
        logger.warning(
            "the model's %s split is unknown for %s; evaluating every episode", split, cfg.data.repo_id
        )
        return all_eps
    chosen = [e for e in data[f"{split}_episodes"] if e in set(all_eps)]
    if not chosen:
        raise ValueError(f"the {split} split of the run is empty on this dataset; use evaluate.split=all")
    return chosen


def default_output_dir(cfg: Config, loaded: LoadedModel) -> Path:
    if cfg.evaluate.output_dir:
        return Path(cfg.evaluate.output_dir)
    if loaded.source == "checkpoint":
        if loaded.path.is_file():  # <run>/checkpoint_<step>.safetensors -> <run>/eval/checkpoint_<step>
            return loaded.path.parent / "eval" / loaded.path.stem
        return loaded.path.parent.parent / "eval" / loaded.path.name
    return loaded.path.parent / f"{loaded.path.name}_eval"


def checked_output_dir(out: Path, inputs: list[Path]) -> Path:
    """Evaluation writes only into a new, empty or earlier evaluation folder, never over its inputs."""
    try:
        return check_output(out, kind="evaluation folder", recognise=is_evaluation_dir, inputs=inputs)
    except OutputRefused as exc:
        raise ConfigError(f"{exc} (evaluate.output_dir)") from None


# -------------------------------------------------------------------------------------------- drawing


def plot_episode(path: Path, frames: np.ndarray, pred: np.ndarray, target: np.ndarray, title: str) -> Path:
    """Predicted E[V] and the Monte Carlo target of one episode, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    ax.plot(frames, target, label="target (MC return)", color="black", linewidth=1.5)
    ax.plot(frames, pred, label="predicted E[V]", color="tab:blue", linewidth=1.5)
    ax.set_ylim(-1.05, 0.05)
    ax.set_xlabel("frame")
    ax.set_ylabel("normalized value")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def compose_frame(images: list[np.ndarray], min_height: int = 240) -> np.ndarray:
    """Cameras side by side at a common height (at least ``min_height`` so the overlay stays legible)."""
    import cv2

    height = max(min_height, max(im.shape[0] for im in images))
    resized = [
        cv2.resize(
            im, (max(1, round(im.shape[1] * height / im.shape[0])), height), interpolation=cv2.INTER_LINEAR
        )
        for im in images
    ]
    return np.ascontiguousarray(np.concatenate(resized, axis=1))


def write_value_video(
    path: Path,
    dataset: Any,
    rows: np.ndarray,
    camera_keys: Sequence[str],
    pred: np.ndarray,
    target: np.ndarray,
    fps: float,
) -> Path:
    """MP4 of an episode's frames with the predicted value drawn on them; checked by decoding it back."""
    import cv2

    from ove_ros.overlay import draw_value_overlay

    frames = []
    for t, row in enumerate(rows.tolist()):
        item = dataset[int(row)]
        img = compose_frame([_to_uint8_hwc(item[k].float()) for k in camera_keys])
        text = f"t={t} target {target[t]:+.3f}"  # the overlay prints V itself
        frames.append(draw_value_overlay(img, float(pred[t]), history=pred[: t + 1].tolist(), text=text))
    height, width = frames[0].shape[:2]
    width, height = width - width % 2, height - height % 2  # even sizes for the codec

    def write(tmp: Path) -> None:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
        if not writer.isOpened():
            raise RuntimeError(f"OpenCV cannot open an MP4 writer for {tmp}")
        for f in frames:
            writer.write(cv2.cvtColor(f[:height, :width], cv2.COLOR_RGB2BGR))
        writer.release()
        decoded = count_video_frames(tmp)
        if decoded != len(frames):
            raise RuntimeError(f"wrote {len(frames)} frames to {tmp} but {decoded} decode back")

    atomic_save_file(path, write, suffix=".mp4")
    return path


def count_video_frames(path: Path) -> int:
    """Frames that actually decode (not the container's claim)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        while True:
            ok, _ = cap.read()
            if not ok:
                break
            n += 1
    finally:
        cap.release()
    return n


def spread(items: Sequence[int], k: int) -> list[int]:
    """``k`` items evenly spread over ``items`` (all when fewer)."""
    if k <= 0 or not items:
        return []
    if len(items) <= k:
        return list(items)
    picks = np.linspace(0, len(items) - 1, k).round().astype(int)
    return [items[i] for i in dict.fromkeys(picks.tolist())]


# --------------------------------------------------------------------------------------------- driver


def evaluate(cfg: Config) -> EvalResult:
    """Metrics, plots and videos for ``cfg.evaluate.checkpoint`` on ``cfg.data``'s dataset."""
    e = cfg.evaluate
    if not e.checkpoint:
        raise ConfigError("evaluate.checkpoint is required (a training checkpoint, run directory or bundle)")
    if cfg.training.num_threads:
        torch.set_num_threads(cfg.training.num_threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    loaded = load_value_model(e.checkpoint, use_ema=e.use_ema, device=device)
    model = loaded.model
    dataset = open_lerobot_dataset(
        cfg.data.repo_id, cfg.data.root, cfg.data.episodes or None, cfg.data.video_backend
    )
    targets = load_or_compute_targets(
        dataset, loaded.reward, cache_dir(cfg), cfg.data.reward_key, cfg.data.assume_success_without_reward
    )
    renormalize(targets, loaded)
    episodes = select_episodes(cfg, loaded, targets)
    out = checked_output_dir(default_output_dir(cfg, loaded), [Path(dataset.root), Path(loaded.path)])
    keys = [IMAGES_PREFIX + c for c in model.config.camera_names]
    missing = [k for k in keys if k not in dataset.meta.camera_keys]
    if missing:
        raise ValueError(f"the model reads cameras {keys} but dataset {cfg.data.repo_id} lacks {missing}")
    frames = ValueFrameDataset(dataset, targets, episodes, keys, cfg.data.state_key, model.config.image_size)
    loader = eval_loader(frames, cfg.data.eval_batch_size, cfg.data.num_workers)
    # The loss uses the run's target encoding when the checkpoint knows it.
    run_cfg = loaded.meta.get("config", {}).get("training", {})
    cfg.training.target_encoding = run_cfg.get("target_encoding", cfg.training.target_encoding)
    cfg.training.hl_gauss_sigma = run_cfg.get("hl_gauss_sigma", cfg.training.hl_gauss_sigma)
    pred = predict_frames(model, loader, device, cfg)
    metrics = summarize_predictions(pred)
    metrics.update(
        checkpoint=str(loaded.path),
        source=loaded.source,
        used_ema=loaded.used_ema,
        split=e.split,
        episodes=episodes,
        repo_id=cfg.data.repo_id,
    )

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "metrics.json", metrics)
    by_index = dict(zip(pred["index"], pred["pred"], strict=True))
    p_all = np.asarray([by_index[int(i)] for i in frames.index], dtype=np.float64)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "episode_index", "frame_index", "task", "target", "pred"])
    for i in range(len(frames)):
        w.writerow(
            [
                int(frames.index[i]),
                int(frames.episode_index[i]),
                int(frames.frame_index[i]),
                frames.tasks[i],
                f"{frames.targets[i]:.6f}",
                f"{p_all[i]:.6f}",
            ]
        )
    atomic_write_bytes(out / "predictions.csv", buf.getvalue().encode())

    result = EvalResult(output_dir=out, metrics=metrics)
    fps = float(e.video_fps or dataset.fps)
    for ep in spread(episodes, max(e.plot_episodes, e.video_episodes)):
        mask = frames.episode_index == ep
        ep_pred, ep_target = p_all[mask], frames.targets[mask].astype(np.float64)
        ok = "success" if targets.episode_success.get(ep, True) else "failure"
        title = f"episode {ep} ({ok}, {frames.tasks[int(np.flatnonzero(mask)[0])]})"
        if len(result.plots) < e.plot_episodes:
            result.plots.append(
                plot_episode(
                    out / "plots" / f"episode_{ep:06d}.png",
                    frames.frame_index[mask],
                    ep_pred,
                    ep_target,
                    title,
                )
            )
        if len(result.videos) < e.video_episodes:
            result.videos.append(
                write_value_video(
                    out / "videos" / f"episode_{ep:06d}.mp4",
                    dataset,
                    frames.rows[mask],
                    keys,
                    ep_pred,
                    ep_target,
                    fps,
                )
            )
    return result


def main(argv: Sequence[str] | None = None) -> None:
    result = run_cli("ove_ros.training.evaluate", __doc__, argv, evaluate, require_run_name=False)
    if result is None:
        return
    summary = {k: v for k, v in result.metrics.items() if k in ("loss", "mae", "rmse", "ev", "count")}
    print(json.dumps({"output_dir": str(result.output_dir), **summary}, default=float))


if __name__ == "__main__":
    main()
