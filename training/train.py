# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Train the distributional value model on a LeRobot v3 dataset.

One process (CPU or one GPU)::

    python -m ove_ros.training.train config=training/configs/tiny.yaml run_name=my_run data.batch_size=32

Several GPUs or nodes run one process per GPU under ``accelerate`` (or ``torchrun``); the global batch is
``data.batch_size * num_processes * training.gradient_accumulation_steps``::

    accelerate launch --num_processes 8 -m ove_ros.training.train config=training/configs/full.yaml \
        run_name=r1
    accelerate launch --num_machines 2 --machine_rank $NODE_RANK --main_process_ip $MASTER_ADDR \
        --main_process_port 29500 --num_processes 16 -m ove_ros.training.train config=... run_name=r1
    torchrun --nnodes 2 --node_rank $NODE_RANK --master_addr $MASTER_ADDR --nproc_per_node 8 \
        -m ove_ros.training.train config=... run_name=r1

Outputs go to ``<output_root>/<project>/<run_name>/``: ``config.yaml``, ``metrics.jsonl``, ``wandb/`` and the
checkpoints (every ``training.save_every`` steps, newest ``training.keep_last`` kept; layout in
:mod:`ove_ros.training.checkpoint`): ``checkpoint_<step>.safetensors`` with its
``checkpoint_<step>_state/`` and
``checkpoint_ema.safetensors``. Resume an interrupted run with ``training.resume=true`` (its newest intact
checkpoint) or ``training.resume_from=<run dir>/checkpoint_<step>.safetensors``: the run goes on at the same
step with the same schedule, weights, EMA, optimizer state, RNG state and data order.
``training.num_steps`` is accepted for ``training.steps``. ``python -m ove_ros.training.convert`` turns a
checkpoint
into a bundle.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset, default_collate

from ove_ros.model import OpenValueEstimator
from ove_ros.training import checkpoint as ckpt
from ove_ros.training.augment import augment_images, augment_states, drop_images
from ove_ros.training.aux_image import ImageReconstruction, TokenTap
from ove_ros.training.config import Config, ConfigError, run_cli, save_config
from ove_ros.training.contract import conversion_contract
from ove_ros.training.dataset import (
    ValueFrameDataset,
    ValueTargets,
    camera_keys,
    fit_split_normalizers,
    joint_names,
    load_or_compute_targets,
    open_lerobot_dataset,
    short_camera_name,
    split_episodes,
    state_stats,
)
from ove_ros.training.ema import EMA
from ove_ros.training.metrics import consistency_loss, per_task_metrics, regression_metrics, value_loss
from ove_ros.training.modeling import PriorData, build_model, load_value_model
from ove_ros.training.sampler import ResumableBatchSampler

logger = logging.getLogger("ove_ros.training.train")


# ------------------------------------------------------------------------------------------------ data


@dataclass
class TrainData:
    """The opened dataset, its targets and split, and what the bundle needs to know about it."""

    dataset: Any
    targets: ValueTargets
    train_episodes: list[int]
    val_episodes: list[int]
    camera_keys: list[str]
    camera_names: list[str]
    state_key: str
    joint_names: list[str]
    state_low: np.ndarray
    state_high: np.ndarray
    target_clipping: dict[str, Any] = field(default_factory=dict)

    @property
    def state_dim(self) -> int:
        return int(self.state_low.size)

    def frames(self, episodes: Sequence[int] | None, image_size: int, pair_gap: int = 0) -> ValueFrameDataset:
        return ValueFrameDataset(self.dataset, self.targets, episodes, self.camera_keys, self.state_key,
                                 image_size=image_size, pair_gap=pair_gap)

    def metadata(self, cfg: Config) -> dict[str, Any]:
        return {
            "repo_id": cfg.data.repo_id,
            "root": cfg.data.root,
            "camera_keys": self.camera_keys,
            "camera_names": self.camera_names,
            "state_key": self.state_key,
            "joint_names": self.joint_names,
            "state_low": self.state_low.tolist(),
            "state_high": self.state_high.tolist(),
            "task_normalizers": dict(self.targets.normalizers),
            "normalizer_episodes": self.targets.normalizer_episodes,
            "target_clipping": self.target_clipping,
            "reward": cfg.reward.to_dict(),
            "train_episodes": self.train_episodes,
            "val_episodes": self.val_episodes,
            "fps": int(self.dataset.fps),
            "conversion": conversion_contract(self.dataset.root),
            "num_frames": len(self.targets),
        }


def cache_dir(cfg: Config) -> Path:
    return Path(cfg.data.cache_dir) if cfg.data.cache_dir else Path(cfg.output_root) / "cache"


def prepare_data(cfg: Config, main_process_first: Any = nullcontext) -> TrainData:
    """Open the dataset, compute (or load cached) targets, split the episodes."""
    d = cfg.data
    dataset = open_lerobot_dataset(d.repo_id, d.root, d.episodes or None, d.video_backend)
    with main_process_first():  # one process computes and caches, the others read the cache
        targets = load_or_compute_targets(
            dataset, cfg.reward, cache_dir(cfg), d.reward_key, d.assume_success_without_reward
        )
    # Episodes cut short have no value target (their returns stop at the cut): never in either split.
    train_eps, val_eps = split_episodes(
        targets.complete_episodes.tolist(), d.val_fraction, d.split_seed, d.val_episodes
    )
    clipping = fit_split_normalizers(targets, train_eps, val_eps)  # no validation episode in the scales
    keys = camera_keys(dataset, d.camera_names)
    low, high = state_stats(dataset, d.state_key)
    names = joint_names(dataset, d.state_key) or [f"joint_{i}" for i in range(low.size)]
    return TrainData(
        dataset=dataset,
        targets=targets,
        train_episodes=train_eps,
        val_episodes=val_eps,
        camera_keys=keys,
        camera_names=[short_camera_name(k) for k in keys],
        state_key=d.state_key,
        joint_names=names,
        state_low=low,
        state_high=high,
        target_clipping=clipping,
    )


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    return default_collate(items)


MODEL_INPUTS = ("observation.images", "observation.state", "task", "frame_index", "target")


def with_partners(batch: dict[str, Any]) -> dict[str, Any]:
    """The batch with its partner frames (``batch["pair"]``, see ``ValueFrameDataset``) appended along the
    batch dimension: the model's inputs and the targets, samples first."""
    pair = batch["pair"]
    joined = {k: torch.cat([batch[k], pair[k]]) if isinstance(batch[k], torch.Tensor)
              else [*batch[k], *pair[k]] for k in MODEL_INPUTS}
    return {**joined, "pair_valid": batch["pair_valid"]}


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor)
        else to_device(v, device) if isinstance(v, dict) else v
        for k, v in batch.items()
    }


def eval_loader(frames: Any, batch_size: int, num_workers: int, rank: int = 0, world: int = 1) -> DataLoader:
    """Sequential loader over this process's share (every ``world``-th sample) of ``frames``."""
    subset = Subset(frames, list(range(rank, len(frames), world)))
    return DataLoader(
        subset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(0),  # iterating must not consume the global RNG
    )


# --------------------------------------------------------------------------------------- optimization


def lr_lambda(steps: int, warmup: int, min_ratio: float) -> Any:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``steps``."""

    def fn(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return fn


def make_optimizer(model: torch.nn.Module, cfg: Config, *heads: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW over the model and any training-time heads; biases, norm weights and scalar gains get no weight
    decay."""
    decay, no_decay = [], []
    for module in (model, *heads):
        for p in module.parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 else no_decay).append(p)
    t = cfg.training
    groups = [
        {"params": decay, "weight_decay": t.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = torch.cuda.is_available() and all(p.is_cuda for p in decay + no_decay)
    return torch.optim.AdamW(
        groups,
        lr=t.learning_rate,
        betas=(t.betas[0], t.betas[1]),
        eps=t.eps,
        **({"fused": True} if fused else {}),
    )


# ------------------------------------------------------------------------------------------ evaluation


@torch.no_grad()
def predict_frames(
    model: OpenValueEstimator,
    loader: DataLoader,
    device: torch.device,
    cfg: Config,
    autocast: Any = nullcontext,
    max_batches: int | None = None,
) -> dict[str, Any]:
    """E[V], targets, per-sample loss, tasks and indices of every sample of ``loader``."""
    model.eval()
    support = model.config.bins
    out: dict[str, list[Any]] = {"pred": [], "target": [], "loss": [], "task": [], "index": []}
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        batch = to_device(batch, device)
        with autocast():
            logits = model(batch)
        loss = value_loss(
            logits,
            batch["target"],
            support,
            cfg.training.target_encoding,
            cfg.training.hl_gauss_sigma,
            "none",
        )
        out["pred"] += model.get_expected_value(logits).float().cpu().tolist()
        out["target"] += batch["target"].float().cpu().tolist()
        out["loss"] += loss.cpu().tolist()
        out["task"] += list(batch["task"])
        out["index"] += batch["index"].cpu().tolist()
    return out


def summarize_predictions(pred: dict[str, Any]) -> dict[str, Any]:
    p, t, loss = (np.asarray(pred[k], dtype=np.float64) for k in ("pred", "target", "loss"))
    metrics: dict[str, Any] = regression_metrics(p, t, loss)
    metrics["per_task"] = per_task_metrics(p, t, loss, pred["task"])
    return metrics


def validate(model: torch.nn.Module, loader: DataLoader, accelerator: Any, cfg: Config) -> dict[str, Any]:
    """Validation metrics over every process's share, gathered on all processes."""
    from accelerate.utils import gather_object

    unwrapped = accelerator.unwrap_model(model)
    pred = predict_frames(
        unwrapped, loader, accelerator.device, cfg, accelerator.autocast, cfg.training.max_val_batches
    )
    if accelerator.num_processes > 1:
        pred = {k: gather_object(v) for k, v in pred.items()}
    return summarize_predictions(pred)


# ------------------------------------------------------------------------------------------- logging


class MetricsLog:
    """Append-only JSONL of metrics (main process), optionally mirrored to Weights & Biases."""

    def __init__(self, path: Path, wandb_run: Any = None) -> None:
        self.path = path
        self.wandb_run = wandb_run
        self.records: list[dict[str, Any]] = []

    def truncate_after(self, step: int) -> None:
        """On resume, drop records the interrupted run wrote after the checkpoint it resumes from."""
        if not self.path.is_file():
            return
        kept = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line).get("step", 0) <= step
        ]
        ckpt.atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def log(self, split: str, step: int, metrics: dict[str, Any]) -> None:
        record = {"split": split, "step": int(step), "time": time.time(), **metrics}
        self.records.append(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(record, default=float) + "\n")
        if self.wandb_run is not None:
            flat = {f"{split}/{k}": v for k, v in metrics.items() if isinstance(v, (int, float))}
            for task, tm in metrics.get("per_task", {}).items():
                flat.update({f"{split}/{task}/{k}": v for k, v in tm.items()})
            self.wandb_run.log(flat, step=int(step))


def wandb_mode(cfg: Config) -> str:
    mode = cfg.wandb.mode
    env = os.environ.get("WANDB_MODE")
    if env == "disabled" or mode == "disabled":
        return "disabled"
    if mode == "auto":
        return "online" if os.environ.get("WANDB_API_KEY") and env != "offline" else "offline"
    return mode


def init_wandb(cfg: Config, run_dir: Path) -> Any:
    """A W&B run (online with WANDB_API_KEY, offline otherwise), resumed under the same id."""
    mode = wandb_mode(cfg)
    if mode == "disabled":
        return None
    try:
        import wandb
    except ImportError:
        logger.warning("wandb is not installed; logging to metrics.jsonl only")
        return None
    id_file = run_dir / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.is_file() else wandb.util.generate_id()
    ckpt.atomic_write_text(id_file, run_id + "\n")
    return wandb.init(
        project=cfg.wandb.project or cfg.project,
        entity=cfg.wandb.entity,
        name=cfg.run_name,
        id=run_id,
        resume="allow",
        dir=str(run_dir),
        mode=mode,
        tags=list(cfg.wandb.tags),
        config=cfg.to_dict(),
    )


# --------------------------------------------------------------------------------------------- driver


@dataclass
class TrainResult:
    """What a training invocation produced."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    val_metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


def _step_of(path: Path) -> float:
    """A checkpoint's step from its name (inf when the name does not say, e.g. checkpoint_ema)."""
    try:
        return ckpt.checkpoint_step(path) if path.name != ckpt.EMA_LATEST else math.inf
    except (ValueError, OSError, KeyError):
        return math.inf


def _newest_intact(candidates: Sequence[Path], where: Path) -> Path:
    """The newest of ``candidates`` whose files are all complete; warns about each one skipped."""
    for path in sorted(candidates, key=_step_of, reverse=True):
        try:
            ckpt.verify_checkpoint(path)
            return path
        except (ckpt.IncompleteFileError, ckpt.CheckpointError) as exc:
            logger.warning("cannot resume from %s: %s; trying an older checkpoint", path.name, exc)
    raise ConfigError(
        f"{where} has no intact checkpoint to resume from; start a new run (another run_name) or set "
        "model.init_from to a checkpoint whose weights are complete"
    )


def find_resume_checkpoint(cfg: Config) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run (refusing to silently reuse a run dir).

    A checkpoint with an incomplete file is skipped, with a warning, for the newest intact one before it.
    """
    t = cfg.training
    if t.resume_from:
        target = Path(t.resume_from)
        try:
            path = ckpt.resumable(ckpt.resolve_checkpoint(target))
            ckpt.verify_checkpoint(path)
            return path
        except ckpt.IncompleteFileError as exc:
            bad = target if target.is_file() else ckpt.latest_checkpoint(target)
            run_dir = target.parent if target.is_file() else target
            if bad is not None and bad.parent.name == ckpt.LEGACY_DIR:
                run_dir = bad.parent.parent
            limit = _step_of(bad) if bad is not None else math.inf
            older = [p for p in ckpt.list_checkpoints(run_dir) if _step_of(p) < limit]
            logger.warning("%s; falling back to the newest intact checkpoint before it", exc)
            return _newest_intact(older, run_dir)
    found = ckpt.list_checkpoints(cfg.run_dir)
    if t.resume:
        if not found:
            logger.info("training.resume=true but %s has no checkpoint yet: starting a new run", cfg.run_dir)
            return None
        return _newest_intact(found, cfg.run_dir)
    if found:
        raise ConfigError(
            f"{cfg.run_dir} already holds checkpoints (newest {found[-1].name}); pass "
            "training.resume=true to continue that run, or choose another run_name"
        )
    return None


def make_accelerator(cfg: Config) -> Any:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    cpu = cfg.accelerate.cpu or not torch.cuda.is_available()
    mixed = cfg.training.mixed_precision if not cpu else "no"
    ddp = DistributedDataParallelKwargs(find_unused_parameters=cfg.accelerate.find_unused_parameters)
    return Accelerator(mixed_precision=mixed, cpu=cpu, kwargs_handlers=[ddp])


def load_reconstruction(recon: torch.nn.Module, state: dict[str, Any], where: Path) -> None:
    """The auxiliary image decoder's weights from a checkpoint's training state."""
    stored = state.get("aux_image")
    if stored is None:
        raise ConfigError(
            f"{where} was trained without training.aux_image_weight, so it has no image decoder to resume; "
            "resume with training.aux_image_weight=0 or start a new run"
        )
    recon.load_state_dict({k: torch.as_tensor(v) for k, v in stored.items()})


def reduce_head_gradients(head: torch.nn.Module, accelerator: Any, grad_clip: float) -> None:
    """Average a training-time head's gradients over processes (it sits outside the wrapped model, so no
    data-parallel wrapper does it) and clip them as the model's are."""
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    if accelerator.num_processes > 1:
        for g in grads:
            g.copy_(accelerator.reduce(g, reduction="mean"))
    if grad_clip > 0 and grads:
        torch.nn.utils.clip_grad_norm_(head.parameters(), grad_clip)


def train(cfg: Config, wandb_run: Any = None) -> TrainResult:
    """Run (or continue) one training run; returns where it stopped and its last validation metrics.

    ``wandb_run``: an already started W&B run to log into (a sweep agent's); otherwise one is started
    according to ``cfg.wandb``.
    """
    from accelerate.utils import set_seed

    t = cfg.training
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    accelerator = make_accelerator(cfg)
    is_main = accelerator.is_main_process
    run_dir = cfg.run_dir
    resume_dir = find_resume_checkpoint(cfg)
    state: dict[str, Any] | None = None
    if resume_dir is not None:
        state = ckpt.load_training_state(resume_dir, trust_pickle=t.trust_pickled_checkpoint)
        done = int(state["step"])
        if t.steps < done:
            raise ConfigError(
                f"{resume_dir} is at step {done}, past training.steps={t.steps}: there is nothing to "
                f"train; set training.steps (alias training.num_steps) above {done} to continue the run"
            )
        if t.steps == done:
            logger.warning(
                "%s is already at training.steps=%d: nothing to train (raise training.steps to go on)",
                resume_dir, done,
            )
            return TrainResult(
                run_dir=run_dir, step=done, checkpoint=resume_dir,
                val_metrics=dict(ckpt.read_meta(resume_dir).get("metrics", {})),
            )
    set_seed(t.seed)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")

    data = prepare_data(cfg, accelerator.main_process_first)
    train_mask = data.targets.episode_mask(data.train_episodes)  # a frame-index prior sees these only
    prior_data = PriorData(data.targets.frame_tasks(train_mask), data.targets.frame_index[train_mask],
                           data.targets.values[train_mask])
    model = build_model(cfg, data.camera_names, data.state_dim, prior_data)
    if cfg.model.init_from:
        init = load_value_model(cfg.model.init_from, use_ema=True)
        model.load_state_dict(init.model.state_dict(), strict=True)
    model.set_state_stats(data.state_low, data.state_high, data.joint_names)
    if t.freeze_vision:
        model.vision.requires_grad_(False)
    if t.gradient_checkpointing:
        if t.freeze_vision:  # a frozen tower keeps no activations for backward: nothing to recompute
            model.text.gradient_checkpointing_enable()
        else:
            model.gradient_checkpointing_enable()
    ema = EMA(model, t.ema_decay) if t.ema_decay > 0 else None
    recon = ImageReconstruction.for_model(model).to(accelerator.device) if t.aux_image_weight > 0 else None
    optimizer = make_optimizer(model, cfg, *([recon] if recon is not None else []))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(t.steps, t.warmup_steps, t.min_lr_ratio)
    )

    start_step = 0
    if resume_dir is not None and state is not None:
        meta = ckpt.read_meta(resume_dir)
        stored = meta.get("dataset", {})
        if stored.get("train_episodes") != data.train_episodes:
            raise ConfigError(
                f"{resume_dir} was trained on episodes {stored.get('train_episodes')} but this config splits "
                f"{data.train_episodes}; resume with the run's own data settings"
            )
        model.load_state_dict(ckpt.load_weights(resume_dir, use_ema=False)[0], strict=True)
        if recon is not None:
            load_reconstruction(recon, state, resume_dir)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"], ckpt.load_state_dict(ckpt.ema_file(resume_dir)))
        start_step = int(state["step"])
        logger.info("resuming %s at step %d", resume_dir, start_step)

    if t.compile and torch.cuda.is_available():
        model.vision.compile()
        model.text.compile()
    model, optimizer = accelerator.prepare(model, optimizer)
    if ema is not None:
        ema.to(accelerator.device)
    if state is not None:  # after every random initialization, so the stream continues where it stopped
        ckpt.set_rng_state(state["rng"][min(accelerator.process_index, len(state["rng"]) - 1)])

    image_size = accelerator.unwrap_model(model).config.image_size
    train_frames = data.frames(data.train_episodes, image_size,
                               t.consistency_gap if t.consistency_weight > 0 else 0)
    sampler = ResumableBatchSampler(
        len(train_frames),
        cfg.data.batch_size,
        t.seed,
        accelerator.process_index,
        accelerator.num_processes,
        start_batch=start_step * t.gradient_accumulation_steps,
    )
    train_loader = DataLoader(
        train_frames,
        batch_sampler=sampler,
        num_workers=cfg.data.num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=cfg.data.num_workers > 0,
        generator=torch.Generator().manual_seed(t.seed),  # worker seeds: keep the global RNG untouched
    )
    val_loader = None
    if data.val_episodes:
        val_loader = eval_loader(
            data.frames(data.val_episodes, image_size),
            cfg.data.eval_batch_size,
            cfg.data.num_workers,
            accelerator.process_index,
            accelerator.num_processes,
        )

    own_wandb = wandb_run is None
    if is_main and own_wandb:
        wandb_run = init_wandb(cfg, run_dir)
    log = MetricsLog(run_dir / "metrics.jsonl", wandb_run if is_main else None)
    if is_main and resume_dir is not None:
        log.truncate_after(start_step)
    meta_base = {
        "config": cfg.to_dict(),
        "model_config": accelerator.unwrap_model(model).config.to_dict(),
        "dataset": data.metadata(cfg),
        "ema": ema is not None,
    }

    def save(step: int, metrics: dict[str, Any]) -> Path | None:
        accelerator.wait_for_everyone()
        from accelerate.utils import gather_object

        rng_all = gather_object([ckpt.rng_state()]) if accelerator.num_processes > 1 else [ckpt.rng_state()]
        path = None
        if is_main:
            unwrapped = accelerator.unwrap_model(model)
            payload = ckpt.CheckpointPayload(
                step=step,
                model_state=unwrapped.state_dict(),
                ema_state=ema.state_dict_for(unwrapped) if ema is not None else None,
                training_state={
                    "step": step,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "ema": ema.state_dict() if ema is not None else None,
                    **({"aux_image": recon.state_dict()} if recon is not None else {}),
                    "rng": rng_all,
                    "data": {
                        "seed": t.seed,
                        "micro_batch": step * t.gradient_accumulation_steps,
                        "epoch": sampler.epoch_of(step * t.gradient_accumulation_steps),
                    },
                },
                meta={**meta_base, "metrics": metrics},
                tokenizer=unwrapped.tokenizer,
            )
            path = ckpt.save_checkpoint(run_dir, payload, keep_last=t.keep_last)
        accelerator.wait_for_everyone()
        return path

    def run_validation(step: int) -> dict[str, Any]:
        if val_loader is None:
            return {}
        unwrapped = accelerator.unwrap_model(model)
        with ema.swapped_into(unwrapped) if ema is not None else nullcontext():
            metrics = validate(model, val_loader, accelerator, cfg)
        if is_main:
            log.log("val", step, metrics)
        return metrics

    stop_at = t.steps if t.max_steps_this_run is None else min(t.steps, start_step + t.max_steps_this_run)
    step = start_step
    last_ckpt: Path | None = None
    val_metrics: dict[str, Any] = {}
    def new_window() -> dict[str, list[float]]:  # what the next training log record summarizes
        return {"pred": [], "target": [], "loss": [], "aux_image_loss": []}

    window = new_window()
    wait_time = step_time = 0.0
    core = accelerator.unwrap_model(model)  # the model itself, for its statistics (the loop trains `model`)
    tap = TokenTap(core.projector) if recon is not None else None
    support = core.config.bins
    progress = _progress(t.steps, start_step, is_main)
    it = iter(train_loader)
    if step == 0 and t.val_every and accelerator.unwrap_model(model).prior is not None:
        # An anchored model's step 0 is its frame-index prior: validate and keep it, so that choosing the
        # checkpoint on validation can never end worse than the prior.
        val_metrics = run_validation(0)
        last_ckpt = save(0, val_metrics)
    try:
        while step < stop_at:
            model.train()
            tic = time.perf_counter()
            for micro in range(t.gradient_accumulation_steps):
                w0 = time.perf_counter()
                batch = to_device(next(it), accelerator.device)
                wait_time += time.perf_counter() - w0
                paired = "pair" in batch
                if paired:  # one forward pass over the samples and their partner frames
                    batch = with_partners(batch)
                draw = step * t.gradient_accumulation_steps + micro  # seeds this micro-batch's augmentation
                batch["observation.images"] = drop_images(augment_images(
                    batch["observation.images"], t.augment_shift, t.augment_color, t.seed, draw),
                    t.augment_drop_images, t.seed, draw)
                batch["observation.state"] = augment_states(
                    batch["observation.state"], t.augment_state, core.state_low, core.state_high, t.seed,
                    draw)
                last_micro = micro == t.gradient_accumulation_steps - 1
                with nullcontext() if last_micro else accelerator.no_sync(model), accelerator.autocast():
                    logits = model(batch)
                    if paired:
                        logits, later = logits.chunk(2)
                        batch["target"], target_later = batch["target"].chunk(2)
                    loss = value_loss(logits, batch["target"], support, t.target_encoding, t.hl_gauss_sigma)
                    if recon is not None:
                        aux_loss = recon(tap.tokens, batch["observation.images"])
                        loss = loss + t.aux_image_weight * aux_loss
                        window["aux_image_loss"].append(float(aux_loss.detach()))
                    if paired:
                        unwrapped = accelerator.unwrap_model(model)
                        loss = loss + t.consistency_weight * consistency_loss(
                            unwrapped.get_expected_value(logits), batch["target"],
                            unwrapped.get_expected_value(later), target_later, batch["pair_valid"])
                accelerator.backward(loss / t.gradient_accumulation_steps)
                with torch.no_grad():
                    window["pred"] += (
                        accelerator.unwrap_model(model).get_expected_value(logits).cpu().tolist()
                    )
                    window["target"] += batch["target"].cpu().tolist()
                    window["loss"].append(float(loss.detach()))
            if recon is not None:
                reduce_head_gradients(recon, accelerator, t.grad_clip)
            grad_norm = (
                accelerator.clip_grad_norm_(model.parameters(), t.grad_clip) if t.grad_clip > 0 else None
            )
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if ema is not None:
                ema.update(accelerator.unwrap_model(model))
            step_time += time.perf_counter() - tic
            progress.update(1)

            if (step % t.log_every == 0 or step == stop_at) and accelerator.num_processes > 1:
                from accelerate.utils import gather_object  # every process's share: global-batch metrics

                window = {k: gather_object(v) for k, v in window.items()}
            if is_main and (step % t.log_every == 0 or step == stop_at):
                m = regression_metrics(np.asarray(window["pred"]), np.asarray(window["target"]))
                samples = len(window["pred"])
                record = {
                    "loss": float(np.mean(window["loss"])),
                    "mae": m["mae"],
                    "ev": m["ev"],
                    "lr": scheduler.get_last_lr()[0],
                    "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                    "samples_per_s": samples / max(step_time, 1e-9),
                    "data_wait_fraction": wait_time / max(step_time, 1e-9),
                    "epoch": sampler.epoch_of(step * t.gradient_accumulation_steps),
                    **({"aux_image_loss": float(np.mean(window["aux_image_loss"]))}
                       if window["aux_image_loss"] else {}),
                }
                log.log("train", step, record)
                progress.set_postfix(loss=f"{record['loss']:.4f}", ev=f"{record['ev']:.3f}")
            if step % t.log_every == 0 or step == stop_at:
                window = new_window()
                wait_time = step_time = 0.0
            if t.val_every and step % t.val_every == 0 and step < t.steps:
                val_metrics = run_validation(step)
            if step % t.save_every == 0 or step == stop_at:
                if step == t.steps:
                    val_metrics = run_validation(step)
                last_ckpt = save(step, val_metrics)
    finally:
        progress.close()
        if tap is not None:
            tap.close()
        if is_main and own_wandb and wandb_run is not None:
            wandb_run.finish()
    return TrainResult(
        run_dir=run_dir, step=step, checkpoint=last_ckpt, val_metrics=val_metrics, history=log.records
    )


def _progress(total: int, initial: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", dynamic_ncols=True)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        result = run_cli("ove_ros.training.train", __doc__, argv, train)
    finally:
        # Left to interpreter exit, gloo's threads can outlive its process group and abort the process
        # ("terminate called without an active exception") after training has finished.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if result is None:
        return
    summary = {k: v for k, v in result.val_metrics.items() if k != "per_task"}
    print(
        json.dumps(
            {
                "run_dir": str(result.run_dir),
                "step": result.step,
                "checkpoint": str(result.checkpoint),
                "val": summary,
            },
            default=float,
        )
    )


if __name__ == "__main__":
    main()
