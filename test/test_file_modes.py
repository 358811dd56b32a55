# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Outputs written through temp directories get the umask's permissions, not the private temp-file ones.

A bundle is often written by one user (training) and read by another (the robot's service account running
the node), so a 0700 folder or a 0600 model.safetensors stops the node at start-up.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from ove_ros.bundle import BundleMetadata, save_bundle
from ove_ros.file_modes import default_modes, umask
from ove_ros.model import OpenValueEstimator, ValueModelConfig, load_bundle


@pytest.fixture
def process_umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    try:
        yield set_mask
    finally:
        os.umask(saved)


def modes(root: Path) -> dict[str, int]:
    """Permission bits of ``root`` ('.') and every entry below it, by relative path."""
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in sorted(root.rglob("*")):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def test_umask_is_read_without_changing_it(process_umask):
    for mask in (0o022, 0o027, 0o077, 0o002):
        process_umask(mask)
        assert umask() == mask
        assert umask() == mask  # reading left it as it was


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002], ids=["022", "027", "002"])
def test_save_bundle_respects_the_umask(mask, process_umask, tmp_path):
    torch.manual_seed(0)
    model = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=1, state_dim=2))
    process_umask(mask)
    root = save_bundle(tmp_path / "bundle", model, BundleMetadata.from_model(model))
    found = modes(root)
    assert "model.safetensors" in found and "config.json" in found and "tokenizer" in found
    for name, mode in found.items():
        is_dir = (root / name).is_dir()
        assert mode == (0o777 if is_dir else 0o666) & ~mask, f"{name}: {oct(mode)} with umask {oct(mask)}"
    # Replacing an existing bundle keeps the rule (the new folder is renamed over the old one).
    root = save_bundle(root, model, BundleMetadata.from_model(model))
    assert modes(root) == found
    load_bundle(root)


def test_default_modes_leaves_links_alone(process_umask, tmp_path):
    process_umask(0o022)
    (tmp_path / "sub").mkdir(mode=0o700)
    (tmp_path / "sub" / "f").write_text("x")
    os.chmod(tmp_path / "sub" / "f", 0o600)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_text("y")
    os.chmod(outside, 0o600)
    (tmp_path / "link").symlink_to(outside)
    default_modes(tmp_path)
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "sub" / "f").stat().st_mode) == 0o644
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600  # a link's target is not the output's
