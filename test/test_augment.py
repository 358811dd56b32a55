# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training-time image augmentation: off means untouched, shifts move content, reproducible by step."""

from __future__ import annotations

import pytest
import torch

from ove_ros.training.augment import augment_images, augment_states, drop_images


def _square_images(batch: int = 4, cameras: int = 2, size: int = 32) -> torch.Tensor:
    images = torch.zeros(batch, cameras, 3, size, size)
    images[..., 12:20, 12:20] = 1.0  # a bright square in the middle
    return images


def _centre_of_mass(img: torch.Tensor) -> torch.Tensor:
    mass = img.mean(dim=0)  # over channels
    ys, xs = torch.meshgrid(torch.arange(mass.shape[0]), torch.arange(mass.shape[1]), indexing="ij")
    return torch.stack([(mass * ys).sum() / mass.sum(), (mass * xs).sum() / mass.sum()])


def test_off_returns_the_input_unchanged():
    images = _square_images()
    assert augment_images(images, 0.0, 0.0, seed=0, step=0) is images


def test_shift_moves_content_within_the_limit_and_keeps_shape_and_range():
    images = _square_images()
    out = augment_images(images, 0.1, 0.0, seed=0, step=3)
    assert out.shape == images.shape and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    moves = torch.stack(
        [_centre_of_mass(out[b, n]) - _centre_of_mass(images[b, n]) for b in range(4) for n in range(2)]
    )
    assert moves.abs().max() <= 0.1 * 32 + 0.5  # at most 10 % of the side (plus interpolation)
    assert (moves.abs().sum(dim=1) > 0.2).float().mean() > 0.5  # most samples really moved
    assert len({tuple(m.round(decimals=2).tolist()) for m in moves}) > 1  # each sample and camera its own


def test_color_jitter_bounds():
    images = torch.full((2, 1, 3, 8, 8), 0.5)
    images[..., :4] = 0.25
    out = augment_images(images, 0.0, 0.2, seed=1, step=0)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    ratio = out.mean(dim=(1, 2, 3, 4)) / images.mean(dim=(1, 2, 3, 4))
    assert ((ratio > 0.79) & (ratio < 1.21)).all() and not torch.allclose(out, images)


def test_same_seed_and_step_give_the_same_augmentation():
    images = torch.rand(3, 2, 3, 16, 16)
    a = augment_images(images, 0.1, 0.2, seed=5, step=7)
    b = augment_images(images, 0.1, 0.2, seed=5, step=7)
    c = augment_images(images, 0.1, 0.2, seed=5, step=8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_negative_strength_is_rejected():
    with pytest.raises(ValueError, match="must be >= 0"):
        augment_images(torch.zeros(1, 1, 3, 4, 4), -0.1, 0.0, seed=0, step=0)


def test_config_rejects_negative_strengths_before_training():
    from ove_ros.training.config import Config, ConfigError, validate

    cfg = Config()
    cfg.training.augment_color = -0.2
    with pytest.raises(ConfigError, match=r"training\.augment_color must be >= 0, got -0\.2"):
        validate(cfg, require_run_name=False)
    cfg = Config()
    cfg.training.augment_drop_images = 1.5
    with pytest.raises(ConfigError, match=r"training\.augment_drop_images must be in \[0, 1\], got 1\.5"):
        validate(cfg, require_run_name=False)


def test_state_noise_is_off_at_zero_scaled_per_joint_and_seeded():
    states = torch.tensor([[0.0, 40.0], [0.2, 60.0]]).repeat(2000, 1)
    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 100.0])
    assert augment_states(states, 0.0, low, high, seed=0, step=0) is states
    noisy = augment_states(states, 0.1, low, high, seed=0, step=3)
    delta = noisy - states
    # std 0.1 in normalized units: 0.1 rad on a joint spanning 2, 5.0 on one spanning 100
    assert torch.allclose(delta.std(0), torch.tensor([0.1, 5.0]), rtol=0.1)
    assert torch.equal(noisy, augment_states(states, 0.1, low, high, seed=0, step=3))
    assert not torch.equal(noisy, augment_states(states, 0.1, low, high, seed=0, step=4))
    with pytest.raises(ValueError, match="state noise must be >= 0"):
        augment_states(states, -0.1, low, high, seed=0, step=0)


def test_state_noise_stays_in_the_training_range_without_the_out_of_range_warning(caplog):
    from ove_ros.prompt import StateNormalizer

    low, high = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 100.0])
    states = torch.tensor([[1.0, 0.0], [-1.0, 100.0]]).repeat(500, 1)  # every joint on an edge
    noisy = augment_states(states, 0.1, low, high, seed=2, step=0)
    assert (noisy >= low).all() and (noisy <= high).all()
    assert (noisy != states).any(dim=0).all()  # each joint still moves inward
    norm = StateNormalizer(low.double().numpy(), high.double().numpy())
    with caplog.at_level("WARNING"):
        norm.normalize(noisy.double().numpy())
    assert norm.clipped_count() == 0 and "outside the training range" not in caplog.text


def test_state_noise_moves_joints_across_prompt_bins():
    from ove_ros.prompt import StateNormalizer, discretize

    norm = StateNormalizer([-1.0], [1.0])
    states = torch.full((1000, 1), 0.01)  # just above a bin edge of 16 bins (width 0.125)
    noisy = augment_states(states, 0.03, torch.tensor([-1.0]), torch.tensor([1.0]), seed=1, step=0)
    bins = set(discretize(norm.normalize(noisy.double().numpy()), 16).ravel().tolist())
    assert bins == {7, 8}  # the neighbouring bin is seen with the same target, no bin further away


def test_dropped_samples_lose_every_camera_and_the_rest_are_untouched():
    images = torch.rand(400, 2, 3, 8, 8)
    assert drop_images(images, 0.0, seed=0, step=0) is images
    out = drop_images(images, 0.25, seed=3, step=7)
    dropped = (out == 0.5).flatten(1).all(dim=1)
    assert 60 <= int(dropped.sum()) <= 140  # about a quarter of 400 (binomial sd ~9)
    torch.testing.assert_close(out[~dropped], images[~dropped], rtol=0, atol=0)
    # Seeded by (seed, step): a resumed run drops the same samples; the next step drops others.
    assert torch.equal(drop_images(images, 0.25, seed=3, step=7), out)
    assert not torch.equal(drop_images(images, 0.25, seed=3, step=8), out)
    assert (drop_images(images, 1.0, seed=0, step=0) == 0.5).all()
    with pytest.raises(ValueError, match="probability"):
        drop_images(images, 1.5, seed=0, step=0)
