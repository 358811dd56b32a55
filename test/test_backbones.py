# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Backbone registry, a second backbone pair end to end, and old bundles loading unchanged.

The reference files in test/data were written by the model code of commit 8fa9899, before the backbones
became pluggable: the tiny bundle with its logits on a fixed batch, both presets, and the full preset's
state_dict names and shapes.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from ove_ros.backbones import (
    LANGUAGE_BACKBONES,
    VISION_TOWERS,
    LanguageBackbone,
    VisionTower,
    register_language_backbone,
    register_vision_tower,
)
from ove_ros.model import OpenValueEstimator, ValueModelConfig, load_bundle

DATA = Path(__file__).parent / "data"
NEW_KEYS = ("vision_backbone", "text_backbone", "time_bin_frames", "value_prior")


class PatchConvTower(nn.Module, VisionTower):
    """A strided convolution over patches: a vision tower that shares no code with SigLIP."""

    @classmethod
    def check_arch(cls, arch, image_size):
        arch = {**arch, "image_size": image_size}
        if image_size % arch["patch"]:
            raise ValueError("image_size must be a multiple of patch")
        return arch

    @classmethod
    def width(cls, arch):
        return arch["width"]

    @classmethod
    def image_size(cls, arch):
        return arch["image_size"]

    @classmethod
    def from_arch(cls, arch, attn_implementation):
        return cls(arch)

    @classmethod
    def from_checkpoint(cls, path, attn_implementation):
        raise FileNotFoundError(path)

    def __init__(self, arch):
        super().__init__()
        self.patchify = nn.Conv2d(3, arch["width"], arch["patch"], stride=arch["patch"])
        self.norm = nn.LayerNorm(arch["width"])

    def image_features(self, pixel_values):
        return self.norm(self.patchify(pixel_values).flatten(2).transpose(1, 2))


class SmallEncoderLM(nn.Module, LanguageBackbone):
    """torch's own bidirectional transformer encoder with a token embedding."""

    @classmethod
    def check_arch(cls, arch):
        return dict(arch)

    @classmethod
    def width(cls, arch):
        return arch["width"]

    @classmethod
    def vocabulary_size(cls, arch):
        return arch["vocab"]

    @classmethod
    def from_arch(cls, arch, attn_implementation, local_attention):
        return cls(arch)

    @classmethod
    def from_checkpoint(cls, path, attn_implementation, local_attention):
        raise FileNotFoundError(path)

    def __init__(self, arch):
        super().__init__()
        self.tokens = nn.Embedding(arch["vocab"], arch["width"])
        layer = nn.TransformerEncoderLayer(arch["width"], 2, 2 * arch["width"], dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)

    def get_input_embeddings(self):
        return self.tokens

    def embed(self, input_ids):
        return self.tokens(input_ids)

    def embedding_rms(self):
        return float(self.tokens.weight.detach().pow(2).mean().sqrt())

    def contextualize(self, inputs_embeds, valid):
        return self.encoder(inputs_embeds, src_key_padding_mask=~valid)


@pytest.fixture
def second_pair():
    register_vision_tower("test_patchconv")(PatchConvTower)
    register_language_backbone("test_encoder")(SmallEncoderLM)
    yield
    VISION_TOWERS.pop("test_patchconv")
    LANGUAGE_BACKBONES.pop("test_encoder")


def batch(num_cameras=2, state_dim=4, size=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.images": torch.rand(2, num_cameras, 3, size, size, generator=g),
        "observation.state": torch.randn(2, state_dim, generator=g),
        "task": ["pick up the cube", "open the drawer"],
    }


def test_unknown_backbone_names_list_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown vision backbone 'dinov9'; registered: \['siglip'\]"):
        ValueModelConfig.tiny(vision_backbone="dinov9")
    with pytest.raises(ValueError, match=r"unknown text backbone 'llama'; registered: \['gemma3'\]"):
        ValueModelConfig.tiny(text_backbone="llama")
    with pytest.raises(TypeError, match="must be an nn.Module implementing VisionTower"):
        register_vision_tower("plain")(nn.Linear)
    with pytest.raises(ValueError, match="already registered"):
        register_language_backbone("gemma3")(SmallEncoderLM)


def test_a_second_backbone_pair_runs_end_to_end(second_pair, tmp_path):
    cfg = ValueModelConfig.tiny(
        num_cameras=2, state_dim=4, vision_backbone="test_patchconv", text_backbone="test_encoder",
        vision={"width": 24, "patch": 8}, text={"width": 32, "vocab": 400},
    )
    torch.manual_seed(0)
    model = OpenValueEstimator(cfg)
    assert isinstance(model.vision, PatchConvTower) and isinstance(model.text, SmallEncoderLM)
    assert model.projector.gain.item() == pytest.approx(model.text.embedding_rms())
    logits = model(batch())
    assert logits.shape == (2, 201) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([3, 150])).backward()
    for name in ("vision.patchify.weight", "text.tokens.weight", "text.encoder.layers.0.linear1.weight",
                 "projector.proj.weight", "head.0.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name

    with pytest.raises(NotImplementedError, match="PatchConvTower does not implement gradient checkpointing"):
        model.gradient_checkpointing_enable()

    model.set_state_stats([-1.0] * 4, [1.0] * 4)
    model.eval()
    with torch.no_grad():
        expected = model(batch(seed=1))
    loaded, _ = load_bundle(model.save_pretrained(tmp_path / "bundle"))
    assert loaded.config.vision_backbone == "test_patchconv" and isinstance(loaded.text, SmallEncoderLM)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch(seed=1)), expected, rtol=0, atol=0)


def test_tokenizer_must_fit_the_backbone_vocabulary(second_pair):
    cfg = ValueModelConfig.tiny(text_backbone="test_encoder", text={"width": 32, "vocab": 50})
    with pytest.raises(ValueError, match="vocab_size is 50"):
        OpenValueEstimator(cfg)


def test_bundle_written_before_pluggable_backbones_loads_with_identical_outputs():
    model, metadata = load_bundle(DATA / "legacy_tiny_bundle")
    assert (model.config.vision_backbone, model.config.text_backbone) == ("siglip", "gemma3")
    ref = load_file(DATA / "legacy_tiny_bundle_expected.safetensors")
    with torch.no_grad():
        logits = model({"observation.images": ref["images"], "observation.state": ref["states"],
                        "task": ["pick", "place it"]})
    torch.testing.assert_close(logits, ref["logits"], rtol=0, atol=1e-6)
    assert metadata.joint_names == ["a", "b", "c", "d"]


def test_presets_are_unchanged():
    old = json.loads((DATA / "presets_8fa9899.json").read_text())
    for name, preset in (("full", ValueModelConfig.full), ("tiny", ValueModelConfig.tiny)):
        now = preset(num_cameras=3).to_dict()
        # Fields added since, at values that keep the old behaviour (no elapsed-time input, no prior).
        assert {k: now.pop(k) for k in NEW_KEYS} == {"vision_backbone": "siglip", "text_backbone": "gemma3",
                                                     "time_bin_frames": 0, "value_prior": None}
        assert now == old[name], name


def test_full_preset_keeps_its_state_dict_names_and_shapes(monkeypatch):
    # Built on the meta device (no memory); the token-scale match reads weights, so it is skipped here.
    monkeypatch.setattr(OpenValueEstimator, "match_token_scale", lambda self: None)
    with torch.device("meta"):
        model = OpenValueEstimator(ValueModelConfig.full(num_cameras=3))
    names = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert names == json.loads((DATA / "full_preset_state_dict.json").read_text())
