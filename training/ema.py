# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Exponential moving average of the model weights (the deployed weights by default)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn


class EMA:
    """fp32 shadow copy of the floating-point parameters, decay ``min(decay, (1 + n) / (10 + n))``.

    The warm-up of the decay lets the average follow the fast early changes instead of staying near the
    random initialization for thousands of steps.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {
            name: p.detach().float().clone() for name, p in model.named_parameters() if p.is_floating_point()
        }

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        for name, p in model.named_parameters():
            s = self.shadow.get(name)
            if s is None:
                continue
            if p.requires_grad:
                s.lerp_(p.detach().float(), 1.0 - d)
            else:  # frozen weights: the average is the weight itself
                s.copy_(p.detach().float())
        self.num_updates += 1

    def state_dict_for(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The model's full state dict (buffers included) with the parameters replaced by their average."""
        state = {k: v.detach() for k, v in model.state_dict().items()}
        for name, s in self.shadow.items():
            if name in state:
                state[name] = s.to(state[name].dtype)
        return state

    @contextmanager
    def swapped_into(self, model: nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights into ``model`` (e.g. for validation)."""
        backup = {name: p.detach().clone() for name, p in model.named_parameters() if name in self.shadow}
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in self.shadow:
                    p.copy_(self.shadow[name].to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name in backup:
                        p.copy_(backup[name])

    def to(self, device: torch.device | str) -> EMA:
        self.shadow = {k: v.to(device) for k, v in self.shadow.items()}
        return self

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates}

    def load_state_dict(self, state: dict[str, Any], shadow: dict[str, torch.Tensor]) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        missing = sorted(set(self.shadow) - set(shadow))
        if missing:
            raise KeyError(f"EMA weights lack {missing[:5]}")
        for name in self.shadow:
            self.shadow[name] = shadow[name].float().to(self.shadow[name].device).clone()
