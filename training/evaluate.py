# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Evaluate a value model on a dataset: metrics, value-curve plots and videos with the value drawn on.

    python -m ove_ros.training.evaluate config=training/configs/tiny.yaml \
        evaluate.checkpoint=outputs/ove_ros/my_run/checkpoint_300.safetensors evaluate.split=val

``evaluate.checkpoint`` is a training checkpoint (EMA weights unless ``evaluate.use_ema=false``), a run
directory (its newest checkpoint) or a deploy bundle. Targets use the reward settings and per-task
normalizers the model was trained with, so the numbers compare with the training run's validation.
Writes ``metrics.json`` (overall and per task: loss, MAE, RMSE, explained variance), ``value_quality.json``
(the model next to baselines fitted on the training episodes only, on the same frames: EV, MAE, RMSE,
within-episode Spearman, failure AUROC at 25/50/75 %, smoothness, 10-90 % interval coverage, target
clipping counts; see :mod:`ove_ros.training.baselines`), ``value_quality.png`` (curves with the best baseline
beside the model), ``predictions.csv``, ``plots/episode_<n>.png`` and ``videos/episode_<n>.mp4``.

The baselines need the training episodes: those of the checkpoint's run when the dataset is the run's own,
else every episode not in ``data.val_episodes`` (which then are the evaluated ones); without either the
report has no baselines.
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
from ove_ros.training.baselines import FrameSet, baseline_report, fit_baselines
from ove_ros.training.checkpoint import atomic_save_file, atomic_write_bytes, atomic_write_json
from ove_ros.training.config import Config, ConfigError, run_cli
from ove_ros.training.dataset import (
    IMAGES_PREFIX,
    ValueFrameDataset,
    ValueTargets,
    load_or_compute_targets,
    open_lerobot_dataset,
)
from ove_ros.training.metrics import distribution_quantiles, value_loss, value_quality
from ove_ros.training.modeling import LoadedModel, load_value_model
from ove_ros.training.train import cache_dir, eval_loader, summarize_predictions, to_device

logger = logging.getLogger("ove_ros.training.evaluate")


@dataclass
class EvalResult:
    """Where the report went and what it says."""

    output_dir: Path
    metrics: dict[str, Any]
    plots: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)


def renormalize(targets: ValueTargets, loaded: LoadedModel) -> None:
    """Normalize the returns with the scales the model was trained with (in place); see
    :meth:`ValueTargets.clip_counts` for how many targets that clips."""
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
    """The run's train or validation episodes when the dataset is the run's own, else all episodes.

    ``data.val_episodes`` other than the run's own validation split are evaluated instead (held-out episodes
    the run never saw, e.g. after choosing a checkpoint on the run's validation split); they must not be
    among the run's training episodes.
    """
    all_eps = targets.complete_episodes.tolist()  # a cut-short episode has no value target
    split = cfg.evaluate.split
    data = loaded.meta.get("dataset", {}) if loaded.source == "checkpoint" else {}
    if split == "all":
        return all_eps
    explicit = sorted(int(e) for e in cfg.data.val_episodes)
    own = data.get("repo_id") == cfg.data.repo_id and "val_episodes" in data
    if split == "val" and own and explicit and explicit != sorted(data["val_episodes"]):
        seen = sorted(set(explicit) & set(data.get("train_episodes", [])))
        if seen:
            raise ValueError(
                f"data.val_episodes {explicit} include episodes {seen} the model was trained on; evaluate "
                "held-out episodes only (or the run's own split: leave data.val_episodes as the run had it)"
            )
        return [e for e in explicit if e in set(all_eps)]
    if data.get("repo_id") != cfg.data.repo_id or f"{split}_episodes" not in data:
        if cfg.data.val_episodes and split in ("val", "train"):
            val = [e for e in cfg.data.val_episodes if e in set(all_eps)]
            return val if split == "val" else [e for e in all_eps if e not in set(val)]
        logger.warning(
            "the model's %s split is unknown for %s; evaluating every episode", split, cfg.data.repo_id
        )
        return all_eps
    chosen = [e for e in data[f"{split}_episodes"] if e in set(all_eps)]
    if not chosen:
        raise ValueError(f"the {split} split of the run is empty on this dataset; use evaluate.split=all")
    return chosen


def baseline_train_episodes(cfg: Config, loaded: LoadedModel, targets: ValueTargets) -> list[int]:
    """The episodes the baselines may be fitted on: the run's training episodes (on its own dataset), else
    the episodes outside ``data.val_episodes``; empty when neither is known."""
    all_eps = set(targets.complete_episodes.tolist())
    data = loaded.meta.get("dataset", {}) if loaded.source == "checkpoint" else {}
    if data.get("repo_id") == cfg.data.repo_id and "train_episodes" in data:
        return [e for e in data["train_episodes"] if e in all_eps]
    if cfg.data.val_episodes:
        return sorted(all_eps - set(cfg.data.val_episodes))
    return []


def frame_states(dataset: Any, targets: ValueTargets, state_key: str) -> np.ndarray:
    """The joint vector of every frame ``[N, D]`` in ``targets`` order, from the parquet (no decoding)."""
    from ove_ros.training.dataset import _column

    flat = _column(dataset.hf_dataset.data, state_key).astype(np.float64)
    states = flat.reshape(len(dataset.hf_dataset), -1)
    return states[targets.rows]


def frame_set(targets: ValueTargets, states: np.ndarray, episodes: list[int]) -> FrameSet:
    mask = targets.episode_mask(episodes)
    eps = targets.episode_index[mask]
    return FrameSet(
        episode=eps,
        frame=targets.frame_index[mask],
        task=targets.frame_tasks(mask),
        state=states[mask],
        target=targets.values[mask],
        success={int(e): targets.episode_success.get(int(e), True) for e in np.unique(eps)},
    )


@torch.no_grad()
def predict_distribution(
    model: Any, loader: Any, device: torch.device, cfg: Config
) -> dict[str, np.ndarray | list[Any]]:
    """E[V], its 10 % and 90 % quantiles, the per-sample loss, tasks and indices of every sample."""
    model.eval()
    centers = model.config.bins.centers
    out: dict[str, list[Any]] = {k: [] for k in ("pred", "q10", "q90", "target", "loss", "task", "index")}
    for batch in loader:
        batch = to_device(batch, device)
        logits = model(batch)
        loss = value_loss(
            logits, batch["target"], model.config.bins, cfg.training.target_encoding,
            cfg.training.hl_gauss_sigma, "none",
        )
        probs = model.probs(logits).double().cpu().numpy()
        q = distribution_quantiles(probs, centers, (0.1, 0.9))
        out["pred"] += model.get_expected_value(logits).double().cpu().tolist()
        out["q10"] += q[:, 0].tolist()
        out["q90"] += q[:, 1].tolist()
        out["target"] += batch["target"].double().cpu().tolist()
        out["loss"] += loss.cpu().tolist()
        out["task"] += list(batch["task"])
        out["index"] += batch["index"].cpu().tolist()
    return out


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
    return _save_figure(fig, plt, path)


def plot_value_quality(
    path: Path, frames: FrameSet, pred: np.ndarray, report: dict[str, Any], baseline_pred: np.ndarray | None,
    episodes: Sequence[int],
) -> Path:
    """One picture: a few evaluated episodes' curves (target, model, best baseline) and the EV of each
    predictor as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = report.get("best_baseline")
    eps = list(episodes)[:4]
    fig, axes = plt.subplots(1, len(eps) + 1, figsize=(3.4 * (len(eps) + 1), 3.2), dpi=100, squeeze=False)
    for ax, ep in zip(axes[0], eps, strict=False):
        m = frames.episode == ep
        order = np.argsort(frames.frame[m])
        t = frames.frame[m][order]
        ax.plot(t, frames.target[m][order], color="black", linewidth=1.5, label="target")
        ax.plot(t, pred[m][order], color="tab:blue", linewidth=1.2, label="model")
        if baseline_pred is not None:
            ax.plot(t, baseline_pred[m][order], color="tab:orange", linewidth=1.2, linestyle="--",
                    label=f"{best}")
        ok = "success" if frames.success.get(int(ep), True) else "failure"
        ax.set_title(f"episode {ep} ({ok})", fontsize=9)
        ax.set_ylim(-1.05, 0.05)
        ax.set_xlabel("frame")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("normalized value")
    axes[0][0].legend(loc="lower right", fontsize=7)
    bar = axes[0][-1]
    names = ["model", *report.get("baselines", {})]
    evs = [report["model"]["ev"], *(b["ev"] for b in report.get("baselines", {}).values())]
    colors = ["tab:blue"] + ["tab:orange" if n == best else "tab:gray" for n in names[1:]]
    bar.barh(range(len(names)), [max(-0.5, e) if np.isfinite(e) else 0.0 for e in evs], color=colors)
    bar.set_yticks(range(len(names)), names, fontsize=7)
    bar.invert_yaxis()
    bar.set_xlim(-0.5, 1.0)
    bar.axvline(0.0, color="black", linewidth=0.8)
    bar.set_title(f"held-out EV (margin {report.get('margin_ev', float('nan')):+.3f})", fontsize=9)
    bar.grid(alpha=0.3, axis="x")
    return _save_figure(fig, plt, path)


def _save_figure(fig: Any, plt: Any, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically and close it."""
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
    pred = predict_distribution(model, loader, device, cfg)
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
    by_index = {int(i): n for n, i in enumerate(pred["index"])}
    order = np.asarray([by_index[int(i)] for i in frames.index], dtype=np.int64)
    p_all = np.asarray(pred["pred"], dtype=np.float64)[order]
    q10, q90 = (np.asarray(pred[k], dtype=np.float64)[order] for k in ("q10", "q90"))
    quality = value_quality_report(cfg, loaded, dataset, targets, episodes, p_all, q10, q90)
    atomic_write_json(out / "value_quality.json", quality["report"])
    plot_value_quality(
        out / "value_quality.png", quality["eval_frames"], p_all, quality["report"],
        quality["best_baseline_pred"], spread(episodes, 4),
    )
    metrics["value_quality"] = {k: v for k, v in quality["report"].items() if k not in ("baselines",)}
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


def value_quality_report(
    cfg: Config, loaded: LoadedModel, dataset: Any, targets: ValueTargets, episodes: list[int],
    pred: np.ndarray, q10: np.ndarray, q90: np.ndarray,
) -> dict[str, Any]:
    """The model against the baselines on ``episodes`` (their frames in ``targets`` order), plus where the
    normalizers came from and how many targets clipping changed."""
    states = frame_states(dataset, targets, cfg.data.state_key)
    eval_frames = frame_set(targets, states, episodes)
    train_eps = [ep for ep in baseline_train_episodes(cfg, loaded, targets) if ep not in set(episodes)]
    data = loaded.meta.get("dataset", {}) if loaded.source == "checkpoint" else {}
    if loaded.source == "bundle":  # training.convert copies them into the bundle's training record
        data = loaded.meta.get("training", {}) or {}
    provenance = {
        "normalizers": dict(targets.normalizers),
        "normalizer_episodes": data.get("normalizer_episodes") or "not recorded",
        "eval_target_clipping": targets.clip_counts(episodes),
        "train_target_clipping": data.get("target_clipping"),
        "checkpoint": str(loaded.path),
        "repo_id": cfg.data.repo_id,
        "eval_episodes": list(episodes),
        "baseline_train_episodes": train_eps,
    }
    if not train_eps:
        logger.warning(
            "no training episodes known for the baselines (not the run's own dataset, no data.val_episodes); "
            "the value-quality report compares with no baseline"
        )
        model = value_quality(
            eval_frames.episode, eval_frames.frame, eval_frames.task, eval_frames.target, pred,
            eval_frames.success, q10, q90,
        )
        report = {"model": model, "baselines": {}, "best_baseline": None, **provenance}
        return {"report": report, "eval_frames": eval_frames, "best_baseline_pred": None}
    train_frames = frame_set(targets, states, train_eps)
    predictions = fit_baselines(train_frames, eval_frames)
    report = {**baseline_report(train_frames, eval_frames, pred, q10, q90, predictions=predictions),
              **provenance}
    best = report["best_baseline"]
    best_pred = predictions[best] if best else None
    return {"report": report, "eval_frames": eval_frames, "best_baseline_pred": best_pred}


def main(argv: Sequence[str] | None = None) -> None:
    result = run_cli("ove_ros.training.evaluate", __doc__, argv, evaluate, require_run_name=False)
    if result is None:
        return
    summary = {k: v for k, v in result.metrics.items() if k in ("loss", "mae", "rmse", "ev", "count")}
    vq = result.metrics.get("value_quality", {})
    summary.update(best_baseline=vq.get("best_baseline"), best_baseline_ev=vq.get("best_baseline_ev"),
                   margin_ev=vq.get("margin_ev"))
    print(json.dumps({"output_dir": str(result.output_dir), **summary}, default=float))


if __name__ == "__main__":
    main()
