# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""FP8 matmuls for the towers' Linear layers (Hopper / Ada GPUs), with no dependency beyond torch.

Weights are stored as float8 e4m3 with one scale per output row, computed once; activations are quantized
per row (token) on the fly, and ``torch._scaled_mm`` multiplies them with both sets of scales applied in its
epilogue. Only the vision and text towers are converted: the projector and the value head are small and
decide the output distribution directly, so they stay in the engine's dtype.

``emulate=True`` runs the same quantization with a dequantized float matmul (any device): the tests use it
on CPUs, where ``_scaled_mm`` has no per-row scaling.
"""

from __future__ import annotations

import torch
from torch import nn

FP8 = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8).max)
_TINY = 1e-12


def supports_fp8(device: torch.device) -> bool:
    """Float8 tensor-core matmuls need compute capability 8.9 (Ada) or newer."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[M, K]`` -> float8 values and float32 scales ``[M, 1]`` with ``x ~= values * scales``."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp_min(_TINY) / FP8_MAX
    return (x.float() / scale).to(FP8), scale


class Fp8Linear(nn.Module):
    """``y = x W^T + b`` with ``W`` in float8 (per-row scales) and ``x`` quantized per row at run time."""

    def __init__(self, linear: nn.Linear, emulate: bool = False) -> None:
        super().__init__()
        weight, scale = quantize_rows(linear.weight.detach())
        self.register_buffer("weight_fp8", weight)  # [N, K], row-major: its transpose is the column-major B
        self.register_buffer("weight_scale", scale.t().contiguous())  # [1, N]
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)
        self.out_dtype = linear.weight.dtype
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.emulate = emulate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        xq, xs = quantize_rows(x.reshape(-1, x.shape[-1]).contiguous())  # _scaled_mm wants A row-major
        if self.emulate:
            w = self.weight_fp8.float() * self.weight_scale.t()
            y = ((xq.float() * xs) @ w.t()).to(self.out_dtype)
        else:
            y = torch._scaled_mm(xq, self.weight_fp8.t(), scale_a=xs, scale_b=self.weight_scale,
                                 out_dtype=self.out_dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, emulate={self.emulate}"


def _eligible(module: nn.Module) -> bool:
    # _scaled_mm needs both matrix sides in multiples of 16 (a 201-bin output layer is not).
    return isinstance(module, nn.Linear) and module.in_features % 16 == 0 and module.out_features % 16 == 0


def convert_to_fp8(towers: list[nn.Module], emulate: bool = False) -> int:
    """Replace every eligible Linear inside ``towers`` with :class:`Fp8Linear`, in place; returns how many."""
    count = 0
    for tower in towers:
        for parent in list(tower.modules()):
            for name, child in list(parent.named_children()):
                if _eligible(child):
                    setattr(parent, name, Fp8Linear(child, emulate=emulate))
                    count += 1
    return count


def convert_with_torchao(towers: list[nn.Module]) -> int:
    """The same conversion through torchao's float8 dynamic quantization (per-row), when torchao is installed.

    Returns the number of Linear layers converted; raises a ValueError naming the fix when torchao is absent.
    """
    try:
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_
    except ImportError as exc:
        raise ValueError(
            f"quantize='fp8-torchao' needs torchao ({exc}); install it (pip install torchao) or use "
            "quantize='fp8', which needs only torch"
        ) from exc
    count = 0
    for tower in towers:
        count += sum(1 for m in tower.modules() if _eligible(m))
        quantize_(tower, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()), filter_fn=lambda m,
                  _fqn: _eligible(m))
    return count
