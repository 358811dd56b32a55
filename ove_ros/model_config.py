# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The value model's architecture as data: which backbones, their sizes, cameras, state, bins, head.

It lives apart from :mod:`ove_ros.model` so that the bundle format can read and validate a model's
configuration without the model class.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ove_ros import typed_config
from ove_ros.backbones import language_backbone, vision_tower
from ove_ros.backbones.gemma3 import GEMMA3_270M, GEMMA3_TINY
from ove_ros.backbones.siglip import SIGLIP_SO400M_224, SIGLIP_TINY
from ove_ros.prompt import STATE_BINS
from ove_ros.value_prior import is_request, validate_prior
from ove_ros.values import BinSupport

LOCAL_ATTENTION_MODES = ("full", "window")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass
class ValueModelConfig:
    """Architecture of :class:`~ove_ros.model.OpenValueEstimator` (everything needed to rebuild it without
    weights).

    ``vision`` and ``text`` are the architecture dicts of the backbones named by ``vision_backbone`` and
    ``text_backbone`` (see :mod:`ove_ros.backbones`). ``local_attention`` decides what the language model's
    sliding-window layers see: ``"full"`` (default) gives them bidirectional attention over the whole
    sequence; ``"window"`` keeps transformers' bidirectional window ``|i - j| <= sliding_window // 2``. See
    :meth:`ove_ros.backbones.gemma3.Gemma3Backbone.attention_masks` for why.
    """

    vision: dict[str, Any]
    text: dict[str, Any]
    camera_names: list[str]
    state_dim: int = 14
    num_bins: int = 201
    v_min: float = -1.0
    v_max: float = 0.0
    head_depth: int = 2
    head_hidden: int = 1024
    max_text_tokens: int = 128
    image_size: int = 224
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    state_bins: int = STATE_BINS
    local_attention: str = "full"
    attn_implementation: str = "sdpa"
    vision_backbone: str = "siglip"
    text_backbone: str = "gemma3"
    # > 0: elapsed time is an input; the prompt carries "Time: frame_index // time_bin_frames" (prompt.py).
    time_bin_frames: int = 0
    # A fitted frame-index prior the head corrects (value_prior.py); None: off. Fitted at training start.
    value_prior: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.camera_names = [str(c) for c in self.camera_names]
        self.image_mean = [float(v) for v in self.image_mean]
        self.image_std = [float(v) for v in self.image_std]
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names must be non-empty and unique, got {self.camera_names}")
        _ = self.bins  # validates num_bins / v_min / v_max
        self.vision = self.vision_tower.check_arch(dict(self.vision), self.image_size)
        self.text = self.language_backbone.check_arch(dict(self.text))
        checks = {
            "state_dim": self.state_dim >= 1,
            "head_depth": self.head_depth >= 0,
            "head_hidden": self.head_hidden >= 1,
            "max_text_tokens": self.max_text_tokens >= 4,
            "state_bins": self.state_bins >= 2,
            "image_mean": len(self.image_mean) == 3,
            "image_std": len(self.image_std) == 3 and min(self.image_std) > 0,
            "local_attention": self.local_attention in LOCAL_ATTENTION_MODES,
            "attn_implementation": self.attn_implementation in ATTN_IMPLEMENTATIONS,
            "time_bin_frames": self.time_bin_frames >= 0,
        }
        if self.value_prior is not None:
            if is_request(self.value_prior):
                raise ValueError(
                    f"ValueModelConfig: value_prior={self.value_prior!r} is a request without fitted tables; "
                    "the prior is fitted on the training episodes at training start (ove_ros.training.train)"
                )
            self.value_prior = validate_prior(self.value_prior, self.v_min, self.v_max)
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"ValueModelConfig: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                f"(local_attention in {LOCAL_ATTENTION_MODES}, attn_implementation in "
                f"{ATTN_IMPLEMENTATIONS}, "
                "3 channels for image mean/std, std > 0, sizes positive)"
            )

    @property
    def vision_tower(self) -> Any:
        """The registered vision tower class (ValueError listing the known names)."""
        return vision_tower(self.vision_backbone)

    @property
    def language_backbone(self) -> Any:
        """The registered language model class (ValueError listing the known names)."""
        return language_backbone(self.text_backbone)

    @property
    def vocab_size(self) -> int:
        return self.language_backbone.vocabulary_size(self.text)

    @property
    def bins(self) -> BinSupport:
        return BinSupport(num_bins=self.num_bins, v_min=self.v_min, v_max=self.v_max)

    @property
    def num_cameras(self) -> int:
        return len(self.camera_names)

    @classmethod
    def tiny(cls, num_cameras: int = 3, state_dim: int = 6, **overrides: Any) -> ValueModelConfig:
        """Hidden 64, 2 layers each, 32 px images: the full code path in milliseconds on a CPU."""
        kwargs: dict[str, Any] = {
            "vision": dict(SIGLIP_TINY),
            "text": copy.deepcopy(GEMMA3_TINY),
            "camera_names": [f"cam{i}" for i in range(num_cameras)],
            "state_dim": state_dim,
            "head_depth": 1,
            "head_hidden": 64,
            "max_text_tokens": 128,
            "image_size": 32,
        }
        return cls(**_with_overrides(kwargs, overrides))

    @classmethod
    def full(cls, num_cameras: int = 3, state_dim: int = 14, **overrides: Any) -> ValueModelConfig:
        """SigLIP so400m/14@224 + Gemma-3 270M (the pi0.6*-style size)."""
        kwargs: dict[str, Any] = {
            "vision": dict(SIGLIP_SO400M_224),
            "text": copy.deepcopy(GEMMA3_270M),
            "camera_names": [f"cam{i}" for i in range(num_cameras)],
            "state_dim": state_dim,
            "head_depth": 2,
            "head_hidden": 1024,
            "max_text_tokens": 128,
            "image_size": 224,
        }
        return cls(**_with_overrides(kwargs, overrides))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))  # plain JSON types (tuples -> lists)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ValueModelConfig:
        return typed_config.from_mapping(cls, copy.deepcopy(dict(data)))


# Model presets by name (``model.preset`` of a training config). A new backbone pair gets one entry here.
PRESETS: dict[str, Callable[..., ValueModelConfig]] = {
    "tiny": ValueModelConfig.tiny,
    "full": ValueModelConfig.full,
}


def _with_overrides(kwargs: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Preset arguments updated by ``overrides``; an ``image_size`` override also resizes the vision tower."""
    kwargs.update(overrides)
    if "image_size" in overrides and "vision" not in overrides:
        kwargs["vision"] = {**kwargs["vision"], "image_size": overrides["image_size"]}
    return kwargs
