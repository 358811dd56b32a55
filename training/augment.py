# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Image augmentation for value training: small random shifts and brightness / contrast jitter.

A value model trained on a few dozen episodes memorises their exact pixels; shifting each camera image by a
few pixels and jittering its exposure (per sample and camera, as DrQ does for RL from pixels) makes it rely
on what moves in the scene instead. Applied to the batch on the training device, after the dataset resized
the images to the model's size; validation, evaluation and the deployed engine never augment.

The joints can be jittered too: the prompt cuts each joint into bins with an embedding each, so a model
trained on a few episodes learns every bin on its own and nothing carries over to the next bin; Gaussian
noise on the joints (a fraction of each joint's training range) shows it neighbouring bins with the same
targets.

Whole samples can lose their images (``drop_images``): on a few dozen episodes the model finds it easier to
tell the training episodes apart by their pixels than to learn what the joints say; a sample shown grey
images must be valued from the prompt alone, so both inputs keep being learned.

The random numbers come from a generator seeded by ``(seed, step)``, so a resumed run augments exactly as an
uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_images(images: torch.Tensor, shift: float, color: float, seed: int, step: int) -> torch.Tensor:
    """``images`` ``[B, N, 3, H, W]`` float in [0, 1] -> augmented copy (the input itself when both are 0).

    ``shift``: largest translation as a fraction of the image side (edges replicated, bilinear sampling);
    ``color``: brightness and contrast factors drawn from ``[1 - color, 1 + color]``.
    """
    if shift < 0 or color < 0:
        raise ValueError(f"augmentation strengths must be >= 0, got shift={shift}, color={color}")
    if shift == 0 and color == 0:
        return images
    b, n, c, h, w = images.shape
    flat = images.reshape(b * n, c, h, w)
    gen = torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + int(step))
    if shift > 0:
        offsets = (torch.rand(b * n, 2, generator=gen) * 2 - 1) * (2 * shift)  # grid units span 2 per side
        theta = torch.zeros(b * n, 2, 3)
        theta[:, 0, 0] = theta[:, 1, 1] = 1.0
        theta[:, :, 2] = offsets
        grid = F.affine_grid(theta.to(flat.device, flat.dtype), list(flat.shape), align_corners=False)
        flat = F.grid_sample(flat, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if color > 0:
        factors = 1 + (torch.rand(b * n, 2, 1, 1, generator=gen) * 2 - 1) * color
        factors = factors.to(flat.device, flat.dtype)
        mean = flat.mean(dim=(1, 2, 3), keepdim=True)
        flat = ((flat - mean) * factors[:, 1:2] + mean) * factors[:, 0:1]
        flat = flat.clamp(0.0, 1.0)
    return flat.reshape(b, n, c, h, w)


def augment_states(states: torch.Tensor, std: float, low: torch.Tensor, high: torch.Tensor, seed: int,
                   step: int) -> torch.Tensor:
    """Raw joints ``[B, D]`` plus Gaussian noise of ``std`` in normalized units (``std`` times half of each
    joint's training range ``high - low``), kept inside that range; the input itself when ``std`` is 0.

    The prompt clips a joint outside the training range to its edge anyway; clamping here gives the same
    prompt without the normalizer's out-of-range warning, which is meant for real inputs."""
    if std < 0:
        raise ValueError(f"state noise must be >= 0, got {std}")
    if std == 0:
        return states
    gen = torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + int(step) + 7)
    noise = torch.randn(states.shape, generator=gen).to(states.device, states.dtype)
    half_range = ((high - low) / 2).to(states.device, states.dtype)
    low, high = low.to(states.device, states.dtype), high.to(states.device, states.dtype)
    return torch.clamp(states + noise * std * half_range, min=low, max=high)


def drop_images(images: torch.Tensor, p: float, seed: int, step: int) -> torch.Tensor:
    """``images`` ``[B, N, 3, H, W]`` in [0, 1] with every camera of a sample set to mid-grey (the vision
    tower's zero after normalization) with probability ``p``; the input itself when ``p`` is 0."""
    if not 0 <= p <= 1:
        raise ValueError(f"image drop probability must be in [0, 1], got {p}")
    if p == 0:
        return images
    gen = torch.Generator(device="cpu").manual_seed(int(seed) * 1_000_003 + int(step) + 13)
    drop = (torch.rand(images.shape[0], generator=gen) < p).to(images.device)
    return images.masked_fill(drop.view(-1, 1, 1, 1, 1), 0.5)
