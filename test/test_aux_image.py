# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Auxiliary image reconstruction: the decoder's loss, the token tap, and the training hook (it trains,
resumes exactly, and leaves the model's weights and bundles as they were)."""

from __future__ import annotations

import pytest
import torch

from ove_ros.model import OpenValueEstimator, ValueModelConfig
from ove_ros.training import checkpoint as ckpt
from ove_ros.training.aux_image import ImageReconstruction, TokenTap
from ove_ros.training.config import ConfigError
from ove_ros.training.train import train

from dataset_fixtures import learnable_dataset, log_records, synthetic_dataset, tiny_config  # noqa: F401


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=2, state_dim=4)).eval()
    m.set_state_stats([-1.0] * 4, [1.0] * 4)
    return m


def _batch(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"observation.images": torch.rand(b, 2, 3, 32, 32, generator=g),
            "observation.state": torch.rand(b, 4, generator=g) * 2 - 1, "task": ["reach"] * b}


def test_the_decoder_is_sized_from_the_model_and_reads_what_the_tap_kept(model):
    cfg = model.config
    per_camera = (cfg.image_size // cfg.vision["patch_size"]) ** 2
    recon = ImageReconstruction.for_model(model)
    assert (recon.tokens_per_camera, recon.width) == (per_camera, model.projector.proj.out_features)
    tap = TokenTap(model.projector)
    with pytest.raises(RuntimeError, match="not run a forward pass"):
        _ = tap.tokens
    batch = _batch()
    with torch.no_grad():
        model(batch)
    assert tap.tokens.shape == (3, 2 * per_camera, recon.width)
    loss = recon(tap.tokens, batch["observation.images"])
    assert loss.ndim == 0 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="for_model"):
        recon(tap.tokens[:, :-1], batch["observation.images"])
    tap.close()
    with torch.no_grad():
        model(_batch(seed=1))
    with pytest.raises(RuntimeError):
        _ = tap.tokens  # closed: no longer follows the model


@torch.no_grad()
def test_the_target_is_the_coarse_picture_in_minus_one_to_one():
    recon = ImageReconstruction(tokens_per_camera=2, width=3, size=4)
    torch.nn.init.zeros_(recon.decoder.weight)
    torch.nn.init.zeros_(recon.decoder.bias)
    tokens = torch.randn(2, 2, 3)  # 1 camera x 2 tokens
    white = torch.ones(2, 1, 3, 16, 16)
    assert float(recon(tokens, white)) == pytest.approx(1.0)  # decoded 0 against +1 everywhere
    assert float(recon(tokens, white * 0.5)) == pytest.approx(0.0)  # mid-grey is 0
    # A left-right split survives the 8x8 pooling: the loss sees where things are.
    split = torch.zeros(2, 1, 3, 16, 16)
    split[..., 8:] = 1.0
    assert float(recon(tokens, split)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        ImageReconstruction(tokens_per_camera=0, width=3)


def test_decoder_learns_to_reconstruct_from_informative_tokens():
    torch.manual_seed(0)
    images = torch.rand(16, 1, 3, 8, 8)
    tokens = images.reshape(16, 2, 96)  # the pixels, in two tokens
    recon = ImageReconstruction(tokens_per_camera=2, width=96, size=8)
    opt = torch.optim.Adam(recon.parameters(), lr=1e-2)
    first = float(recon(tokens, images))
    for _ in range(200):
        opt.zero_grad()
        loss = recon(tokens, images)
        loss.backward()
        opt.step()
    assert float(loss) < 0.05 * first


SHORT = {"training.warmup_steps": 1, "training.learning_rate": 2e-3, "training.val_every": 0,
         "training.ema_decay": 0.9, "training.gradient_accumulation_steps": 2, "data.batch_size": 5,
         "training.aux_image_weight": 1.0}


def test_training_with_the_decoder_resumes_exactly_and_stays_out_of_the_weights(
        tmp_path, learnable_dataset):  # noqa: F811
    def cfg(name, **keys):
        return tiny_config(tmp_path, learnable_dataset, run_name=name, **{**SHORT, **keys})

    full = train(cfg("full", **{"training.steps": 6, "training.save_every": 3}))
    records = log_records(full.run_dir, "train")
    assert all(r["aux_image_loss"] > 0 for r in records)
    state = ckpt.load_training_state(full.checkpoint)
    assert set(state["aux_image"]) == {"decoder.weight", "decoder.bias"}
    # The model's weights are those of a plain run's layout: no decoder in checkpoints or bundles.
    plain = train(cfg("plain", **{"training.steps": 1, "training.save_every": 1,
                                  "training.aux_image_weight": 0.0}))
    weights, _ = ckpt.load_weights(full.checkpoint, use_ema=False)
    assert weights.keys() == ckpt.load_weights(plain.checkpoint, use_ema=False)[0].keys()
    assert "aux_image_loss" not in log_records(plain.run_dir, "train")[0]
    # Stopped after 2 steps and resumed: the same losses and weights as the uninterrupted run.
    part = train(cfg("part", **{"training.steps": 6, "training.save_every": 3,
                                "training.max_steps_this_run": 2}))
    assert part.step == 2
    done = train(cfg("part", **{"training.steps": 6, "training.save_every": 3, "training.resume": True}))
    assert [(r["step"], r["loss"], r["aux_image_loss"]) for r in log_records(done.run_dir, "train")] == [
        (r["step"], r["loss"], r["aux_image_loss"]) for r in records]
    resumed, _ = ckpt.load_weights(done.checkpoint, use_ema=False)
    assert all(torch.equal(resumed[k], weights[k]) for k in weights)
    # A run without the decoder cannot be resumed with it: there are no decoder weights to continue.
    with pytest.raises(ConfigError, match="aux_image_weight"):
        train(cfg("plain", **{"training.steps": 2, "training.save_every": 1, "training.resume": True}))


def test_config_rejects_a_negative_weight(tmp_path):
    with pytest.raises(ConfigError, match="aux_image_weight"):
        tiny_config(tmp_path, tmp_path, **{"training.aux_image_weight": -1.0})
