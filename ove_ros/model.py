# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The distributional value model: a vision tower per camera + a bidirectional language model + an MLP head
over value bins (SigLIP and Gemma-3 in the presets; pluggable backbones, see :mod:`ove_ros.backbones`).

Sequence fed to the language model (right-padded text)::

    [cam_0 patches | cam_1 patches | ... | <bos> Task: ..., State: b1 b2 ...; | pad ...]

The hidden state of the last valid text token goes through a GELU MLP to ``num_bins`` logits. Tokenization
(:meth:`OpenValueEstimator.tokenize`) is separate from the tensor forward
(:meth:`OpenValueEstimator.forward_tensors`) so training and the live engine can precompute or cache it.
The architecture is :class:`~ove_ros.model_config.ValueModelConfig`; :func:`load_bundle` builds a model from
a deploy bundle (:mod:`ove_ros.bundle`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedTokenizerBase

from ove_ros.bundle import BundleError, BundleMetadata, read_bundle, save_bundle
from ove_ros.model_config import ValueModelConfig
from ove_ros.prompt import StateNormalizer, build_prompt, discretize, time_bin
from ove_ros.tokenizer import build_local_tokenizer, configure_tokenizer, load_tokenizer
from ove_ros.value_prior import PriorTable
from ove_ros.values import expected_value, value_entropy, value_std

logger = logging.getLogger(__name__)

IMAGES_KEY = "observation.images"
STATE_KEY = "observation.state"
TASK_KEY = "task"

__all__ = ["OpenValueEstimator", "ValueModelConfig", "load_bundle", "preprocess_images"]


def preprocess_images(
    images: torch.Tensor, size: int, mean: Sequence[float], std: Sequence[float], dtype: torch.dtype
) -> torch.Tensor:
    """``[..., 3, H, W]`` (uint8 or float in [0, 1]) -> resized to ``size`` and normalized, in ``dtype``.

    The one preprocessing used by training and the live engine (bilinear with antialias, like a camera
    downscale, then the vision tower's mean/std).
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
    """Patch features -> language-model width, plus a learned per-camera embedding, at the text tokens' scale.

    Pre-norm language models such as Gemma feed their residual stream with unnormalized embeddings (Gemma's
    are multiplied by sqrt(hidden)); every block normalizes only its branch input, so a token's raw magnitude
    decides how much it weighs against the residual updates. We RMS-normalize the projected patches and
    multiply by one learned gain initialized to the RMS of the text embeddings as they enter
    (:meth:`LanguageBackbone.embedding_rms`): image and text tokens enter at the same scale, neither drowns
    the other at the start of fine-tuning, and training may still move the balance.
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


def check_image_values(images: torch.Tensor) -> None:
    """Reject images the model would silently misread: NaN/inf pixels, float images in 0..255 (floats are
    read as [0, 1]; uint8 images in 0..255 are fine), other integer types."""
    if images.dtype == torch.uint8 or images.numel() == 0:
        return
    if not torch.is_floating_point(images):
        raise ValueError(f"images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
    if not bool(torch.isfinite(images).all()):
        raise ValueError(
            "images contain NaN or infinite values; check the camera frames before calling the model"
        )
    low, high = (float(v) for v in torch.aminmax(images.detach()))
    if low < -1e-3 or high > 1.0 + 1e-3:
        hint = (
            "they look like 0..255 values: divide by 255 or pass uint8 images"
            if high > 1.0 + 1e-3 and high <= 255.0 + 1e-3 and low >= -1e-3
            else "float images must lie in [0, 1]"
        )
        raise ValueError(f"float images range over [{low:g}, {high:g}], not [0, 1]: {hint}")


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
        vocab = config.vocab_size
        if len(tokenizer) > vocab:
            raise ValueError(
                f"tokenizer has {len(tokenizer)} tokens but the text model's vocab_size is {vocab}; "
                "use the tokenizer the model was built for or raise text['vocab_size']"
            )
        self.config = config
        self.tokenizer = configure_tokenizer(tokenizer)
        tower, lm = config.vision_tower, config.language_backbone
        self.vision = tower.from_arch(config.vision, config.attn_implementation)
        self.text = lm.from_arch(config.text, config.attn_implementation, config.local_attention)
        text_width = lm.width(config.text)
        self.projector = ImageProjector(tower.width(config.vision), text_width, config.num_cameras)
        self.head = _build_head(text_width, config.head_depth, config.head_hidden, config.num_bins)
        self.register_buffer("state_low", -torch.ones(config.state_dim, dtype=torch.float32))
        self.register_buffer("state_high", torch.ones(config.state_dim, dtype=torch.float32))
        centers = torch.as_tensor(config.bins.centers, dtype=torch.float32)
        self.register_buffer("bin_centers", centers, persistent=False)
        # The frame-index prior (value_prior.py): rows of log-probabilities rebuilt from the config, so
        # checkpoints and bundles carry only the table. Its head starts at zero: step 0 is the prior.
        self.prior: PriorTable | None = None
        if config.value_prior is not None:
            self.prior = PriorTable(config.value_prior, config.bins.centers)
            rows = torch.as_tensor(self.prior.log_probs, dtype=torch.float32)
            self.register_buffer("prior_log_probs", rows, persistent=False)
            with torch.no_grad():
                self.head[-1].weight.zero_()
                self.head[-1].bias.zero_()
        self.joint_names: list[str] | None = None
        self.match_token_scale()

    # ------------------------------------------------------------------------------------ housekeeping

    def _apply(self, fn: Any, recurse: bool = True) -> OpenValueEstimator:
        # Keep statistics and bin centers in float32 whatever the weights are cast to: a bf16 joint range
        # would move bin boundaries and the live prompt would no longer match the training prompt.
        names = ("state_low", "state_high", "bin_centers", "prior_log_probs")
        keep = {name: getattr(self, name) for name in names if hasattr(self, name)}
        super()._apply(fn, recurse)
        for name, before in keep.items():
            after = getattr(self, name)
            if after.dtype != torch.float32:
                setattr(self, name, before.to(after.device))
        return self

    @property
    def device(self) -> torch.device:
        # The embedding table: never replaced by quantized modules (unlike Linear weights).
        return self.text.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.text.get_input_embeddings().weight.dtype

    @torch.no_grad()
    def match_token_scale(self) -> None:
        """Set the image-token gain to the RMS of the text embeddings (see :class:`ImageProjector`)."""
        scale = self.text.embedding_rms()
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

    # ---------------------------------------------------------------------------------- frame-index prior

    def prior_logits(self, tasks: Sequence[str] | str, frame_index: Any, batch: int) -> torch.Tensor | None:
        """``[B, bins]`` float32 log-probabilities of the frame-index prior to add to the head's logits (zeros
        for a task the prior does not know); None when the model has no prior."""
        if self.prior is None:
            return None
        if frame_index is None:
            raise ValueError(
                "this model's values are anchored on a frame-index prior (value_prior): pass frame_index, "
                "the frames since the episode started at the dataset's fps, one per sample"
            )
        idx = np.asarray(frame_index.cpu() if isinstance(frame_index, torch.Tensor) else frame_index)
        idx = idx.reshape(-1)
        tasks = [tasks] * batch if isinstance(tasks, str) else list(tasks)
        if idx.size != batch or len(tasks) != batch:
            raise ValueError(f"got {idx.size} frame indices and {len(tasks)} tasks for {batch} samples; "
                             "pass one of each per sample")
        rows, known = self.prior.rows(tasks, idx.tolist())
        table = self.prior_log_probs
        out = table[torch.as_tensor(np.maximum(rows, 0), device=table.device)]
        if not known.all():
            out = out * torch.as_tensor(known, device=table.device, dtype=out.dtype)[:, None]
        return out

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
        check_image_values(images)
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

    def encode(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Language-model hidden states ``[B, L, H]`` and the pooled (last valid text) index ``[B]``."""
        b, n = pixel_values.shape[:2]
        if n != self.config.num_cameras:
            raise ValueError(f"pixel_values has {n} cameras, the model expects {self.config.num_cameras}")
        feats = self.vision.image_features(pixel_values.flatten(0, 1))
        image_tokens = self.projector(feats.view(b, n, *feats.shape[1:]))
        text_tokens = self.text.embed(input_ids).to(image_tokens.dtype)
        embeds = torch.cat([image_tokens, text_tokens], dim=1)
        n_img = image_tokens.shape[1]
        valid = torch.cat(
            [torch.ones(b, n_img, dtype=torch.bool, device=embeds.device), attention_mask.bool()], dim=1
        )
        hidden = self.text.contextualize(embeds, valid)
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
        model with elapsed time as an input or a frame-index prior (whose log-probabilities are added to the
        head's logits here; :meth:`forward_tensors` is the head alone).
        """
        if STATE_KEY not in batch or TASK_KEY not in batch:
            raise ValueError(f"batch needs {STATE_KEY!r} and {TASK_KEY!r}; got keys {sorted(batch)}")
        pixels = self.gather_images(batch)
        ids, mask = self.tokenize(batch[TASK_KEY], batch[STATE_KEY], frame_index=batch.get("frame_index"))
        if ids.shape[0] != pixels.shape[0]:
            raise ValueError(f"batch has {pixels.shape[0]} image rows but {ids.shape[0]} states")
        logits = self.forward_tensors(pixels, ids, mask)
        prior = self.prior_logits(batch[TASK_KEY], batch.get("frame_index"), ids.shape[0])
        return logits if prior is None else logits + prior

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
        return save_bundle(path, self, metadata if metadata is not None else BundleMetadata.from_model(self))

    @classmethod
    def from_pretrained(
        cls, path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None
    ) -> OpenValueEstimator:
        """A deploy bundle directory, or a training checkpoint file (``checkpoint_<step>.safetensors``,
        ``checkpoint_ema.safetensors``) with the tokenizer folder of its run beside it."""
        if Path(path).suffix == ".safetensors":
            from ove_ros.bundle import parse_dtype
            return load_checkpoint_file(path, device=device, dtype=parse_dtype(dtype))
        return load_bundle(path, device=device, dtype=dtype)[0]

    @classmethod
    def from_backbones(
        cls,
        config: ValueModelConfig,
        vision_path: str | Path | None = None,
        text_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
    ) -> OpenValueEstimator:
        """Model with pretrained backbone weights found locally (a directory or the HF cache).

        Missing backbones are randomly initialized from ``config``. The architecture fields of ``config`` are
        replaced by those of the loaded checkpoints. The tokenizer comes from ``tokenizer_path``, else
        ``text_path``, else the local tokenizer.
        """
        tower, lm = config.vision_tower, config.language_backbone
        attn = config.attn_implementation
        vision = tower.from_checkpoint(vision_path, attn) if vision_path is not None else None
        text = lm.from_checkpoint(text_path, attn, config.local_attention) if text_path is not None else None
        if tokenizer_path is not None or text_path is not None:
            tokenizer = load_tokenizer(tokenizer_path if tokenizer_path is not None else text_path)
        else:
            tokenizer = build_local_tokenizer()
        updates: dict[str, Any] = {}
        if vision is not None:
            updates.update(vision=vision[1], image_size=tower.image_size(vision[1]))
        if text is not None:
            updates["text"] = text[1]
        model = cls(replace(config, **updates), tokenizer)
        if vision is not None:
            model.vision.load_state_dict(vision[0].state_dict())
        if text is not None:
            model.text.load_state_dict(text[0].state_dict())
            model.match_token_scale()
        return model


def load_bundle(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | str | None = None
) -> tuple[OpenValueEstimator, BundleMetadata]:
    """Load and validate a deploy bundle; ``dtype=None`` keeps the stored dtype. The model is in eval mode;
    an ensemble bundle gives a :class:`ove_ros.ensemble.ValueEnsemble`, which has the same interface.

    :mod:`ove_ros.bundle` reads and checks the files; this builds the model they describe.
    """
    from transformers.modeling_utils import no_init_weights

    contents = read_bundle(path, dtype)
    with no_init_weights():  # every weight is overwritten by load_into: skip the (slow) random init
        models = [OpenValueEstimator(contents.config, contents.tokenizer) for _ in range(contents.members)]
    if contents.members > 1:
        from ove_ros.ensemble import ValueEnsemble

        try:
            model = ValueEnsemble(models)
        except ValueError as exc:
            raise BundleError(f"{contents.root}: {exc}") from None
    else:
        model = models[0]
    contents.load_into(model)
    if contents.members > 1:
        from ove_ros.ensemble import disagreement

        problem = disagreement(models)  # again with the stored statistics
        if problem:
            raise BundleError(f"{contents.root}: ensemble members disagree: {problem}; re-export the bundle")
    model.to(device=device)
    if contents.dtype is not None:
        model.to(dtype=contents.dtype)
    return model.eval(), contents.metadata


def load_checkpoint_file(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> OpenValueEstimator:
    """The model stored in one checkpoint file, in eval mode; ``model.checkpoint_meta`` holds its
    description."""
    from transformers.modeling_utils import no_init_weights

    from ove_ros.checkpoint_file import checkpoint_meta, checkpoint_tokenizer, read_tensors

    path = Path(path)
    meta = checkpoint_meta(path)
    config = ValueModelConfig.from_dict(meta["model_config"])
    tokenizer = checkpoint_tokenizer(path, config.text.get("vocab_size"))
    with no_init_weights():  # every weight is loaded below
        model = OpenValueEstimator(config, tokenizer)
    state = read_tensors(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not match the model config stored with them ({exc})") from exc
    model.joint_names = meta.get("dataset", {}).get("joint_names") or None
    model.checkpoint_meta = meta
    model = model.to(device)
    if dtype is not None:
        model = model.to(dtype=dtype)
    return model.eval()
