# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""InferenceEngine: same numbers as the plain model, resize paths vs training, cached prompt tokens, input
checks, stage timings, device options."""

import copy
import logging

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from ove_ros.bundle import BundleMetadata, save_bundle
from ove_ros.engine import (
    EngineConfig,
    InferenceEngine,
    PromptTokenCache,
    resolve_compile_mode,
    resolve_resize,
)
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


def smooth_frames(seed, sizes=((480, 640), (48, 64), (20, 30))):
    """Camera-like content (a few low spatial frequencies); white noise exaggerates filter differences."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in sizes:
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        img = np.zeros((h, w, 3))
        for c in range(3):
            for fy, fx, phase in rng.uniform(0, 3, (3, 3)):
                img[..., c] += np.sin(2 * np.pi * (fy * y + fx * x) + 2 * phase)
        img = (img - img.min()) / (img.max() - img.min()) * 255
        out.append(img.round().astype(np.uint8))
    return out


def model_batch(images, states, tasks):
    """The same inputs as LeRobot-style float tensors for ``model(batch)``."""
    return {
        **{f"observation.images.cam{i}": torch.stack(
            [torch.from_numpy(img[i]).permute(2, 0, 1).float() / 255 for img in images]) for i in range(3)},
        "observation.state": torch.as_tensor(np.asarray(states)),
        "task": list(tasks),
    }


def unit_images(engine, pixels):
    """Normalized model pixels -> the [0, 1] images ``model(batch)`` turns back into them."""
    cfg = engine.model.config
    return pixels * torch.tensor(cfg.image_std).view(3, 1, 1) + torch.tensor(cfg.image_mean).view(3, 1, 1)


def resized_batch(engine, images, states, tasks):
    """``model(batch)`` inputs holding the frames exactly as the engine resized them."""
    pixels = torch.cat([engine.preprocess(list(img)) for img in images])
    return {"observation.images": unit_images(engine, pixels), "observation.state": torch.as_tensor(
        np.asarray(states)), "task": list(tasks)}


def test_infer_equals_plain_model_forward_on_its_pixels(engine, reference):
    # The contract: the engine is the model's forward on the engine's own preprocessed pixels.
    assert engine.describe()["resize"] in ("uint8", "opencv")
    images, state = frames(1), np.array([0.3, -0.9, 0.25, 2.0, 0.01])
    out = engine.infer(images, state, "put the mug on the shelf")
    ref = reference.predict(resized_batch(engine, [images], [state], ["put the mug on the shelf"]))
    np.testing.assert_allclose(out.probs, ref["probs"][0].numpy(), atol=1e-6, rtol=1e-5)
    assert out.value == pytest.approx(float(ref["value"][0]), abs=1e-5)
    assert out.std == pytest.approx(float(ref["std"][0]), abs=1e-5)
    assert out.entropy == pytest.approx(float(ref["entropy"][0]), abs=1e-5)
    assert out.probs.shape == (201,) and out.latency_s > 0 and -1.0 <= out.value <= 0.0


def test_float_resize_equals_model_forward_on_raw_frames(reference, metadata):
    # "float" (the CUDA default) is training's preprocessing itself.
    eng = make_engine(reference, metadata, resize="float")
    images, state = frames(1), np.array([0.3, -0.9, 0.25, 2.0, 0.01])
    out = eng.infer(images, state, "put the mug on the shelf")
    ref = reference.predict(model_batch([images], [state], ["put the mug on the shelf"]))
    np.testing.assert_allclose(out.probs, ref["probs"][0].numpy(), atol=1e-6, rtol=1e-5)
    assert out.value == pytest.approx(float(ref["value"][0]), abs=1e-6)


def test_infer_batch_chunks_and_matches_model(engine, reference):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 3, 40, 40, 3), dtype=np.uint8)
    states = rng.uniform(-1, 1, (3, 5))
    tasks = ["fold the towel", "open the door", "fold the towel"]
    outs = engine.infer_batch(images, states, tasks)  # max_batch=2: chunks of 2 + 1
    ref = reference.predict(resized_batch(engine, images, states, tasks))
    assert len(outs) == 3
    np.testing.assert_allclose([o.value for o in outs], ref["value"].numpy(), atol=1e-5)
    np.testing.assert_allclose(np.stack([o.probs for o in outs]), ref["probs"].numpy(), atol=1e-6)
    single = engine.infer(list(images[2]), states[2], tasks[2])
    np.testing.assert_allclose(single.probs, outs[2].probs, atol=1e-6)


@pytest.mark.parametrize("sizes", [((480, 640),) * 3, ((48, 64), (20, 30), (32, 32)), ((16, 100),) * 3])
def test_host_resizes_agree_with_training_resize(reference, metadata, sizes):
    # Training's resize is antialiased bilinear on floats ("float"). The uint8 kernel runs the same filter and
    # only rounds to uint8; OpenCV's INTER_AREA is a box filter, close on camera-like content.
    images = smooth_frames(3, sizes)
    ref = make_engine(reference, metadata, resize="float").preprocess(images)
    std = torch.tensor(reference.config.image_std).view(3, 1, 1)
    for resize, max_diff, mean_diff in (("uint8", 1 / 255, 0.4 / 255), ("opencv", None, 2 / 255)):
        eng = make_engine(reference, metadata, resize=resize)
        diff = ((eng.preprocess(images) - ref) * std).abs()  # in [0, 1] pixel units
        assert float(diff.mean()) < mean_diff, resize
        if max_diff is not None:
            assert float(diff.max()) <= max_diff + 1e-6, resize
        out = eng.infer(images, np.zeros(5), "stack the cups")
        assert abs(out.value - make_engine(reference, metadata, resize="float").infer(
            images, np.zeros(5), "stack the cups").value) < 2e-3, resize


def test_pixels_go_into_one_static_buffer(reference, metadata):
    eng = make_engine(reference, metadata, resize="uint8", max_batch=2)
    a = eng._pixels(frames(1), 1)
    ptr = a.data_ptr()
    b = eng._pixels(smooth_frames(2), 1)
    assert b.data_ptr() == ptr == eng._buffer.data_ptr() and b.shape == (1, 3, 3, 32, 32)
    np.testing.assert_allclose(eng.preprocess(smooth_frames(2)).numpy(), b.numpy())
    bf16 = make_engine(reference, metadata, resize="uint8", dtype="bfloat16")
    out, ref = bf16.infer(frames(1), np.zeros(5), "t"), eng.infer(frames(1), np.zeros(5), "t")
    assert bf16._pixels(frames(1), 1).dtype == torch.bfloat16 and abs(out.value - ref.value) < 0.02


def test_resize_resolution(monkeypatch, reference, metadata):
    assert resolve_resize("auto", torch.device("cuda")) == "float"
    assert resolve_resize("opencv", torch.device("cuda")) == "opencv"
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert resolve_resize("auto", torch.device("cpu")) == "uint8"
    for capability in ("AVX512", "DEFAULT", "SVE256"):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
        assert resolve_resize("auto", torch.device("cpu")) == "opencv"
        assert make_engine(reference, metadata).describe()["resize"] == "opencv"
    with pytest.raises(ValueError, match="EngineConfig.resize"):
        EngineConfig(resize="bicubic")


def test_stage_timings(engine):
    out = engine.infer(frames(3), np.zeros(5), "wipe the table")
    assert min(out.preprocess_s, out.forward_s, out.postprocess_s) > 0
    stages = out.preprocess_s + out.forward_s + out.postprocess_s
    assert stages <= out.latency_s + 1e-6 and stages > 0.5 * out.latency_s
    rng = np.random.default_rng(0)
    outs = engine.infer_batch(rng.integers(0, 256, (3, 3, 24, 24, 3), dtype=np.uint8), np.zeros((3, 5)),
                              ["a", "b", "c"])
    assert outs[0].forward_s == outs[1].forward_s < outs[2].forward_s  # cumulative over chunks
    assert outs[2].preprocess_s + outs[2].forward_s + outs[2].postprocess_s <= outs[2].latency_s + 1e-6


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
        assert auto.describe()["resize"] == resolve_resize("auto", torch.device("cpu"))
        auto.warmup()
        assert auto.warmed_up
        with pytest.raises(ValueError, match="CUDA is not available"):
            InferenceEngine(copy.deepcopy(reference), metadata, EngineConfig(device="cuda"))
    with pytest.raises(ValueError, match="EngineConfig.dtype"):
        EngineConfig(dtype="int4")
    with pytest.raises(ValueError, match="EngineConfig.compile_mode"):
        EngineConfig(compile_mode="fastest")
    with pytest.raises(ValueError, match="does not match the model"):
        InferenceEngine(copy.deepcopy(reference), BundleMetadata.from_dict(
            {**metadata.to_dict(), "camera_names": ["a", "b", "c"]}), EngineConfig(device="cpu"))


def test_compile_mode_resolution(reference, metadata):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_compile_mode("auto", cpu, cuda_graphs=True) == "default"
    assert resolve_compile_mode("auto", cuda, cuda_graphs=True) == "default"  # the engine's graph holds it
    assert resolve_compile_mode("auto", cuda, cuda_graphs=False) == "reduce-overhead"
    assert resolve_compile_mode("max-autotune", cuda, cuda_graphs=True) == "max-autotune"
    eng = make_engine(reference, metadata, compile=True, compile_mode="max-autotune-no-cudagraphs")
    assert eng.describe()["compiled"] and eng.describe()["compile_mode"] == "max-autotune-no-cudagraphs"
    assert make_engine(reference, metadata).describe()["compile_mode"] is None


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
    ref = reference.predict(resized_batch(eng, [images], [state], ["t"]))
    assert eng.infer(images, state, "t").value == pytest.approx(float(ref["value"][0]), abs=1e-6)
    assert eng.joint_names == JOINTS


@CUDA
def test_cuda_bf16_graphs_and_compile_match_fp32(reference, metadata):
    images, state = frames(7), np.zeros(5)
    cpu = make_engine(reference, metadata).infer(images, state, "t")
    # compile alone: torch's graph trees; compile + cuda_graphs: compiled kernels in the engine's own graph.
    for kw in ({}, {"cuda_graphs": True}, {"compile": True}, {"compile": True, "cuda_graphs": True}):
        eng = InferenceEngine(copy.deepcopy(reference), metadata, EngineConfig(device="cuda", **kw))
        eng.warmup()
        info = eng.describe()
        assert info["dtype"] == "bfloat16"
        assert info["cuda_graphs"] == kw.get("cuda_graphs", False), kw  # a failed capture falls back to eager
        if kw.get("compile"):
            assert info["compile_mode"] == ("default" if kw.get("cuda_graphs") else "reduce-overhead"), kw
        out = eng.infer(images, state, "t")
        assert abs(out.value - cpu.value) < 0.02, kw
        again = eng.infer(frames(8), state, "t")
        assert not np.allclose(again.probs, out.probs), kw  # replays use the new inputs


@CUDA
def test_cuda_preprocessing_stays_on_device_and_matches_cpu(reference, metadata):
    images = smooth_frames(9)
    cpu = make_engine(reference, metadata, resize="float").preprocess(images)
    for resize, tol in (("auto", 1e-4), ("uint8", 2.1 / 255)):
        eng = InferenceEngine(copy.deepcopy(reference), metadata,
                              EngineConfig(device="cuda", dtype="float32", resize=resize))
        for _ in range(3):  # the pinned staging buffers are reused across ticks
            pixels = eng.preprocess(images)
            assert pixels.device.type == "cuda"
            assert float((pixels.cpu() - cpu).abs().max()) <= tol, resize
        assert eng.infer(images, np.zeros(5), "t").preprocess_s > 0
