# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Auxiliary image reconstruction (prototype): a linear decoder from each camera's image tokens to its 8x8
picture, trained beside the value loss so the vision tower keeps where things are in the scene."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

AUX_SIZE = 8


class AuxImageDecoder:
    def __init__(self, core: Any, device: torch.device, lr: float = 1e-3) -> None:
        cfg = core.config
        self.cameras = cfg.num_cameras
        self.tokens: torch.Tensor | None = None
        self._hook = core.projector.register_forward_hook(self._keep)
        self.decoder: nn.Module | None = None
        self.device = device
        self.lr = lr

    def _keep(self, module: nn.Module, args: Any, out: torch.Tensor) -> None:
        self.tokens = out

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.tokens
        b = tokens.shape[0]
        feats = tokens.reshape(b, self.cameras, -1).float()
        if self.decoder is None:
            self.decoder = nn.Linear(feats.shape[-1], 3 * AUX_SIZE * AUX_SIZE).to(self.device)
            self.optimizer = torch.optim.AdamW(self.decoder.parameters(), lr=self.lr, weight_decay=0.0)
        target = torch.nn.functional.adaptive_avg_pool2d(images.flatten(0, 1).float(), AUX_SIZE)
        target = (target.reshape(b, self.cameras, -1) - 0.5) * 2.0
        return torch.nn.functional.mse_loss(self.decoder(feats), target)

    def step(self) -> None:
        if self.decoder is not None:
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
