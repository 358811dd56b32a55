# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Elapsed time as an optional model input: the prompt, the model, the engine and the bundle agree."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ove_ros.bundle import BundleMetadata, save_bundle
from ove_ros.engine import EngineConfig, InferenceEngine
from ove_ros.model import OpenValueEstimator, ValueModelConfig, load_bundle
from ove_ros.prompt import MAX_TIME_BIN, build_prompt, time_bin, timed_task

JOINTS = [f"j{i}" for i in range(3)]


def _model(time_bin_frames: int) -> OpenValueEstimator:
    torch.manual_seed(0)
    m = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=1, state_dim=3, time_bin_frames=time_bin_frames))
    m.set_state_stats([-1.0, -1.0, 0.0], [1.0, 1.0, 1.0], JOINTS)
    return m.eval()


def _batch(frame_index=None, n=2):
    rng = np.random.default_rng(0)
    batch = {
        "observation.images": torch.as_tensor(rng.random((n, 1, 3, 32, 32)), dtype=torch.float32),
        "observation.state": torch.zeros(n, 3),
        "task": ["pick the bottle"] * n,
    }
    if frame_index is not None:
        batch["frame_index"] = torch.as_tensor(frame_index)
    return batch


def test_time_bins_and_the_timed_prompt():
    assert time_bin(0, 10) == 0 and time_bin(29, 10) == 2 and time_bin(10**6, 10) == MAX_TIME_BIN
    with pytest.raises(ValueError, match="frame_index must be >= 0"):
        time_bin(-1, 10)
    assert build_prompt("pick  it", [1, 2], time=3) == "Task: pick it, Time: 3, State: 1 2;"
    assert build_prompt("pick it", [1, 2]) == "Task: pick it, State: 1 2;"  # unchanged without time
    assert build_prompt(timed_task("pick it", 3), [1, 2]) == build_prompt("pick it", [1, 2], time=3)


def test_a_timed_model_needs_the_frame_index_and_uses_it():
    model = _model(time_bin_frames=10)
    with pytest.raises(ValueError, match="frame_index"):
        model(_batch())
    assert model.prompts(["a"], np.zeros((1, 3)), [25])[0].startswith("Task: a, Time: 2, State:")
    with torch.no_grad():
        early = model.get_expected_value(model(_batch([0, 0])))
        late = model.get_expected_value(model(_batch([0, 300])))
    assert early[0] == late[0] and early[1] != late[1]
    plain = _model(time_bin_frames=0)  # the default: no time input, frame indices are ignored
    with torch.no_grad():
        assert torch.equal(plain(_batch()), plain(_batch([5, 500])))


def test_engine_and_bundle_carry_the_time_input(tmp_path):
    model = _model(time_bin_frames=10)
    path = save_bundle(tmp_path / "bundle", model, BundleMetadata.from_model(model))
    loaded, md = load_bundle(path)
    assert loaded.config.time_bin_frames == 10
    engine = InferenceEngine(copy.deepcopy(loaded), md, EngineConfig(device="cpu", resize="float"))
    frame = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    state = np.array([0.1, -0.2, 0.5])
    with pytest.raises(ValueError, match="frame_index"):
        engine.infer([frame], state, "pick the bottle")
    outs = [engine.infer([frame], state, "pick the bottle", f).value for f in (3, 250)]
    pixels = torch.from_numpy(frame).permute(2, 0, 1)[None, None].float() / 255
    batch = {
        "observation.images": pixels.repeat(2, 1, 1, 1, 1),
        "observation.state": torch.as_tensor(np.stack([state, state])),
        "task": ["pick the bottle"] * 2,
        "frame_index": torch.tensor([3, 250]),
    }
    with torch.no_grad():
        ref = loaded.get_expected_value(loaded(batch)).numpy()
    np.testing.assert_allclose(outs, ref, atol=1e-5)  # the engine is the model's forward, time included
    many = engine.infer_batch(np.stack([[frame], [frame]]), np.stack([state, state]), ["pick the bottle"] * 2,
                              [3, 250])
    np.testing.assert_allclose([o.value for o in many], ref, atol=1e-5)
