# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""OpenValueEstimator on the tiny configuration (random weights, CPU)."""

import math

import numpy as np
import pytest
import torch
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, SiglipConfig, SiglipModel

from ove_ros.backbones.gemma3 import gemma3_config
from ove_ros.backbones.siglip import siglip_config
from ove_ros.model import OpenValueEstimator, ValueModelConfig
from ove_ros.tokenizer import build_local_tokenizer

TASKS = ["pick up the cube", "open the top drawer please"]


def make_batch(b=2, n=3, d=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.images": torch.rand(b, n, 3, size, size, generator=g),
        "observation.state": torch.randn(b, d, generator=g),
        "task": [TASKS[i % 2] for i in range(b)],
    }


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=3, state_dim=6)).eval()
    m.set_state_stats([-2.0] * 6, [2.0] * 6, [f"j{i}" for i in range(6)])
    return m


def text_config(cfg):
    return gemma3_config(cfg.text, cfg.attn_implementation)


def test_config_presets_and_round_trip():
    full = ValueModelConfig.full(num_cameras=3)
    v, t = siglip_config(full.vision, full.attn_implementation), text_config(full)
    assert (full.vision_backbone, full.text_backbone) == ("siglip", "gemma3")
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads) == (1152, 27, 16)
    assert v.intermediate_size == 4304
    assert (v.patch_size, v.image_size) == (14, 224)
    assert (t.hidden_size, t.num_hidden_layers) == (640, 18)
    assert (t.num_attention_heads, t.num_key_value_heads) == (4, 1)
    assert (t.head_dim, t.intermediate_size, t.vocab_size) == (256, 2048, 262144)
    assert t.layer_types.count("full_attention") == 3 and t.layer_types[5] == "full_attention"
    assert (t.rope_theta, t.rope_local_base_freq) == (1_000_000.0, 10_000.0)
    assert t.use_bidirectional_attention
    # transformers halves the window for bidirectional attention; the stored value stays the checkpoint's.
    assert full.text["sliding_window"] == 512 and t.sliding_window == 257
    for cfg in (full, ValueModelConfig.tiny(num_cameras=2)):
        again = ValueModelConfig.from_dict(cfg.to_dict())
        assert again == cfg and text_config(again).sliding_window == text_config(cfg).sliding_window
    with pytest.raises(ValueError, match="unknown keys"):
        ValueModelConfig.from_dict({**full.to_dict(), "typo": 1})
    assert ValueModelConfig.tiny(image_size=64).vision["image_size"] == 64
    with pytest.raises(ValueError, match="must agree"):
        ValueModelConfig.tiny(image_size=64, vision=ValueModelConfig.tiny().vision)
    with pytest.raises(ValueError, match="local_attention='sideways'"):
        ValueModelConfig.tiny(local_attention="sideways")


def test_forward_shapes_and_distribution(model):
    batch = make_batch()
    with torch.no_grad():
        logits = model(batch)
    assert logits.shape == (2, 201) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    out = model.predict(batch)
    torch.testing.assert_close(out["probs"].sum(-1), torch.ones(2))
    assert ((out["value"] >= -1) & (out["value"] <= 0)).all()
    assert (out["std"] > 0).all() and (out["entropy"] <= math.log(201) + 1e-5).all()
    torch.testing.assert_close(model.get_expected_value(logits), out["value"])
    # A sharp distribution on bin 20 gives E[V] = centers[20] = -0.9.
    sharp = torch.full((1, 201), -1e4)
    sharp[0, 20] = 0.0
    torch.testing.assert_close(model.get_expected_value(sharp), torch.tensor([-0.9]))


def test_per_camera_keys_match_stacked_images_and_any_size_is_resized(model):
    batch = make_batch(size=40)
    per_cam = {k: v for k, v in batch.items() if k != "observation.images"}
    for i, cam in enumerate(model.config.camera_names):
        per_cam[f"observation.images.{cam}"] = batch["observation.images"][:, i]
    with torch.no_grad():
        torch.testing.assert_close(model(per_cam), model(batch))
    del per_cam["observation.images.cam1"]
    with pytest.raises(ValueError, match=r"lacks camera\(s\) \['cam1'\]"):
        model(per_cam)


def test_padding_does_not_change_the_result(model):
    batch = make_batch(b=2)
    ids, mask = model.tokenize(batch["task"], batch["observation.state"])
    assert mask[0].sum() < mask[1].sum()  # the two prompts have different lengths: row 0 is padded
    with torch.no_grad():
        both = model(batch)
        for i in range(2):
            one = {k: v[i : i + 1] for k, v in batch.items()}
            torch.testing.assert_close(model(one), both[i : i + 1], atol=1e-5, rtol=1e-5)
        pixels = model.gather_images(batch)
        ids2, mask2 = model.tokenize(batch["task"], batch["observation.state"], pad_to_max=True)
        assert ids2.shape[1] == model.config.max_text_tokens
        torch.testing.assert_close(model.forward_tensors(pixels, ids2, mask2), both, atol=1e-5, rtol=1e-5)


def test_state_statistics_drive_the_prompt(model):
    state = np.array([[-2.0, 2.0, 0.0, 1.0, -9.0, 9.0]])
    assert model.prompts("t", state) == ["Task: t, State: 0 255 128 192 0 255;"]
    with pytest.raises(ValueError, match=r"joint 3 \('j3'\)"):
        model.prompts("t", np.array([[0.0, 0.0, 0.0, np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="max_text_tokens=128"):
        model.tokenize(["x" * 200], state)


def test_bf16_cast_keeps_statistics_in_float32():
    m = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=1))
    m.set_state_stats([0.1] * 6, [0.3] * 6)
    m.to(torch.bfloat16)
    assert m.dtype == torch.bfloat16 and m.state_low.dtype == torch.float32
    assert m.state_low[0].item() == np.float32(0.1)
    with torch.no_grad():
        assert torch.isfinite(m(make_batch(n=1))).all()


def test_image_tokens_enter_at_text_token_scale(model):
    batch = make_batch()
    with torch.no_grad():
        pixels = model.gather_images(batch)
        feats = model.vision.image_features(pixels.flatten(0, 1))
        img = model.projector(feats.view(2, 3, *feats.shape[1:]))
        ids, _ = model.tokenize(batch["task"], batch["observation.state"])
        txt = model.text.embed_tokens(ids)
    img_rms = img.pow(2).mean(-1).sqrt()
    emb = model.text.embed_tokens
    txt_rms = emb.weight.detach().pow(2).mean().sqrt() * emb.embed_scale
    torch.testing.assert_close(img_rms, torch.full_like(img_rms, float(txt_rms)), rtol=1e-3, atol=0)
    ratio = float(img_rms.mean() / txt.pow(2).mean(-1).sqrt().mean())
    assert 0.5 < ratio < 2.0


def _probe_influence(local_attention):
    """Does changing camera 0 move the pooled token, and does changing the last token move position 0?

    One sliding-window layer with window 8 (transformers uses |i - j| < 8 // 2 + 1 when bidirectional), so
    information cannot hop through other layers.
    """
    cfg = ValueModelConfig.tiny(num_cameras=2, local_attention=local_attention)
    cfg.text.update(num_hidden_layers=1, layer_types=["sliding_attention"], sliding_window=8)
    torch.manual_seed(1)
    m = OpenValueEstimator(cfg).eval()
    batch = make_batch(b=1, n=2)
    pixels = m.gather_images(batch)
    ids, mask = m.tokenize(batch["task"], batch["observation.state"])
    with torch.no_grad():
        h0, idx = m.encode(pixels, ids, mask)
        pixels2 = pixels.clone()
        pixels2[:, 0] = -pixels2[:, 0]
        h1, _ = m.encode(pixels2, ids, mask)
        ids2 = ids.clone()
        ids2[0, -2] = (ids2[0, -2] + 5) % 300 + 4  # a state bin token near the end
        h2, _ = m.encode(pixels, ids2, mask)
    far = int(idx[0])
    assert far > 16 + 16 + 8  # the pooled token is far outside the window of camera 0's tokens
    pooled_moves = not torch.allclose(h0[0, far], h1[0, far])
    first_moves = not torch.allclose(h0[0, 0], h2[0, 0])
    near_moves = not torch.allclose(h0[0, 1], h1[0, 1])
    return pooled_moves, first_moves, near_moves


def test_local_layers_see_the_whole_sequence_by_default():
    pooled_moves, first_moves, near_moves = _probe_influence("full")
    assert pooled_moves and first_moves and near_moves


def test_window_mode_really_limits_local_layers():
    # Confirms what transformers does with use_bidirectional_attention on sliding layers.
    pooled_moves, first_moves, near_moves = _probe_influence("window")
    assert not pooled_moves and not first_moves and near_moves


def test_gradients_reach_every_part(model):
    m = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=3)).train()
    logits = m(make_batch())
    torch.nn.functional.cross_entropy(logits, torch.tensor([10, 190])).backward()
    for name in ("head.0.weight", "projector.proj.weight", "projector.gain", "projector.camera_embed",
                 "vision.vision_model.encoder.layers.0.self_attn.q_proj.weight",
                 "text.layers.0.self_attn.q_proj.weight", "text.embed_tokens.weight"):
        grad = m.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_tokenizer_larger_than_vocab_is_rejected():
    cfg = ValueModelConfig.tiny()
    cfg.text["vocab_size"] = 100
    with pytest.raises(ValueError, match="vocab_size is 100"):
        OpenValueEstimator(cfg)


def test_from_backbones_loads_local_checkpoints(tmp_path):
    cfg = ValueModelConfig.tiny(num_cameras=2)
    torch.manual_seed(3)
    siglip = SiglipModel(SiglipConfig(vision_config=dict(cfg.vision), text_config={
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "vocab_size": 64}))
    siglip.save_pretrained(tmp_path / "siglip")
    gemma = Gemma3ForCausalLM(Gemma3TextConfig(**cfg.text))  # as on the hub: causal, full window
    gemma.save_pretrained(tmp_path / "gemma")
    build_local_tokenizer().save_pretrained(tmp_path / "gemma")

    m = OpenValueEstimator.from_backbones(cfg, vision_path=tmp_path / "siglip", text_path=tmp_path / "gemma")
    torch.testing.assert_close(
        m.vision.vision_model.encoder.layers[1].mlp.fc1.weight,
        siglip.vision_model.encoder.layers[1].mlp.fc1.weight,
    )
    torch.testing.assert_close(
        m.text.layers[0].self_attn.k_proj.weight, gemma.model.layers[0].self_attn.k_proj.weight
    )
    torch.testing.assert_close(m.text.embed_tokens.weight, gemma.model.embed_tokens.weight)
    assert m.config.text["sliding_window"] == cfg.text["sliding_window"]
    assert m.config.vision["vision_use_head"] is False
    with torch.no_grad():
        assert torch.isfinite(m(make_batch(n=2))).all()

    with pytest.raises(FileNotFoundError, match="not available offline"):
        OpenValueEstimator.from_backbones(cfg, vision_path=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="Gemma-3 text weights"):
        OpenValueEstimator.from_backbones(cfg, text_path=tmp_path / "missing")
