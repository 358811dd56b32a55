# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Gemma-3 text model, run bidirectionally, as the value model's language backbone."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, Gemma3ForCausalLM, Gemma3TextConfig, Gemma3TextModel

from ove_ros.backbones.base import (
    LanguageBackbone,
    arch_from_hf_config,
    missing_checkpoint,
    register_language_backbone,
)
from ove_ros.tokenizer import LOCAL_VOCAB_SIZE

# google/gemma-3-270m (text model; 5 local sliding-window layers : 1 global layer).
GEMMA3_270M: dict[str, Any] = {
    "vocab_size": 262144,
    "hidden_size": 640,
    "intermediate_size": 2048,
    "num_hidden_layers": 18,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1_000_000.0,
    "rope_local_base_freq": 10_000.0,
    "rope_scaling": None,
    "query_pre_attn_scalar": 256,
    "sliding_window": 512,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 3,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": None,
    "final_logit_softcapping": None,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
}

# Hidden 64, 2 layers, the local tokenizer's vocabulary. The sliding window (16) is shorter than the
# sequence so the local-layer choice is exercised.
GEMMA3_TINY: dict[str, Any] = {
    **GEMMA3_270M,
    "vocab_size": LOCAL_VOCAB_SIZE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "query_pre_attn_scalar": 32,
    "max_position_embeddings": 1024,
    "sliding_window": 16,
    "layer_types": ["sliding_attention", "full_attention"],
}

_RUNTIME_KEYS = ("use_bidirectional_attention", "use_cache", "attn_implementation")


def gemma3_config(arch: dict[str, Any], attn_implementation: str) -> Gemma3TextConfig:
    # The stored dict keeps the checkpoint's sliding_window; transformers halves it itself when it sees
    # use_bidirectional_attention=True, so the flag is added here and never stored (storing it would halve
    # the window again at every save/load round trip).
    text = {k: v for k, v in arch.items() if k not in _RUNTIME_KEYS}
    return Gemma3TextConfig(
        **text, use_bidirectional_attention=True, use_cache=False, attn_implementation=attn_implementation
    )


@register_language_backbone("gemma3")
class Gemma3Backbone(Gemma3TextModel, LanguageBackbone):
    """``Gemma3TextModel`` itself, so its weights keep their names (``text.embed_tokens.*``, ...)."""

    local_attention = "full"

    @classmethod
    def check_arch(cls, arch: dict[str, Any]) -> dict[str, Any]:
        return dict(arch)  # Gemma3TextConfig validates the values when the model is built

    @classmethod
    def width(cls, arch: dict[str, Any]) -> int:
        return int(arch["hidden_size"])

    @classmethod
    def vocabulary_size(cls, arch: dict[str, Any]) -> int:
        return int(arch["vocab_size"])

    @classmethod
    def from_arch(
        cls, arch: dict[str, Any], attn_implementation: str, local_attention: str
    ) -> Gemma3Backbone:
        model = cls(gemma3_config(arch, attn_implementation))
        model.local_attention = local_attention
        return model

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, attn_implementation: str, local_attention: str
    ) -> tuple[Gemma3Backbone, dict[str, Any]]:
        try:
            hf_config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise missing_checkpoint("Gemma-3 text", path, exc) from exc
        if hf_config.model_type != "gemma3_text":
            raise ValueError(
                f"{str(path)!r} holds a {hf_config.model_type!r} model; pass a Gemma-3 text checkpoint "
                "(model_type 'gemma3_text', e.g. google/gemma-3-270m)"
            )
        # Hub checkpoints are Gemma3ForCausalLM (weights under "model."); a bare text model loads directly.
        causal = "Gemma3ForCausalLM" in (hf_config.architectures or [])
        loader = Gemma3ForCausalLM if causal else Gemma3TextModel
        try:
            loaded, info = loader.from_pretrained(
                str(path), local_files_only=True, output_loading_info=True,
                attn_implementation=attn_implementation,
            )
        except (OSError, ValueError) as exc:
            raise missing_checkpoint("Gemma-3 text", path, exc) from exc
        missing = [k for k in info["missing_keys"] if not k.startswith("lm_head")]
        if missing:
            raise ValueError(
                f"Gemma-3 checkpoint {str(path)!r} lacks weights {sorted(missing)[:5]} ({len(missing)})"
            )
        text = loaded.model if causal else loaded
        arch = arch_from_hf_config(text.config, Gemma3TextConfig, drop=_RUNTIME_KEYS)
        if text.config.to_dict().get("use_bidirectional_attention") and arch.get("sliding_window"):
            arch["sliding_window"] = (arch["sliding_window"] - 1) * 2  # undo transformers' halving
        model = cls.from_arch(arch, attn_implementation, local_attention)
        model.load_state_dict(text.state_dict())
        return model, arch

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embed_tokens(input_ids)  # scaled by sqrt(hidden) inside the embedding module

    def embedding_rms(self) -> float:
        emb = self.embed_tokens
        w = emb.weight.detach()
        rms = torch.linalg.vector_norm(w.float()) / math.sqrt(w.numel())
        return float(rms) * float(emb.embed_scale)

    def attention_masks(self, valid: torch.Tensor, dtype: torch.dtype) -> Any:
        """Attention masks from the ``[B, L]`` validity of each position.

        Why local layers get full attention (default ``local_attention="full"``): with
        ``use_bidirectional_attention=True`` transformers 4.57 gives sliding layers the window
        ``|i - j| < sliding_window // 2 + 1`` (±256 positions for Gemma-3 270M), and 15 of its 18 layers are
        sliding. Three cameras give 768 image tokens before the text, so in those layers the pooled last text
        token would not see the first camera at all and would hear of it only through the 3 global layers.
        At ~800 tokens a full mask costs about the same as the window (which already spans up to 513 keys),
        so every layer attends over all cameras and the text; the local layers keep their own RoPE base, only
        the mask changes. Padded keys are always masked; padded queries are computed but never read.
        """
        if self.local_attention == "window":
            return valid.long()  # transformers builds its bidirectional full/window masks
        additive = torch.zeros(valid.shape[0], 1, 1, valid.shape[1], dtype=dtype, device=valid.device)
        additive = additive.masked_fill(~valid[:, None, None, :], torch.finfo(dtype).min)
        return {"full_attention": additive, "sliding_attention": additive}

    def contextualize(self, inputs_embeds: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        mask = self.attention_masks(valid, inputs_embeds.dtype)
        return self(inputs_embeds=inputs_embeds, attention_mask=mask, use_cache=False).last_hidden_state
