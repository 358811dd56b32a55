# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""InferenceEngine: same numbers as the plain model, cached prompt tokens, input checks, device options."""

import copy
import logging

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from ove_ros.bundle import BundleMetadata, save_bundle
from ove_ros.engine import EngineConfig, InferenceEngine, PromptTokenCache
from ove_ros.model import OpenValueEstimator, ValueModelConfig
from ove_ros.prompt import build_prompt
from ove_ros.tokenizer import build_local_tokenizer

JOINTS = [f"j{i}" for i in range(5)]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    m = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=3, state_dim=5)).eval()
    m.set_state_stats([-1.0, -1.0, 0.0, -3.0, 0.0], [1.0, 1.0, 0.5, 3.0, 0.08], JOINTS)
    return m


@pytest.fixture(scope="module")
def metadata(reference):
    return BundleMetadata.from_model(reference)


def make_engine(reference, metadata, **kw):
    return InferenceEngine(copy.deepcopy(reference), metadata, EngineConfig(device="cpu", **kw))


@pytest.fixture(scope="module")
def engine(reference, metadata):
    return make_engine(reference, metadata, max_batch=2)


def frames(seed, sizes=((48, 64), (48, 64), (30, 20))):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


def model_batch(images, states, tasks):
    """The same inputs as LeRobot-style float tensors for ``model(batch)``."""
    return {
        **{f"observation.images.cam{i}": torch.stack(
            [torch.from_numpy(img[i]).permute(2, 0, 1).float() / 255 for img in images]) for i in range(3)},
        "observation.state": torch.as_tensor(np.asarray(states)),
        "task": list(tasks),
    }


def test_infer_equals_plain_model_forward(engine, reference):
    images, state = frames(1), np.array([0.3, -0.9, 0.25, 2.0, 0.01])
    out = engine.infer(images, state, "put the mug on the shelf")
    ref = reference.predict(model_batch([images], [state], ["put the mug on the shelf"]))
    np.testing.assert_allclose(out.probs, ref["probs"][0].numpy(), atol=1e-6, rtol=1e-5)
    assert out.value == pytest.approx(float(ref["value"][0]), abs=1e-6)
    assert out.std == pytest.approx(float(ref["std"][0]), abs=1e-6)
    assert out.entropy == pytest.approx(float(ref["entropy"][0]), abs=1e-5)
    assert out.probs.shape == (201,) and out.latency_s > 0 and -1.0 <= out.value <= 0.0


def test_infer_batch_chunks_and_matches_model(engine, reference):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 3, 40, 40, 3), dtype=np.uint8)
    states = rng.uniform(-1, 1, (3, 5))
    tasks = ["fold the towel", "open the door", "fold the towel"]
    outs = engine.infer_batch(images, states, tasks)  # max_batch=2: chunks of 2 + 1
    ref = reference.predict(model_batch(list(images), states, tasks))
    assert len(outs) == 3
    np.testing.assert_allclose([o.value for o in outs], ref["value"].numpy(), atol=1e-6)
    np.testing.assert_allclose(np.stack([o.probs for o in outs]), ref["probs"].numpy(), atol=1e-6)


def test_static_shapes_give_the_same_numbers(reference, metadata, engine):
    static = make_engine(reference, metadata, static_shapes=True, max_batch=3)
    assert static.describe()["static_shapes"]
    images, state = frames(4), np.zeros(5)
    a = static.infer(images, state, "wipe")
    b = engine.infer(images, state, "wipe")
    np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
    ids, mask = static._text(["wipe"], state[None])
    assert ids.shape == (1, reference.config.max_text_tokens) and int(mask.sum()) < ids.shape[1]


def test_cached_prompt_tokens_equal_the_tokenizer():
    tok = build_local_tokenizer()
    cache = PromptTokenCache(tok, max_tasks=2)
    assert cache.exact
    rng = np.random.default_rng(0)
    tasks = ["pick up the red block", "Task 2: stack 3 cups, then stop!", "open", "pick up the red block"]
    for task in tasks:
        for _ in range(5):
            bins = rng.integers(0, 256, size=rng.integers(1, 30))
            assert cache.ids(task, bins) == tok(build_prompt(task, bins))["input_ids"]
    assert len(cache._prefixes) == 2  # bounded LRU


def test_prompt_cache_falls_back_when_pieces_do_not_compose():
    # Whitespace words: "255;" is one token, so the ";" piece never reproduces the tokenizer.
    words = {"<pad>": 0, "<unk>": 1, "Task:": 2, "x,": 3, "State:": 4, "7;": 5}
    core = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>")
    cache = PromptTokenCache(tok)
    assert not cache.exact
    assert cache.ids("x", [7]) == tok("Task: x, State: 7;")["input_ids"] == [2, 3, 4, 5]


def test_input_validation_messages(engine):
    images, state = frames(0), np.zeros(5)
    with pytest.raises(ValueError, match=r"got 2 images but the bundle expects 3 cameras.*\['cam0', 'cam1'"):
        engine.infer(images[:2], state, "t")
    with pytest.raises(ValueError, match="camera 'cam1': shape \\(48, 64, 4\\); pass HxWx3 RGB"):
        engine.infer([images[0], np.zeros((48, 64, 4), np.uint8), images[2]], state, "t")
    with pytest.raises(ValueError, match="camera 'cam0': shape \\(48, 64\\)"):
        engine.infer([np.zeros((48, 64), np.uint8), *images[1:]], state, "t")
    with pytest.raises(ValueError, match="camera 'cam2': dtype float32; pass uint8"):
        engine.infer([*images[:2], images[2].astype(np.float32)], state, "t")
    with pytest.raises(ValueError, match=r"state has shape \(4,\) but the bundle expects 5 joints.*'j0'"):
        engine.infer(images, np.zeros(4), "t")
    with pytest.raises(ValueError, match=r"joint 3 \('j3'\)"):
        engine.infer(images, np.array([0, 0, 0, np.nan, 0]), "t")
    with pytest.raises(ValueError, match="task description is empty"):
        engine.infer(images, state, "  ")
    with pytest.raises(ValueError, match="max_text_tokens=128"):
        engine.infer(images, state, "x" * 150)
    batch = np.zeros((2, 3, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"expected \[2, 5\]"):
        engine.infer_batch(batch, np.zeros((2, 4)), ["a", "b"])
    with pytest.raises(ValueError, match="one per sample"):
        engine.infer_batch(batch, np.zeros((2, 5)), ["a"])
    with pytest.raises(ValueError, match=r"expected \[B, 3, H, W, 3\]"):
        engine.infer_batch(batch[:, :2], np.zeros((2, 5)), ["a", "b"])


def test_device_and_option_resolution(reference, metadata, caplog):
    with caplog.at_level(logging.INFO, logger="ove_ros.engine"):
        eng = make_engine(reference, metadata, cuda_graphs=True)
    info = eng.describe()
    assert (info["device"], info["dtype"], info["cuda_graphs"], info["static_shapes"]) == (
        "cpu", "float32", False, False)
    assert "CUDA graphs need a CUDA device" in caplog.text
    if not torch.cuda.is_available():
        auto = InferenceEngine(copy.deepcopy(reference), metadata, EngineConfig(warmup_iters=1))
        assert auto.describe()["device"] == "cpu" and auto.describe()["dtype"] == "float32"
        auto.warmup()
        assert auto.warmed_up
        with pytest.raises(ValueError, match="CUDA is not available"):
            InferenceEngine(copy.deepcopy(reference), metadata, EngineConfig(device="cuda"))
    with pytest.raises(ValueError, match="EngineConfig.dtype"):
        EngineConfig(dtype="int4")
    with pytest.raises(ValueError, match="does not match the model"):
        InferenceEngine(copy.deepcopy(reference), BundleMetadata.from_dict(
            {**metadata.to_dict(), "camera_names": ["a", "b", "c"]}), EngineConfig(device="cpu"))


def test_int8_weights_stay_close_to_fp32(reference, metadata, engine):
    q = make_engine(reference, metadata, quantize="int8")
    assert q.describe()["int8"]
    images, state = frames(5), np.full(5, 0.01)
    a, b = q.infer(images, state, "sort the parts"), engine.infer(images, state, "sort the parts")
    assert abs(a.value - b.value) < 0.01
    assert np.abs(a.probs - b.probs).sum() < 0.05


def test_from_bundle(reference, metadata, tmp_path):
    path = save_bundle(tmp_path / "b", reference, metadata)
    eng = InferenceEngine.from_bundle(path, EngineConfig(device="cpu"))
    images, state = frames(6), np.zeros(5)
    ref = reference.predict(model_batch([images], [state], ["t"]))
    assert eng.infer(images, state, "t").value == pytest.approx(float(ref["value"][0]), abs=1e-6)
    assert eng.joint_names == JOINTS


@CUDA
def test_cuda_bf16_graphs_and_compile_match_fp32(reference, metadata):
    images, state = frames(7), np.zeros(5)
    cpu = make_engine(reference, metadata).infer(images, state, "t")
    for kw in ({}, {"cuda_graphs": True}, {"compile": True}):
        eng = InferenceEngine(copy.deepcopy(reference), metadata, EngineConfig(device="cuda", **kw))
        eng.warmup()
        assert eng.describe()["dtype"] == "bfloat16"
        out = eng.infer(images, state, "t")
        assert abs(out.value - cpu.value) < 0.02, kw
        again = eng.infer(frames(8), state, "t")
        assert not np.allclose(again.probs, out.probs), kw  # replays use the new inputs
