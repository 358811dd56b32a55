# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training checkpoint -> deploy bundle: the bundle loads and predicts what the EMA weights predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ove_ros.model import load_bundle
from ove_ros.training import checkpoint as ckpt
from ove_ros.training.convert import convert, main
from ove_ros.training.dataset import (
    state_stats,
)
from ove_ros.training.modeling import load_value_model, model_from_checkpoint

from dataset_fixtures import learnable_dataset, run_batch, synthetic_dataset, trained_run  # noqa: F401


def test_bundle_predicts_like_the_ema_weights(trained_run, tmp_path):  # noqa: F811
    ckpt_dir = trained_run["result"].checkpoint
    bundle = convert(ckpt_dir, tmp_path / "bundle")
    model, md = load_bundle(bundle)
    ema_model, meta, used_ema = model_from_checkpoint(ckpt_dir, use_ema=True)
    raw_model, _, _ = model_from_checkpoint(ckpt_dir, use_ema=False)
    assert used_ema
    batch, dataset = run_batch(trained_run, 6)
    with torch.no_grad():
        v_bundle = model.get_expected_value(model(batch))
        v_ema = ema_model.get_expected_value(ema_model(batch))
        v_raw = raw_model.get_expected_value(raw_model(batch))
    torch.testing.assert_close(v_bundle, v_ema, rtol=0, atol=1e-6)
    assert not torch.allclose(v_ema, v_raw, atol=1e-6)  # the EMA really differs from the raw weights
    # Metadata: what the live node needs to reproduce the training inputs and units.
    low, high = state_stats(dataset, "observation.state")
    assert md.camera_names == ["cam_high"]
    assert md.joint_names == ["joint_0", "joint_1", "joint_2", "joint_3"]
    np.testing.assert_allclose(md.state_low, low.astype(np.float32), rtol=1e-6)
    np.testing.assert_allclose(md.state_high, high.astype(np.float32), rtol=1e-6)
    assert (
        md.task_normalizers == meta["dataset"]["task_normalizers"]
        and md.task_normalizers["pick the bottle"] > 1
    )
    assert md.reward == trained_run["cfg"].reward.to_dict()
    assert md.training["step"] == 30 and md.training["ema"] is True
    assert md.dtype == "float32"


def test_no_ema_and_bfloat16_options(trained_run, tmp_path):  # noqa: F811
    ckpt_dir = trained_run["result"].checkpoint
    main(["--checkpoint", str(ckpt_dir), "--output", str(tmp_path / "raw"), "--no-ema"])
    main(
        [
            "--checkpoint",
            str(ckpt_dir.parent),
            "--output",
            str(tmp_path / "bf16"),
            "--dtype",
            "bfloat16",
        ]
    )  # a run directory resolves to its newest checkpoint
    raw, md_raw = load_bundle(tmp_path / "raw")
    bf16, md_bf16 = load_bundle(tmp_path / "bf16")
    assert md_raw.training["ema"] is False and md_bf16.dtype == "bfloat16"
    assert bf16.dtype == torch.bfloat16 and bf16.state_low.dtype == torch.float32
    raw_state = ckpt.load_state_dict(ckpt_dir)
    for k, v in raw.state_dict().items():
        assert torch.equal(v, raw_state[k]), k
    batch, _ = run_batch(trained_run, 6)
    ema_model, _, _ = model_from_checkpoint(ckpt_dir)
    with torch.no_grad():
        v32 = ema_model.get_expected_value(ema_model(batch))
        v16 = bf16.get_expected_value(bf16(batch))
    torch.testing.assert_close(v16, v32, rtol=0, atol=0.03)


def test_advantage_thresholds_go_into_the_bundle(trained_run, tmp_path):  # noqa: F811
    info = tmp_path / "advantage.json"
    info.write_text(json.dumps({"thresholds": {"pick the bottle": -0.0125}, "percentile": 40.0, "n_step": 5}))
    bundle = convert(trained_run["result"].checkpoint, tmp_path / "bundle", advantage_info=info)
    loaded = load_value_model(bundle)
    assert loaded.source == "bundle"
    assert loaded.meta["advantage_thresholds"] == {"pick the bottle": -0.0125}
    assert loaded.meta["advantage_percentile"] == 40.0 and loaded.meta["n_step"] == 5
    with pytest.raises(FileNotFoundError, match="ove_ros.training.advantage"):
        convert(trained_run["result"].checkpoint, tmp_path / "b2", advantage_info=tmp_path / "missing.json")
