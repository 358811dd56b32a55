# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""SigLIP vision tower (patch tokens of the last layer; the attention-pooling head is not built)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import SiglipVisionConfig, SiglipVisionModel

from ove_ros.backbones.base import VisionTower, arch_from_hf_config, missing_checkpoint, register_vision_tower

# google/siglip-so400m-patch14-224 (vision tower only).
SIGLIP_SO400M_224: dict[str, Any] = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "num_channels": 3,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "attention_dropout": 0.0,
    "vision_use_head": False,
}

# Hidden 64, 2 layers, 32 px in 8 px patches: the tiny preset's tower.
SIGLIP_TINY: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_channels": 3,
    "image_size": 32,
    "patch_size": 8,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "vision_use_head": False,
}


def siglip_config(arch: dict[str, Any], attn_implementation: str) -> SiglipVisionConfig:
    return SiglipVisionConfig(**arch, attn_implementation=attn_implementation)


@register_vision_tower("siglip")
class SiglipTower(SiglipVisionModel, VisionTower):
    """``SiglipVisionModel`` itself, so its weights keep the names ``vision.vision_model.*``."""

    @classmethod
    def check_arch(cls, arch: dict[str, Any], image_size: int) -> dict[str, Any]:
        arch = dict(arch)
        vision_size = arch.setdefault("image_size", image_size)
        if vision_size != image_size:
            raise ValueError(
                f"image_size={image_size} but vision['image_size']={vision_size}; they must agree"
            )
        if image_size % arch.get("patch_size", 16):
            raise ValueError(f"image_size={image_size} is not a multiple of the vision patch size")
        return arch

    @classmethod
    def width(cls, arch: dict[str, Any]) -> int:
        return int(arch["hidden_size"])

    @classmethod
    def image_size(cls, arch: dict[str, Any]) -> int:
        return int(arch["image_size"])

    @classmethod
    def from_arch(cls, arch: dict[str, Any], attn_implementation: str) -> SiglipTower:
        return cls(siglip_config(arch, attn_implementation))

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, attn_implementation: str
    ) -> tuple[SiglipTower, dict[str, Any]]:
        try:
            model, info = cls.from_pretrained(
                str(path), local_files_only=True, output_loading_info=True, vision_use_head=False,
                attn_implementation=attn_implementation,
            )
        except (OSError, ValueError) as exc:
            raise missing_checkpoint("SigLIP vision", path, exc) from exc
        if info["missing_keys"]:
            missing = sorted(info["missing_keys"])
            raise ValueError(f"SigLIP checkpoint {str(path)!r} lacks weights {missing[:5]} ({len(missing)})")
        arch = arch_from_hf_config(model.config, SiglipVisionConfig, drop=("attn_implementation",))
        arch["vision_use_head"] = False
        return model, arch

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self(pixel_values=pixel_values).last_hidden_state
