# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the value model asks of an image encoder and of a language model, and the registries that name them.

A backbone is an ``nn.Module`` (usually a subclass of a transformers model) that also implements one of the
two interfaces below. Its parameter names are what checkpoints and bundles store under ``vision.`` or
``text.``: renaming a submodule breaks every saved model, so a backbone wraps its library's model by
subclassing it rather than holding it as a child.

The architecture of a backbone is a plain JSON dict (``ValueModelConfig.vision`` / ``.text``): it travels in
bundles and checkpoints, and the class methods below read it without building the module.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn


class VisionTower(ABC):
    """Normalized pixels ``[B, 3, S, S]`` -> token features ``[B, P, D]``, one token per output position."""

    @classmethod
    @abstractmethod
    def check_arch(cls, arch: dict[str, Any], image_size: int) -> dict[str, Any]:
        """A validated copy of ``arch`` for ``image_size`` px inputs; ValueError naming the problem."""

    @classmethod
    @abstractmethod
    def width(cls, arch: dict[str, Any]) -> int:
        """Feature size D of the tokens the tower returns."""

    @classmethod
    @abstractmethod
    def image_size(cls, arch: dict[str, Any]) -> int:
        """Side of the square input the tower is built for."""

    @classmethod
    @abstractmethod
    def from_arch(cls, arch: dict[str, Any], attn_implementation: str) -> VisionTower:
        """A randomly initialized tower."""

    @classmethod
    @abstractmethod
    def from_checkpoint(
        cls, path: str | Path, attn_implementation: str
    ) -> tuple[VisionTower, dict[str, Any]]:
        """A tower with pretrained weights from a local directory (or the HF cache), and its arch dict.

        FileNotFoundError (see :func:`missing_checkpoint`) when the files are not on this machine.
        """

    @abstractmethod
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, S, S]`` -> ``[B, P, D]``."""

    def gradient_checkpointing_enable(self) -> None:
        """Recompute activations in the backward pass (transformers models bring their own)."""
        raise _no_checkpointing(self)


class LanguageBackbone(ABC):
    """A bidirectional sequence model over ``[image tokens | text tokens]`` input embeddings.

    Everything tied to one language model lives behind this interface: how token ids become embeddings
    (and at which scale), how padding and local attention become masks, and the vocabulary the tokenizer
    must fit in.
    """

    @classmethod
    @abstractmethod
    def check_arch(cls, arch: dict[str, Any]) -> dict[str, Any]:
        """A validated copy of ``arch`` as it is stored; ValueError naming the problem."""

    @classmethod
    @abstractmethod
    def width(cls, arch: dict[str, Any]) -> int:
        """Hidden size of the residual stream (image tokens are projected to it)."""

    @classmethod
    @abstractmethod
    def vocabulary_size(cls, arch: dict[str, Any]) -> int:
        """Rows of the embedding table: every tokenizer id must be below it."""

    @classmethod
    @abstractmethod
    def from_arch(
        cls, arch: dict[str, Any], attn_implementation: str, local_attention: str
    ) -> LanguageBackbone:
        """A randomly initialized language model.

        ``local_attention`` ("full" or "window") is what layers with a sliding window attend to; models
        without such layers ignore it.
        """

    @classmethod
    @abstractmethod
    def from_checkpoint(
        cls, path: str | Path, attn_implementation: str, local_attention: str
    ) -> tuple[LanguageBackbone, dict[str, Any]]:
        """A language model with pretrained weights from a local directory (or the HF cache), and its arch."""

    @abstractmethod
    def get_input_embeddings(self) -> nn.Embedding:
        """The token embedding table; its weight gives the model's device and dtype."""

    @abstractmethod
    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, T]`` -> input embeddings ``[B, T, H]`` exactly as the model's own inputs enter."""

    @abstractmethod
    def embedding_rms(self) -> float:
        """RMS of a token embedding as it enters the residual stream (any embedding scale included).

        Image tokens are brought to this scale so that neither kind drowns the other.
        """

    @abstractmethod
    def contextualize(self, inputs_embeds: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Hidden states ``[B, L, H]`` of the last layer; ``valid`` ``[B, L]`` is False at padding.

        Every position may attend to every valid position (no causal mask).
        """

    def gradient_checkpointing_enable(self) -> None:
        """Recompute activations in the backward pass (transformers models bring their own)."""
        raise _no_checkpointing(self)


def _no_checkpointing(backbone: object) -> NotImplementedError:
    return NotImplementedError(
        f"backbone {type(backbone).__name__} does not implement gradient checkpointing; train it with "
        "optim.gradient_checkpointing=false or implement gradient_checkpointing_enable()"
    )


Backbone = TypeVar("Backbone", bound=type)

VISION_TOWERS: dict[str, type[VisionTower]] = {}
LANGUAGE_BACKBONES: dict[str, type[LanguageBackbone]] = {}


def _register(table: dict[str, type], kind: type, name: str) -> Callable[[Backbone], Backbone]:
    def add(cls: Backbone) -> Backbone:
        if not (issubclass(cls, kind) and issubclass(cls, nn.Module)):
            raise TypeError(f"{cls.__name__} must be an nn.Module implementing {kind.__name__}")
        if name in table and table[name] is not cls:
            raise ValueError(f"{kind.__name__} {name!r} is already registered to {table[name].__name__}")
        table[name] = cls
        return cls

    return add


def register_vision_tower(name: str) -> Callable[[Backbone], Backbone]:
    """Class decorator: ``ValueModelConfig(vision_backbone=name)`` builds this tower."""
    return _register(VISION_TOWERS, VisionTower, name)


def register_language_backbone(name: str) -> Callable[[Backbone], Backbone]:
    """Class decorator: ``ValueModelConfig(text_backbone=name)`` builds this language model."""
    return _register(LANGUAGE_BACKBONES, LanguageBackbone, name)


def _lookup(table: dict[str, type], what: str, name: str) -> Any:
    if name not in table:
        raise ValueError(
            f"unknown {what} {name!r}; registered: {sorted(table)} (a new one is a module in "
            "ove_ros/backbones/ registered with its decorator, imported by ove_ros/backbones/__init__.py)"
        )
    return table[name]


def vision_tower(name: str) -> type[VisionTower]:
    """The registered vision tower class called ``name`` (ValueError listing the known ones)."""
    return _lookup(VISION_TOWERS, "vision backbone", name)


def language_backbone(name: str) -> type[LanguageBackbone]:
    """The registered language model class called ``name`` (ValueError listing the known ones)."""
    return _lookup(LANGUAGE_BACKBONES, "text backbone", name)


def arch_from_hf_config(config: Any, config_cls: type, drop: Iterable[str] = ()) -> dict[str, Any]:
    """Constructor arguments of ``config_cls`` read from a loaded HF config, as plain JSON types."""
    params = set(inspect.signature(config_cls.__init__).parameters) - {"self", "kwargs"}
    data = config.to_dict()
    out = {k: data[k] for k in params if k in data}
    for key in drop:
        out.pop(key, None)
    return json.loads(json.dumps(out))


def missing_checkpoint(kind: str, path: str | Path, exc: Exception) -> FileNotFoundError:
    """The error for pretrained weights that are not on this machine (no hub access at run time)."""
    return FileNotFoundError(
        f"{kind} weights {str(path)!r} are not available offline (neither a local directory nor in the "
        f"Hugging Face cache): {str(exc).rstrip('.')}. Download them on a machine with network access and "
        "copy the directory here, or pass None to start from random weights"
    )
