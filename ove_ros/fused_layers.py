# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Inference rewrites of the towers' attention and MLP blocks with fewer kernels (same weights, same math).

The live engine swaps these in (``EngineConfig.fused_layers``); training keeps transformers' modules.

* SigLIP attention: the q/k/v projections as one matmul, then SDPA without a mask (flash / cuDNN kernels).
* Gemma-3 attention: q/k/v as one matmul. The model's mask is a key-padding row ``[B, 1, 1, L]`` (the same for
  every query: bidirectional attention, padded text keys masked), so the query heads that share a KV head
  are folded into the sequence axis: SDPA sees ``[B, H_kv, G * L, D]`` queries against ``[B, H_kv, L, D]``
  keys. transformers instead copies K and V ``G`` times (``repeat_kv``) whenever a mask is given. A mask
  that differs per query (``local_attention="window"``) takes the copying path.
* Gemma-3 MLP: the gate and up projections as one matmul.

The fused weights are concatenated copies made once; the original projection modules are dropped.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import nn


def _concat(linears: list[nn.Linear]) -> nn.Linear:
    """One Linear computing ``cat([l(x) for l in linears], -1)``."""
    first = linears[0]
    has_bias = first.bias is not None
    if any((lin.bias is not None) != has_bias or lin.in_features != first.in_features for lin in linears):
        raise ValueError("projections to fuse must share their input size and bias setting")
    out = nn.Linear(first.in_features, sum(lin.out_features for lin in linears), bias=has_bias,
                    device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(torch.cat([lin.weight for lin in linears]))
        if has_bias:
            out.bias.copy_(torch.cat([lin.bias for lin in linears]))
    return out.requires_grad_(first.weight.requires_grad)


class FusedSiglipAttention(nn.Module):
    """``SiglipAttention`` with one q/k/v matmul; returns ``(output, None)`` like the original."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.num_heads, self.head_dim, self.scale = attn.num_heads, attn.head_dim, attn.scale
        self.qkv = _concat([attn.q_proj, attn.k_proj, attn.v_proj])
        self.out_proj = attn.out_proj

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **kwargs: object) -> tuple[torch.Tensor, None]:
        b, n, d = hidden_states.shape
        qkv = self.qkv(hidden_states).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, scale=self.scale)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d)), None


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class FusedGemmaAttention(nn.Module):
    """``Gemma3Attention`` (no KV cache, no soft-capping) with one q/k/v matmul and folded query heads."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        cfg = attn.config
        self.is_sliding = attn.is_sliding  # read by the decoder layer to pick the RoPE table
        self.layer_idx = attn.layer_idx
        self.head_dim = attn.head_dim
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = cfg.num_key_value_heads
        self.scaling = attn.scaling
        self.qkv = _concat([attn.q_proj, attn.k_proj, attn.v_proj])
        self.o_proj = attn.o_proj
        self.q_norm, self.k_norm = attn.q_norm, attn.k_norm

    def forward(self, hidden_states: torch.Tensor, position_embeddings: tuple[torch.Tensor, torch.Tensor],
                attention_mask: torch.Tensor | None, **kwargs: object) -> tuple[torch.Tensor, None]:
        b, n, _ = hidden_states.shape
        h, kv, d = self.num_heads, self.num_kv_heads, self.head_dim
        q, k, v = self.qkv(hidden_states).split([h * d, kv * d, kv * d], dim=-1)
        q = self.q_norm(q.view(b, n, h, d)).transpose(1, 2)
        k = self.k_norm(k.view(b, n, kv, d)).transpose(1, 2)
        v = v.view(b, n, kv, d).transpose(1, 2)
        cos, sin = (t.unsqueeze(1) for t in position_embeddings)
        q = q * cos + _rotate_half(q) * sin
        k = k * cos + _rotate_half(k) * sin
        mask = attention_mask
        if mask is not None and mask.ndim == 4:
            mask = mask[..., :n]
        groups = h // kv
        if mask is None or (mask.ndim == 4 and mask.shape[-2] == 1):
            # Same mask for every query: the G query heads of a KV head become G * n queries of one head.
            out = F.scaled_dot_product_attention(q.reshape(b, kv, groups * n, d), k, v, attn_mask=mask,
                                                 scale=self.scaling)
        else:
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scaling)
        out = out.reshape(b, h, n, d).transpose(1, 2).reshape(b, n, h * d)
        return self.o_proj(out), None


class FusedGemmaMLP(nn.Module):
    """``Gemma3MLP`` with the gate and up projections as one matmul."""

    def __init__(self, mlp: nn.Module) -> None:
        super().__init__()
        self.gate_up = _concat([mlp.gate_proj, mlp.up_proj])
        self.down_proj, self.act_fn = mlp.down_proj, mlp.act_fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down_proj(self.act_fn(gate) * up)


def _replacement(module: nn.Module) -> nn.Module | None:
    from transformers.models.gemma3.modeling_gemma3 import Gemma3Attention, Gemma3MLP
    from transformers.models.siglip.modeling_siglip import SiglipAttention

    if isinstance(module, SiglipAttention):
        return FusedSiglipAttention(module)
    if isinstance(module, Gemma3Attention):
        if module.attn_logit_softcapping is not None:  # SDPA has no soft-capping: keep the original
            return None
        return FusedGemmaAttention(module)
    if isinstance(module, Gemma3MLP):
        return FusedGemmaMLP(module)
    return None


def fuse_layers(model: nn.Module) -> dict[str, int]:
    """Swap every SigLIP / Gemma-3 attention and Gemma-3 MLP in ``model`` for its fused form, in place.

    Returns how many modules of each fused kind were swapped in (empty when the model has none).
    """
    counts: Counter[str] = Counter()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            fused = _replacement(child)
            if fused is not None:
                setattr(parent, name, fused)
                counts[type(fused).__name__] += 1
    return dict(counts)
