# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Build the value model from a training config, and load one for inference from a checkpoint or bundle."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ove_ros.model import OpenValueEstimator, ValueModelConfig, load_checkpoint_file
from ove_ros.model_config import PRESETS
from ove_ros.tokenizer import build_local_tokenizer, load_tokenizer
from ove_ros.training import checkpoint as ckpt
from ove_ros.training.config import Config
from ove_ros.value_prior import check_request, fit_value_prior, is_request, min_std_for
from ove_ros.values import RewardConfig

logger = logging.getLogger(__name__)

def model_config_from(
    cfg: Config, camera_names: list[str], state_dim: int, targets: PriorData | None = None
) -> ValueModelConfig:
    """The preset, with the dataset's cameras and state size and the config's overrides.

    ``model.overrides={value_prior: {bin_frames: N}}`` asks for a frame-index prior: it is fitted here on
    ``targets``, the training episodes' frames (the targets the model trains on), never on other episodes.
    """
    if cfg.model.preset not in PRESETS:
        raise ValueError(f"model.preset={cfg.model.preset!r}; choose one of {sorted(PRESETS)}")
    base = PRESETS[cfg.model.preset](num_cameras=len(camera_names), state_dim=state_dim).to_dict()
    overrides = copy.deepcopy(dict(cfg.model.overrides))
    for section in ("vision", "text"):
        if section in overrides:
            base[section].update(overrides.pop(section))
    base.update(overrides)
    if "image_size" in overrides:
        base["vision"]["image_size"] = overrides["image_size"]
    if cfg.model.value_head_depth is not None:
        base["head_depth"] = int(cfg.model.value_head_depth)
    base["camera_names"] = list(camera_names)
    base["state_dim"] = int(state_dim)
    if is_request(base.get("value_prior")):
        frames = check_request(base["value_prior"])
        if targets is None:
            raise ValueError(
                "model.overrides.value_prior asks for a frame-index prior, which is fitted on the training "
                "episodes at training start: build this model through ove_ros.training.train"
            )
        support = ValueModelConfig.from_dict({**base, "value_prior": None}).bins
        base["value_prior"] = fit_value_prior(
            targets.tasks, targets.frame_index, targets.values, frames,
            min_std_for(support.num_bins, support.v_min, support.v_max),
        )
        logger.info("value prior fitted on %d training frames, %d task(s), %d frame(s) per bin",
                    len(targets.values), len(base["value_prior"]["tasks"]), frames)
    return ValueModelConfig.from_dict(base)


@dataclass
class PriorData:
    """What a frame-index prior is fitted on: one task, frame index and training target per training frame."""

    tasks: list[str]
    frame_index: np.ndarray
    values: np.ndarray


def build_model(
    cfg: Config, camera_names: list[str], state_dim: int, targets: PriorData | None = None
) -> OpenValueEstimator:
    """A fresh model: pretrained backbones where the config names local copies, random init elsewhere;
    ``targets`` (the training frames) fit the frame-index prior when the config asks for one."""
    mcfg = model_config_from(cfg, camera_names, state_dim, targets)
    m = cfg.model
    if m.pretrained_vision or m.pretrained_text or m.tokenizer_path:
        return OpenValueEstimator.from_backbones(
            mcfg, m.pretrained_vision, m.pretrained_text, m.tokenizer_path
        )
    return OpenValueEstimator(mcfg, build_local_tokenizer())


@dataclass
class LoadedModel:
    """A model ready for inference plus what its training run knew about the data."""

    model: OpenValueEstimator
    source: str
    path: Path
    task_normalizers: dict[str, float]
    default_scale: float
    reward: RewardConfig
    used_ema: bool
    meta: dict[str, Any] = field(default_factory=dict)

    def scale_for(self, task: str) -> float:
        return self.task_normalizers.get(task, self.default_scale)


def is_bundle(path: Path) -> bool:
    from ove_ros.bundle import CONFIG_FILE, WEIGHTS_FILE

    return (Path(path) / CONFIG_FILE).is_file() and (Path(path) / WEIGHTS_FILE).is_file()


def model_from_checkpoint(
    path: Path, use_ema: bool = True, device: str | torch.device = "cpu"
) -> tuple[OpenValueEstimator, dict[str, Any], bool]:
    """Rebuild the model of a training checkpoint (file, older directory or run directory).

    Returns (model in eval mode, checkpoint meta, used_ema).
    """
    from transformers.modeling_utils import no_init_weights

    ckpt_path = ckpt.resolve_checkpoint(Path(path))
    weights, used_ema = ckpt.weights_file(ckpt_path, use_ema=use_ema)
    if ckpt_path.is_file():
        model = load_checkpoint_file(weights, device=device)
        return model, ckpt.read_meta(ckpt_path), used_ema
    meta = ckpt.read_meta(ckpt_path)  # an older step directory: config in checkpoint.json
    mcfg = ValueModelConfig.from_dict(meta["model_config"])
    tok_dir = ckpt_path / ckpt.TOKENIZER_DIR
    tokenizer = load_tokenizer(tok_dir) if tok_dir.is_dir() else build_local_tokenizer()
    with no_init_weights():  # every weight is loaded below
        model = OpenValueEstimator(mcfg, tokenizer)
    model.load_state_dict(ckpt.load_state_dict(weights), strict=True)
    model.joint_names = meta.get("dataset", {}).get("joint_names") or None
    return model.to(device).eval(), meta, used_ema


def load_value_model(
    path: str | Path, use_ema: bool = True, device: str | torch.device = "cpu"
) -> LoadedModel:
    """A deploy bundle, a training checkpoint file or older checkpoint directory, or a run directory (its
    newest checkpoint)."""
    path = Path(path)
    if is_bundle(path):
        from ove_ros.model import load_bundle

        model, md = load_bundle(path, device=device)
        return LoadedModel(
            model=model.float().eval(),
            source="bundle",
            path=path,
            task_normalizers=dict(md.task_normalizers),
            default_scale=float(md.default_scale),
            reward=RewardConfig.from_dict(md.reward),
            used_ema=bool(md.training.get("ema", False)),
            meta=md.to_dict(),
        )
    ckpt_dir = ckpt.resolve_checkpoint(path)
    model, meta, used_ema = model_from_checkpoint(ckpt_dir, use_ema=use_ema, device=device)
    data = meta.get("dataset", {})
    normalizers = {k: float(v) for k, v in data.get("task_normalizers", {}).items()}
    return LoadedModel(
        model=model,
        source="checkpoint",
        path=ckpt_dir,
        task_normalizers=normalizers,
        default_scale=default_scale(normalizers),
        reward=RewardConfig.from_dict(data.get("reward", {})),
        used_ema=used_ema,
        meta=meta,
    )


def default_scale(normalizers: dict[str, float]) -> float:
    """Scale for tasks unseen in training: the largest known one (values stay within [-1, 0])."""
    return max(normalizers.values()) if normalizers else 1.0
