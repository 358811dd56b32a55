# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Pluggable backbones of the value model: vision towers and language models, looked up by name.

Adding one is a module here (a class implementing :class:`VisionTower` or :class:`LanguageBackbone`,
registered with its decorator), an import below, and a preset in :mod:`ove_ros.model_config` that names it.
"""

from ove_ros.backbones import gemma3, siglip  # noqa: F401 - registers the built-in backbones
from ove_ros.backbones.base import (
    LANGUAGE_BACKBONES,
    VISION_TOWERS,
    LanguageBackbone,
    VisionTower,
    language_backbone,
    register_language_backbone,
    register_vision_tower,
    vision_tower,
)

__all__ = [
    "LANGUAGE_BACKBONES",
    "VISION_TOWERS",
    "LanguageBackbone",
    "VisionTower",
    "language_backbone",
    "register_language_backbone",
    "register_vision_tower",
    "vision_tower",
]
