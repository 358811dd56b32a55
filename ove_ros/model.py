# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The distributional value model: SigLIP per camera + bidirectional Gemma-3 + MLP head over value bins.

Sequence fed to the language model (right-padded text)::

    [cam_0 patches | cam_1 patches | ... | <bos> Task: ..., State: b1 b2 ...; | pad ...]

The hidden state of the last valid text token goes through a GELU MLP to ``num_bins`` logits. Tokenization
(:meth:`OpenValueEstimator.tokenize`) is separate from the tensor forward
(:meth:`OpenValueEstimator.forward_tensors`) so training and the live engine can precompute or cache it.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    Gemma3TextModel,
    PreTrainedTokenizerBase,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from ove_ros.prompt import STATE_BINS, StateNormalizer, build_prompt, discretize, time_bin
from ove_ros.tokenizer import LOCAL_VOCAB_SIZE, build_local_tokenizer, configure_tokenizer, load_tokenizer
from ove_ros.values import BinSupport, expected_value, value_entropy, value_std

logger = logging.getLogger(__name__)

IMAGES_KEY = "observation.images"
STATE_KEY = "observation.state"
TASK_KEY = "task"

# google/siglip-so400m-patch14-224 (vision tower only; the attention-pooling head is not used).
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

LOCAL_ATTENTION_MODES = ("full", "window")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass
class ValueModelConfig:
    """Architecture of :class:`OpenValueEstimator` (everything needed to rebuild it without weights).

    ``local_attention`` decides what Gemma's sliding-window layers see: ``"full"`` (default) gives them
    bidirectional attention over the whole sequence; ``"window"`` keeps transformers' bidirectional window
    ``|i - j| <= sliding_window // 2``. See :meth:`OpenValueEstimator.attention_masks` for why.
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
    # > 0: elapsed time is an input; the prompt carries "Time: frame_index // time_bin_frames" (prompt.py).
    time_bin_frames: int = 0

    def __post_init__(self) -> None:
        self.camera_names = [str(c) for c in self.camera_names]
        self.vision = dict(self.vision)
        self.text = dict(self.text)
        self.image_mean = [float(v) for v in self.image_mean]
        self.image_std = [float(v) for v in self.image_std]
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names must be non-empty and unique, got {self.camera_names}")
        _ = self.bins  # validates num_bins / v_min / v_max
        vision_size = self.vision.setdefault("image_size", self.image_size)
        if vision_size != self.image_size:
            raise ValueError(
                f"image_size={self.image_size} but vision['image_size']={vision_size}; they must agree"
            )
        if self.image_size % self.vision.get("patch_size", 16):
            raise ValueError(f"image_size={self.image_size} is not a multiple of the vision patch size")
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
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"ValueModelConfig: invalid {', '.join(f'{k}={getattr(self, k)!r}' for k in bad)} "
                f"(local_attention in {LOCAL_ATTENTION_MODES}, attn_implementation in "
                f"{ATTN_IMPLEMENTATIONS}, "
                "3 channels for image mean/std, std > 0, sizes positive)"
            )

    @property
    def bins(self) -> BinSupport:
        return BinSupport(num_bins=self.num_bins, v_min=self.v_min, v_max=self.v_max)

    @property
    def num_cameras(self) -> int:
        return len(self.camera_names)

    @property
    def tokens_per_camera(self) -> int:
        return (self.image_size // self.vision.get("patch_size", 16)) ** 2

    @classmethod
    def tiny(cls, num_cameras: int = 3, state_dim: int = 6, **overrides: Any) -> ValueModelConfig:
        """Hidden 64, 2 layers each, 32 px images: the full code path in milliseconds on a CPU.

        The sliding window (16) is shorter than the sequence so the local-layer choice is exercised.
        """
        vision = {
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
        text = {
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
        kwargs: dict[str, Any] = {
            "vision": vision,
            "text": text,
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
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"ValueModelConfig: unknown keys {unknown}; expected a subset of {sorted(known)}"
            )
        return cls(**copy.deepcopy(dict(data)))


def _with_overrides(kwargs: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Preset arguments updated by ``overrides``; an ``image_size`` override also resizes the vision tower."""
    kwargs.update(overrides)
    if "image_size" in overrides and "vision" not in overrides:
        kwargs["vision"] = {**kwargs["vision"], "image_size": overrides["image_size"]}
    return kwargs


def vision_config(cfg: ValueModelConfig) -> SiglipVisionConfig:
    return SiglipVisionConfig(**cfg.vision, attn_implementation=cfg.attn_implementation)


_RUNTIME_TEXT_KEYS = ("use_bidirectional_attention", "use_cache", "attn_implementation")


def text_config(cfg: ValueModelConfig) -> Gemma3TextConfig:
    # The stored dict keeps the checkpoint's sliding_window; transformers halves it itself when it sees
    # use_bidirectional_attention=True, so the flag is added here and never stored (storing it would halve
    # the window again at every save/load round trip).
    text = {k: v for k, v in cfg.text.items() if k not in _RUNTIME_TEXT_KEYS}
    return Gemma3TextConfig(
        **text, use_bidirectional_attention=True, use_cache=False, attn_implementation=cfg.attn_implementation
    )


def preprocess_images(
    images: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype
) -> torch.Tensor:
    """``[..., 3, H, W]`` (uint8 or float in [0, 1]) -> resized to ``size`` and normalized, in ``dtype``.

    The one preprocessing used by training and the live engine (bilinear with antialias, like a camera
    downscale, then SigLIP's mean/std).
    """
    if images.ndim < 3 or images.shape[-3] != 3:
        raise ValueError(f"images must be [..., 3, H, W] RGB, got shape {tuple(images.shape)}")
    lead, (h, w) = images.shape[:-3], images.shape[-2:]
    x = images.reshape(-1, 3, h, w)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - m) / s
    return x.to(dtype).reshape(*lead, 3, size, size)


class ImageProjector(nn.Module):
    """Patch features -> Gemma width, plus a learned per-camera embedding, at the text tokens' scale.

    Gemma feeds its residual stream with unnormalized embeddings (``embed_tokens`` multiplies by
    sqrt(hidden)); every block normalizes only its branch input, so a token's raw magnitude decides how much
    it weighs against the residual updates. We RMS-normalize the projected patches and multiply by one
    learned gain initialized to the RMS of the scaled text embeddings: image and text tokens enter at the same
    scale, neither drowns the other at the start of fine-tuning, and training may still move the balance.
    """

    def __init__(self, vision_hidden: int, text_hidden: int, num_cameras: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.proj = nn.Linear(vision_hidden, text_hidden)
        self.camera_embed = nn.Parameter(torch.randn(num_cameras, text_hidden) * 0.02)
        self.gain = nn.Parameter(torch.ones(()))
        self.eps = eps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, N, P, Dv]`` -> ``[B, N * P, Dt]``."""
        x = self.proj(features) + self.camera_embed[None, :, None, :].to(features.dtype)
        rms = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        x = (x.float() * rms * self.gain.float()).to(features.dtype)
        return x.flatten(1, 2)


def _build_head(hidden: int, depth: int, width: int, num_bins: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = hidden
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.GELU()]
        d = width
    layers.append(nn.Linear(d, num_bins))
    return nn.Sequential(*layers)


def _as_numpy_states(states: Any) -> np.ndarray:
    if isinstance(states, torch.Tensor):
        states = states.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(states, dtype=np.float64)
    return x[None] if x.ndim == 1 else x


class OpenValueEstimator(nn.Module):
    """Images + task + joint state -> logits over the value bins ``[v_min, v_max]``."""

    def __init__(self, config: ValueModelConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        super().__init__()
        if tokenizer is None:
            tokenizer = build_local_tokenizer()
        vocab = config.text["vocab_size"]
        if len(tokenizer) > vocab:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens but the text model's vocab_size is {vocab}; "
                "use the tokenizer the model was built for or raise text['vocab_size']"
            )
        self.config = config
        self.tokenizer = configure_tokenizer(tokenizer)
        self.vision = SiglipVisionModel(vision_config(config))
        self.text = Gemma3TextModel(text_config(config))
        self.projector = ImageProjector(
            config.vision["hidden_size"], config.text["hidden_size"], config.num_cameras
        )
        self.head = _build_head(
            config.text["hidden_size"], config.head_depth, config.head_hidden, config.num_bins
        )
        self.register_buffer("state_low", -torch.ones(config.state_dim, dtype=torch.float32))
        self.register_buffer("state_high", torch.ones(config.state_dim, dtype=torch.float32))
        centers = torch.as_tensor(config.bins.centers, dtype=torch.float32)
        self.register_buffer("bin_centers", centers, persistent=False)
        self.joint_names: list[str] | None = None
        self.match_token_scale()

    # ------------------------------------------------------------------------------------ housekeeping

    def _apply(self, fn: Any, recurse: bool = True) -> OpenValueEstimator:
        # Keep statistics and bin centers in float32 whatever the weights are cast to: a bf16 joint range
        # would move bin boundaries and the live prompt would no longer match the training prompt.
        keep = {name: getattr(self, name) for name in ("state_low", "state_high", "bin_centers")}
        super()._apply(fn, recurse)
        for name, before in keep.items():
            after = getattr(self, name)
            if after.dtype != torch.float32:
                setattr(self, name, before.to(after.device))
        return self

    @property
    def device(self) -> torch.device:
        # The embedding table: never replaced by quantized modules (unlike Linear weights).
        return self.text.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.text.embed_tokens.weight.dtype

    @torch.no_grad()
    def match_token_scale(self) -> None:
        """Set the image-token gain to the RMS of the scaled text embeddings (see :class:`ImageProjector`)."""
        emb = self.text.embed_tokens
        w = emb.weight.detach()
        rms = torch.linalg.vector_norm(w.float()) / math.sqrt(w.numel())
        scale = float(rms) * float(emb.embed_scale)
        self.projector.gain.fill_(scale if math.isfinite(scale) and scale > 0 else 1.0)

    def set_state_stats(
        self, low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray,
        joint_names: Sequence[str] | None = None,
    ) -> None:
        """Store the per-joint min/max of the training data (they travel with the weights)."""
        names = None if joint_names is None else list(joint_names)
        norm = StateNormalizer(np.asarray(low), np.asarray(high), names)
        device = self.state_low.device
        self.state_low = torch.as_tensor(norm.low, dtype=torch.float32, device=device)
        self.state_high = torch.as_tensor(norm.high, dtype=torch.float32, device=device)
        self.config.state_dim = norm.dim
        self.joint_names = norm.joint_names

    def state_normalizer(self) -> StateNormalizer:
        """The normalizer defined by the stored float32 statistics (float64 copies of the same values)."""
        low = self.state_low.detach().cpu().double().numpy()
        high = self.state_high.detach().cpu().double().numpy()
        return StateNormalizer(low, high, self.joint_names)

    def gradient_checkpointing_enable(self) -> None:
        self.vision.gradient_checkpointing_enable()
        self.text.gradient_checkpointing_enable()

    # -------------------------------------------------------------------------------------- text input

    def time_bins(self, frame_index: Any, batch: int) -> list[int | None]:
        """Per-sample elapsed-time bins (None each when the model takes no time input)."""
        frames = self.config.time_bin_frames
        if not frames:
            return [None] * batch
        if frame_index is None:
            raise ValueError(
                f"this model takes elapsed time as an input (time_bin_frames={frames}): pass frame_index, "
                "the frames since the episode started at the dataset's fps, one per sample"
            )
        idx = np.asarray(frame_index.cpu() if isinstance(frame_index, torch.Tensor) else frame_index)
        idx = idx.reshape(-1)
        if idx.size != batch:
            raise ValueError(f"got {idx.size} frame indices for {batch} samples; pass one per sample")
        return [time_bin(int(f), frames) for f in idx]

    def prompts(self, tasks: Sequence[str] | str, states: Any, frame_index: Any = None) -> list[str]:
        """Raw states ``[B, D]`` + tasks (+ frame indices for a timed model) -> prompt strings."""
        x = _as_numpy_states(states)
        tasks = [tasks] * x.shape[0] if isinstance(tasks, str) else list(tasks)
        if len(tasks) != x.shape[0]:
            raise ValueError(f"got {len(tasks)} tasks for {x.shape[0]} states; pass one task per sample")
        bins = discretize(self.state_normalizer().normalize(x), self.config.state_bins)
        times = self.time_bins(frame_index, x.shape[0])
        return [build_prompt(t, b, tb) for t, b, tb in zip(tasks, bins, times, strict=True)]

    def tokenize(
        self, tasks: Sequence[str] | str, states: Any, pad_to_max: bool = False, frame_index: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> ``input_ids``, ``attention_mask`` ``[B, T]`` on the model's device (right padding).

        ``pad_to_max`` pads to ``max_text_tokens`` (static shapes); otherwise to the longest prompt.
        """
        prompts = self.prompts(tasks, states, frame_index)
        enc = self.tokenizer(
            prompts,
            padding="max_length" if pad_to_max else "longest",
            max_length=self.config.max_text_tokens,
            truncation=False,
            return_tensors="pt",
            return_attention_mask=True,
        )
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if ids.shape[1] > self.config.max_text_tokens:
            longest = int(mask.sum(1).max())
            raise ValueError(
                f"prompt has {longest} tokens > max_text_tokens={self.config.max_text_tokens}; shorten the "
                "task text or build the model with a larger ValueModelConfig.max_text_tokens"
            )
        return ids.to(self.device), mask.to(self.device)

    # ------------------------------------------------------------------------------------ image input

    def preprocess_images(self, images: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        return preprocess_images(
            images.to(self.device), cfg.image_size, cfg.image_mean, cfg.image_std, self.dtype
        )

    def gather_images(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """Preprocessed pixel values ``[B, N, 3, S, S]`` in camera order.

        From ``observation.images`` ``[B, N, C, H, W]`` or per-camera ``observation.images.<cam>``
        ``[B, C, H, W]``.
        """
        names = self.config.camera_names
        if IMAGES_KEY in batch:
            images = batch[IMAGES_KEY]
            if images.ndim != 5 or images.shape[1] != len(names):
                raise ValueError(
                    f"{IMAGES_KEY} must be [B, {len(names)}, C, H, W] (cameras {names}), "
                    f"got shape {tuple(images.shape)}"
                )
            return self.preprocess_images(images)
        missing = [c for c in names if f"{IMAGES_KEY}.{c}" not in batch]
        if missing:
            have = sorted(k for k in batch if k.startswith(IMAGES_KEY))
            raise ValueError(
                f"batch lacks camera(s) {missing}: expected {IMAGES_KEY} [B, N, C, H, W] or keys "
                f"{[f'{IMAGES_KEY}.{c}' for c in names]}, found {have}"
            )
        # Cameras may differ in size: each is resized to the model's size before stacking.
        return torch.stack([self.preprocess_images(batch[f"{IMAGES_KEY}.{c}"]) for c in names], dim=1)

    # ---------------------------------------------------------------------------------- tensor forward

    def attention_masks(self, valid: torch.Tensor, dtype: torch.dtype) -> Any:
        """Attention masks for the language model from the ``[B, L]`` validity of each position.

        Why local layers get full attention (default ``local_attention="full"``): with
        ``use_bidirectional_attention=True`` transformers 4.57 gives sliding layers the window
        ``|i - j| < sliding_window // 2 + 1`` (±256 positions for Gemma-3 270M), and 15 of its 18 layers are
        sliding. Three cameras give 768 image tokens before the text, so in those layers the pooled last text
        token would not see the first camera at all and would hear of it only through the 3 global layers.
        At ~800 tokens a full mask costs about the same as the window (which already spans up to 513 keys),
        so every layer attends over all cameras and the text; the local layers keep their own RoPE base, only
        the mask changes. Padded keys are always masked; padded queries are computed but never read.
        """
        if self.config.local_attention == "window":
            return valid.long()  # transformers builds its bidirectional full/window masks
        additive = torch.zeros(valid.shape[0], 1, 1, valid.shape[1], dtype=dtype, device=valid.device)
        additive = additive.masked_fill(~valid[:, None, None, :], torch.finfo(dtype).min)
        return {"full_attention": additive, "sliding_attention": additive}

    def encode(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Language-model hidden states ``[B, L, H]`` and the pooled (last valid text) index ``[B]``."""
        b, n = pixel_values.shape[:2]
        if n != self.config.num_cameras:
            raise ValueError(f"pixel_values has {n} cameras, the model expects {self.config.num_cameras}")
        feats = self.vision(pixel_values=pixel_values.flatten(0, 1)).last_hidden_state
        image_tokens = self.projector(feats.view(b, n, *feats.shape[1:]))
        text_tokens = self.text.embed_tokens(input_ids).to(image_tokens.dtype)
        embeds = torch.cat([image_tokens, text_tokens], dim=1)
        n_img = image_tokens.shape[1]
        valid = torch.cat(
            [torch.ones(b, n_img, dtype=torch.bool, device=embeds.device), attention_mask.bool()], dim=1
        )
        hidden = self.text(
            inputs_embeds=embeds, attention_mask=self.attention_masks(valid, embeds.dtype), use_cache=False
        ).last_hidden_state
        pooled_index = n_img + attention_mask.long().sum(1) - 1
        return hidden, pooled_index

    def forward_tensors(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Preprocessed ``[B, N, 3, S, S]`` pixels + right-padded tokens -> float32 logits ``[B, bins]``."""
        hidden, index = self.encode(pixel_values, input_ids, attention_mask)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
        return self.head(pooled).float()

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """LeRobot-style batch -> logits ``[B, num_bins]``.

        Keys: ``observation.images`` ``[B, N, C, H, W]`` float in [0, 1] (or ``observation.images.<cam>``),
        ``observation.state`` ``[B, D]`` raw joint values, ``task`` list of str; ``frame_index`` ``[B]`` for a
        model with elapsed time as an input.
        """
        if STATE_KEY not in batch or TASK_KEY not in batch:
            raise ValueError(f"batch needs {STATE_KEY!r} and {TASK_KEY!r}; got keys {sorted(batch)}")
        pixels = self.gather_images(batch)
        ids, mask = self.tokenize(batch[TASK_KEY], batch[STATE_KEY], frame_index=batch.get("frame_index"))
        if ids.shape[0] != pixels.shape[0]:
            raise ValueError(f"batch has {pixels.shape[0]} image rows but {ids.shape[0]} states")
        return self.forward_tensors(pixels, ids, mask)

    # ---------------------------------------------------------------------------------------- outputs

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float(), dim=-1)

    def get_expected_value(self, logits: torch.Tensor) -> torch.Tensor:
        """E[V] ``[B]`` in ``[v_min, v_max]``."""
        return expected_value(self.probs(logits), self.bin_centers)

    def summarize(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = self.probs(logits)
        return {
            "probs": probs,
            "value": expected_value(probs, self.bin_centers),
            "std": value_std(probs, self.bin_centers),
            "entropy": value_entropy(probs),
        }

    @torch.inference_mode()
    def predict(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``probs`` ``[B, num_bins]``, ``value``, ``std``, ``entropy`` ``[B]`` (float32)."""
        return self.summarize(self(batch))

    # ------------------------------------------------------------------------------------ persistence

    def save_pretrained(self, path: str | Path, metadata: Any = None) -> Path:
        """Write a deploy bundle (see :mod:`ove_ros.bundle`); metadata defaults to the model's own."""
        from ove_ros.bundle import BundleMetadata, save_bundle

        return save_bundle(path, self, metadata if metadata is not None else BundleMetadata.from_model(self))

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None
    ) -> OpenValueEstimator:
        from ove_ros.bundle import load_bundle

        return load_bundle(path, device=device, dtype=dtype)[0]

    @classmethod
    def from_backbones(
        cls,
        config: ValueModelConfig,
        vision_path: str | Path | None = None,
        text_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
    ) -> OpenValueEstimator:
        """Model with pretrained SigLIP / Gemma-3 weights found locally (a directory or the HF cache).

        Missing backbones are randomly initialized from ``config``. The architecture fields of ``config`` are
        replaced by those of the loaded checkpoints. The tokenizer comes from ``tokenizer_path``, else
        ``text_path``, else the local tokenizer.
        """
        vision_model = _load_vision(vision_path, config) if vision_path is not None else None
        text_model = _load_text(text_path, config) if text_path is not None else None
        if tokenizer_path is not None or text_path is not None:
            tokenizer = load_tokenizer(tokenizer_path if tokenizer_path is not None else text_path)
        else:
            tokenizer = build_local_tokenizer()
        updates: dict[str, Any] = {}
        if vision_model is not None:
            vision = _arch_dict(vision_model.config, SiglipVisionConfig)
            vision["vision_use_head"] = False
            updates.update(vision=vision, image_size=vision["image_size"])
        if text_model is not None:
            updates["text"] = _arch_dict(text_model.config, Gemma3TextConfig)
        model = cls(replace(config, **updates), tokenizer)
        if vision_model is not None:
            model.vision.load_state_dict(vision_model.state_dict())
        if text_model is not None:
            model.text.load_state_dict(text_model.state_dict())
            model.match_token_scale()
        return model


def _arch_dict(config: Any, cls: type) -> dict[str, Any]:
    """Constructor arguments of ``cls`` taken from a loaded HF config (drops runtime/bookkeeping keys)."""
    params = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
    data = config.to_dict()
    out = {k: data[k] for k in params if k in data}
    if data.get("use_bidirectional_attention") and out.get("sliding_window"):
        out["sliding_window"] = (out["sliding_window"] - 1) * 2  # undo transformers' halving
    for key in _RUNTIME_TEXT_KEYS:
        out.pop(key, None)
    return json.loads(json.dumps(out))


def _missing_backbone(kind: str, path: str | Path, exc: Exception) -> FileNotFoundError:
    return FileNotFoundError(
        f"{kind} weights {str(path)!r} are not available offline (neither a local directory nor in the "
        f"Hugging Face cache): {str(exc).rstrip('.')}. Download them on a machine with network access and "
        "copy the directory here, or pass None to start from random weights"
    )


def _load_vision(path: str | Path, config: ValueModelConfig) -> SiglipVisionModel:
    try:
        model, info = SiglipVisionModel.from_pretrained(
            str(path), local_files_only=True, output_loading_info=True, vision_use_head=False,
            attn_implementation=config.attn_implementation,
        )
    except (OSError, ValueError) as exc:
        raise _missing_backbone("SigLIP vision", path, exc) from exc
    if info["missing_keys"]:
        missing = sorted(info["missing_keys"])
        raise ValueError(f"SigLIP checkpoint {str(path)!r} lacks weights {missing[:5]} ({len(missing)})")
    return model


def _load_text(path: str | Path, config: ValueModelConfig) -> Gemma3TextModel:
    from transformers import AutoConfig

    try:
        hf_config = AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise _missing_backbone("Gemma-3 text", path, exc) from exc
    if hf_config.model_type != "gemma3_text":
        raise ValueError(
            f"{str(path)!r} holds a {hf_config.model_type!r} model; pass a Gemma-3 text checkpoint "
            "(model_type 'gemma3_text', e.g. google/gemma-3-270m)"
        )
    # Hub checkpoints are Gemma3ForCausalLM (weights under "model."); a bare Gemma3TextModel loads directly.
    causal = "Gemma3ForCausalLM" in (hf_config.architectures or [])
    loader = Gemma3ForCausalLM if causal else Gemma3TextModel
    try:
        model, info = loader.from_pretrained(
            str(path), local_files_only=True, output_loading_info=True,
            attn_implementation=config.attn_implementation,
        )
    except (OSError, ValueError) as exc:
        raise _missing_backbone("Gemma-3 text", path, exc) from exc
    missing = [k for k in info["missing_keys"] if not k.startswith("lm_head")]
    if missing:
        raise ValueError(
            f"Gemma-3 checkpoint {str(path)!r} lacks weights {sorted(missing)[:5]} ({len(missing)})"
        )
    return model.model if causal else model
