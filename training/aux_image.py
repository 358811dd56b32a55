# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Auxiliary image reconstruction: a linear decoder from each camera's image tokens to its coarse picture.

Trained from scratch on a few dozen episodes, the vision tower learns nothing the value loss does not ask
for at once, and early on the joints answer that loss more cheaply: with the pixels zeroed the simulated
default values as well as with them. Asking the image tokens to also carry an 8x8 copy of the picture (where
the arm, the object and the goal are) keeps the scene in them, for the language model to read. As in
autoencoder-regularised RL from pixels, the decoder is a training-time head only: checkpoints keep it in
their training state for resuming, and neither the model weights nor a bundle contain it, so the deployed
model is unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

RECON_SIZE = 8


class TokenTap:
    """Keeps the output of the model's image projector (``[B, N * P, D]``) from its latest forward pass."""

    def __init__(self, projector: nn.Module) -> None:
        self._tokens: torch.Tensor | None = None
        self._handle = projector.register_forward_hook(self._keep)

    def _keep(self, module: nn.Module, args: Any, out: torch.Tensor) -> None:
        self._tokens = out

    @property
    def tokens(self) -> torch.Tensor:
        if self._tokens is None:
            raise RuntimeError("TokenTap: the model has not run a forward pass since the tap was attached")
        return self._tokens

    def close(self) -> None:
        self._handle.remove()
        self._tokens = None


class ImageReconstruction(nn.Module):
    """Mean squared error of each camera's ``size`` x ``size`` picture (pixels mapped to [-1, 1]) decoded
    linearly from that camera's ``tokens_per_camera`` image tokens of width ``width``."""

    def __init__(self, tokens_per_camera: int, width: int, size: int = RECON_SIZE) -> None:
        super().__init__()
        if tokens_per_camera < 1 or width < 1 or size < 1:
            raise ValueError(
                f"ImageReconstruction: tokens_per_camera={tokens_per_camera}, width={width} and size={size} "
                "must be positive"
            )
        self.tokens_per_camera, self.width, self.size = int(tokens_per_camera), int(width), int(size)
        self.decoder = nn.Linear(self.tokens_per_camera * self.width, 3 * self.size * self.size)

    @classmethod
    @torch.no_grad()
    def for_model(cls, model: Any, size: int = RECON_SIZE) -> ImageReconstruction:
        """Sized for ``model`` (an ``OpenValueEstimator``): one grey frame through its vision tower and
        projector counts the tokens per camera, whatever the backbone."""
        cfg = model.config
        grey = torch.full((1, 3, cfg.image_size, cfg.image_size), 0.5, device=model.device, dtype=model.dtype)
        feats = model.vision.image_features(model.preprocess_images(grey[None])[0])
        tokens = model.projector(feats[None].expand(1, cfg.num_cameras, *feats.shape[1:]))
        return cls(tokens.shape[1] // cfg.num_cameras, tokens.shape[2], size)

    def forward(self, image_tokens: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """``image_tokens`` ``[B, N * P, D]`` (the projector's output) and ``images`` ``[B, N, 3, H, W]`` in
        [0, 1] (what the model was shown) -> scalar loss."""
        b, n = images.shape[:2]
        expected = (b, n * self.tokens_per_camera, self.width)
        if tuple(image_tokens.shape) != expected:
            raise ValueError(
                f"ImageReconstruction: image tokens of shape {tuple(image_tokens.shape)} for {n} camera(s), "
                f"expected {expected}; build it with ImageReconstruction.for_model(model)"
            )
        feats = image_tokens.reshape(b, n, -1).float()
        target = F.adaptive_avg_pool2d(images.flatten(0, 1).float(), self.size).reshape(b, n, -1) * 2.0 - 1.0
        return F.mse_loss(self.decoder(feats), target)
