# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The engine's speed options give the plain path's numbers: batched forwards at static sizes, fused
attention/MLP blocks, the device-side tick (resize + forward + statistics as one function) and FP8 matmuls
(emulated on the CPU)."""

import copy
import importlib.util
import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ove_ros.bundle import BundleMetadata
from ove_ros.engine import EngineConfig, InferenceEngine
from ove_ros.fp8 import Fp8Linear, convert_to_fp8, convert_with_torchao, quantize_rows
from ove_ros.fused_layers import FusedGemmaAttention, FusedGemmaMLP, FusedSiglipAttention, fuse_layers
from ove_ros.model import OpenValueEstimator, ValueModelConfig, preprocess_images

JOINTS = [f"j{i}" for i in range(4)]
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def make_model(seed=0, **overrides):
    torch.manual_seed(seed)
    m = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=3, state_dim=4, **overrides)).eval()
    m.set_state_stats([-1.0] * 4, [1.0] * 4, JOINTS)
    with torch.no_grad():  # spread the logits so the distributions differ between inputs
        m.head[-1].weight.mul_(40.0)
    return m


@pytest.fixture(scope="module")
def reference():
    return make_model()


def engine(model, device="cpu", **kw):
    config = EngineConfig(device=device, **kw)
    return InferenceEngine(copy.deepcopy(model), BundleMetadata.from_model(model), config)


def batch(seed, b, sizes=(40, 56)):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (b, 3, *sizes, 3), dtype=np.uint8)
    states = rng.uniform(-1, 1, (b, 4))
    tasks = [["fold the towel", "open the door", "stack the three red cups"][i % 3] for i in range(b)]
    return images, states, tasks


def count_forwards(eng):
    """Record the batch size of every model forward the engine runs."""
    seen = []
    original = eng.model.forward_tensors

    def counted(pixels, ids, mask):
        seen.append(pixels.shape[0])
        return original(pixels, ids, mask)

    eng.model.forward_tensors = counted
    eng._forward = counted
    if not eng.device_preprocess:
        eng._tick = eng._eager_tick = counted
    return seen


def values(outs):
    return np.array([o.value for o in outs]), np.stack([o.probs for o in outs])


# ------------------------------------------------------------------------------------------ batching


def test_padded_sizes_and_their_validation():
    assert EngineConfig(max_batch=1).padded_sizes() == (1,)
    assert EngineConfig(max_batch=8).padded_sizes() == (1, 2, 4, 8)
    assert EngineConfig(max_batch=6).padded_sizes() == (1, 2, 4, 6)
    assert EngineConfig(max_batch=8, batch_sizes=(8, 1, 4)).padded_sizes() == (1, 4, 8)
    with pytest.raises(ValueError, match="largest must equal max_batch=8"):
        EngineConfig(max_batch=8, batch_sizes=(1, 4))
    with pytest.raises(ValueError, match="sizes must be >= 1"):
        EngineConfig(max_batch=4, batch_sizes=(0, 4))


def test_batch_runs_as_one_forward_at_the_next_static_size(reference):
    eng = engine(reference, max_batch=8, static_shapes=True)
    seen = count_forwards(eng)
    images, states, tasks = batch(1, 3)
    outs = eng.infer_batch(images, states, tasks)
    assert seen == [4]  # one forward, padded 3 -> 4 (not 3 forwards, not 8 rows)
    singles = [eng.infer(list(images[i]), states[i], tasks[i]) for i in range(3)]
    assert seen[1:] == [1, 1, 1]  # a single tick is not padded to max_batch
    v, p = values(outs)
    sv, sp = values(singles)
    np.testing.assert_allclose(v, sv, atol=1e-5)
    np.testing.assert_allclose(p, sp, atol=1e-5)
    assert np.ptp(v) > 0.05  # the rows really differ: no row was served another row's result


def test_more_samples_than_max_batch_run_in_chunks(reference):
    eng = engine(reference, max_batch=4, static_shapes=True)
    seen = count_forwards(eng)
    images, states, tasks = batch(2, 7)
    outs = eng.infer_batch(images, states, tasks)
    assert seen == [4, 4] and len(outs) == 7  # 4 + 3 (padded to 4)
    ref = engine(reference).infer_batch(images, states, tasks)  # dynamic shapes, max_batch 1
    np.testing.assert_allclose(values(outs)[0], values(ref)[0], atol=1e-5)
    assert outs[3].forward_s < outs[4].forward_s  # cumulative over the chunks


def test_warmup_runs_every_static_size_largest_first(reference):
    eng = engine(reference, max_batch=4, static_shapes=True, warmup_iters=1)
    seen = count_forwards(eng)
    eng.warmup()
    assert seen == [4, 2, 1] and eng.warmed_up
    assert eng.describe()["batch_sizes"] == [1, 2, 4]
    assert engine(reference).describe()["batch_sizes"] == []  # dynamic shapes: nothing padded


# ---------------------------------------------------------------------------------------- fused layers


@pytest.mark.parametrize("local_attention", ["full", "window"])
def test_fused_layers_compute_the_same_forward(local_attention):
    model = make_model(3, local_attention=local_attention)
    fused = copy.deepcopy(model)
    counts = fuse_layers(fused)
    assert counts == {"FusedSiglipAttention": 2, "FusedGemmaAttention": 2, "FusedGemmaMLP": 2}
    assert not any(isinstance(m, nn.Linear) and m.out_features == 64 and "q_proj" in n
                   for n, m in fused.named_modules())  # the separate projections are gone
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.normal(size=(2, 3, 3, 32, 32)).astype(np.float32))
    ids, mask = model.tokenize(["pick", "open the big door and walk through it"], np.zeros((2, 4)))
    with torch.no_grad():
        a, b = model.forward_tensors(pixels, ids, mask), fused.forward_tensors(pixels, ids, mask)
    assert int(mask.sum(1).min()) < ids.shape[1]  # one prompt is padded: the key-padding mask matters
    torch.testing.assert_close(b, a, atol=2e-5, rtol=1e-5)


def test_folded_gqa_attention_equals_repeated_kv():
    # 4 query heads over 2 KV heads (the tiny preset has one KV head), padded keys masked.
    model = make_model(4, text={**ValueModelConfig.tiny().text, "num_attention_heads": 4,
                                "num_key_value_heads": 2})
    fused = copy.deepcopy(model)
    fuse_layers(fused)
    attn = [m for m in fused.modules() if isinstance(m, FusedGemmaAttention)][0]
    assert (attn.num_heads, attn.num_kv_heads) == (4, 2)
    pixels = torch.randn(2, 3, 3, 32, 32)
    ids, mask = model.tokenize(["a", "b c d e f g h"], np.zeros((2, 4)))
    with torch.no_grad():
        torch.testing.assert_close(fused.forward_tensors(pixels, ids, mask),
                                   model.forward_tensors(pixels, ids, mask), atol=2e-5, rtol=1e-5)


def test_engine_with_fused_layers_matches_plain_engine(reference):
    images, states, tasks = batch(5, 3)
    plain = engine(reference, max_batch=4).infer_batch(images, states, tasks)
    eng = engine(reference, max_batch=4, fused_layers=True)
    assert eng.describe()["fused_layers"]["FusedSiglipAttention"] == 2
    assert isinstance(eng.model.text.layers[0].mlp, FusedGemmaMLP)
    assert isinstance(eng.model.vision.vision_model.encoder.layers[0].self_attn, FusedSiglipAttention)
    fused = eng.infer_batch(images, states, tasks)
    np.testing.assert_allclose(values(fused)[0], values(plain)[0], atol=2e-5)
    np.testing.assert_allclose(values(fused)[1], values(plain)[1], atol=2e-5)


def test_layer_scope_compiles_each_transformer_layer(reference):
    # Building only wraps the layers (compilation happens at the first call; the GPU suite runs it).
    eng = engine(reference, compile=True, compile_scope="layers", max_batch=8)
    layers = [*eng.model.vision.vision_model.encoder.layers, *eng.model.text.layers]
    assert len(layers) == 4 and all(layer._compiled_call_impl is not None for layer in layers)
    assert eng._forward == eng.model.forward_tensors  # the glue between layers stays eager
    assert eng.describe()["compile_scope"] == "layers" and eng.static
    assert torch._dynamo.config.recompile_limit >= 16  # 4 static batch sizes x Gemma's two layer kinds
    with pytest.raises(ValueError, match="compile_scope must be one of"):
        EngineConfig(compile_scope="blocks")


# ---------------------------------------------------------------------------------------- device tick


def test_device_tick_equals_the_float_resize_path(reference):
    images, states, tasks = batch(6, 3, sizes=(48, 64))
    float_path = engine(reference, resize="float", max_batch=4)
    eng = engine(reference, device_preprocess=True, max_batch=4)
    info = eng.describe()
    assert info["device_preprocess"] and info["resize"] == "float"
    a = eng.infer_batch(images, states, tasks)
    b = float_path.infer_batch(images, states, tasks)
    np.testing.assert_allclose(values(a)[0], values(b)[0], atol=1e-6)
    np.testing.assert_allclose(values(a)[1], values(b)[1], atol=1e-6)
    for key in ("std", "entropy"):
        np.testing.assert_allclose([getattr(o, key) for o in a], [getattr(o, key) for o in b], atol=1e-5)
    torch.testing.assert_close(eng.preprocess(list(images[0])), float_path.preprocess(list(images[0])))
    out = eng.infer(list(images[1]), states[1], tasks[1])
    assert out.value == pytest.approx(b[1].value, abs=1e-6)
    assert min(out.preprocess_s, out.forward_s, out.postprocess_s) > 0
    assert out.preprocess_s + out.forward_s + out.postprocess_s <= out.latency_s + 1e-6


def test_device_tick_with_static_sizes_and_mixed_cameras(reference):
    # Cameras of different resolutions, a chunk padded 3 -> 4 whose padded row holds an earlier tick's frames.
    rng = np.random.default_rng(7)
    sizes = ((48, 64), (30, 20), (32, 32))
    rows = [[rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in sizes] for _ in range(4)]
    states = rng.uniform(-1, 1, (4, 4))
    tasks = ["wipe", "stack the cups", "open", "sort the parts"]
    eng = engine(reference, device_preprocess=True, max_batch=4, static_shapes=True)
    seen = count_forwards(eng)
    ref = engine(reference, resize="float")
    first = [eng.infer(rows[3], states[3], tasks[3])]  # leaves row 3's data in the size-1 buffers only
    outs = [eng.infer(r, s, t) for r, s, t in zip(rows[:3], states[:3], tasks[:3], strict=True)]
    want = [ref.infer(r, s, t) for r, s, t in zip(rows, states, tasks, strict=True)]
    np.testing.assert_allclose(values(first + outs)[0], values(want[3:] + want[:3])[0], atol=1e-6)
    assert seen == [1, 1, 1, 1]
    # infer_batch needs one resolution per camera across rows; the camera sizes may still differ.
    same = np.stack([np.stack([rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)] * 3)] * 3)
    got = eng.infer_batch(same, states[:3], tasks[:3])
    assert seen[-1] == 4
    np.testing.assert_allclose(values(got)[0], values(ref.infer_batch(same, states[:3], tasks[:3]))[0],
                               atol=1e-6)


class HostRoundTrips(TorchDispatchMode):
    """Records ops that copy host data to the device (tensor literals) or read a value back (.item())."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.lift_fresh.default, torch.ops.aten._local_scalar_dense.default):
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_device_tick_has_no_host_round_trips(reference):
    # On CUDA a tensor literal is a host-to-device copy and .item() a synchronization: either breaks the graph
    # capture of the whole tick (the engine would fall back to eager, silently slower). Visible on the CPU.
    eng = engine(reference, device_preprocess=True, fused_layers=True, max_batch=4, static_shapes=True)
    images, states, tasks = batch(10, 3)
    host = eng._stage([list(r) for r in images], *eng._token_rows(tasks, states))
    with torch.inference_mode(), HostRoundTrips() as spy:
        packed = eng._device_tick(*host)
    assert spy.ops == [] and packed.shape == (4, 201 + 3)
    with torch.inference_mode(), HostRoundTrips() as spy:  # the check sees what it looks for
        preprocess_images(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 4, [0.5] * 3, [0.5] * 3, torch.float32)
    assert spy.ops


def test_device_tick_rejects_a_host_resize():
    with pytest.raises(ValueError, match="device_preprocess .* cannot use resize='uint8'"):
        EngineConfig(device_preprocess=True, resize="uint8")


def test_all_options_together_match_the_plain_engine(reference):
    images, states, tasks = batch(8, 5)
    plain = engine(reference, resize="float").infer_batch(images, states, tasks)
    eng = engine(reference, resize="float", max_batch=4, static_shapes=True, fused_layers=True,
                 device_preprocess=True, warmup_iters=1)
    eng.warmup()
    fast = eng.infer_batch(images, states, tasks)
    np.testing.assert_allclose(values(fast)[0], values(plain)[0], atol=2e-5)
    np.testing.assert_allclose(values(fast)[1], values(plain)[1], atol=2e-5)


# ------------------------------------------------------------------------------------------------- FP8


def test_fp8_rows_quantize_within_e4m3_precision():
    x = torch.randn(64, 96) * torch.logspace(-3, 3, 64)[:, None]  # rows of very different magnitude
    q, s = quantize_rows(x)
    assert q.dtype == torch.float8_e4m3fn and s.shape == (64, 1)
    rel = ((q.float() * s - x).abs() / x.abs().amax(1, keepdim=True)).max()
    assert float(rel) < 2 ** -4  # 3 mantissa bits: half an ulp at the top of the range is 1/16
    assert float(q.float().abs().amax()) == pytest.approx(448.0)


def test_fp8_linear_stays_close_to_the_linear():
    torch.manual_seed(0)
    lin = nn.Linear(128, 64)
    fp8 = Fp8Linear(lin, emulate=True)
    x = torch.randn(3, 10, 128)
    with torch.no_grad():
        want, got = lin(x), fp8(x)
    assert got.shape == want.shape
    assert float((got - want).norm() / want.norm()) < 0.05
    assert float((got - want).norm() / want.norm()) > 0  # it did quantize


def test_fp8_towers_stay_close_to_float(reference):
    model = copy.deepcopy(reference)
    n = convert_to_fp8([model.vision, model.text], emulate=True)
    assert n == 2 * (4 + 2) + 2 * (4 + 3)  # SigLIP q/k/v/out + fc1/fc2; Gemma q/k/v/o + gate/up/down
    assert isinstance(model.head[-1], nn.Linear)  # the head stays in the engine dtype
    fused = copy.deepcopy(reference)
    fuse_layers(fused)
    assert convert_to_fp8([fused.vision, fused.text], emulate=True) == 2 * 4 + 2 * 4  # qkv, out, 2 MLP each
    torch.manual_seed(1)
    pixels = torch.randn(8, 3, 3, 32, 32)
    ids, mask = reference.tokenize(["a", "b", "c d", "e f g"] * 2, np.zeros((8, 4)))
    with torch.no_grad():
        want = reference.encode(pixels, ids, mask)[0]
        for m in (model, fused):
            # e4m3 keeps 3 mantissa bits: ~2-3 % per matmul, ~11 % after this stack (bf16: ~1 %); a 20 % scale
            # error in the weights gives ~35 %. The full model's figure comes from the GPU benchmark.
            err = (m.encode(pixels, ids, mask)[0] - want).norm() / want.norm()
            assert 0 < float(err) < 0.2


def test_fp8_needs_a_recent_gpu_and_says_so(reference, caplog):
    for mode in ("fp8", "fp8-torchao"):
        with caplog.at_level(logging.INFO, logger="ove_ros.engine"):
            eng = engine(reference, quantize=mode)
        assert eng.describe()["quantize"] == "none"
        assert "compute capability >= 8.9" in caplog.text
        caplog.clear()


@pytest.mark.skipif(importlib.util.find_spec("torchao") is not None, reason="torchao is installed")
def test_torchao_fp8_without_torchao_names_the_fix(reference):
    with pytest.raises(ValueError, match="needs torchao .*pip install torchao.*quantize='fp8'"):
        convert_with_torchao([copy.deepcopy(reference).vision])


@CUDA
def test_cuda_fast_paths_match_fp32(reference):
    images, states, tasks = batch(9, 4)
    ref = engine(reference, resize="float").infer_batch(images, states, tasks)
    variants = [dict(max_batch=4, cuda_graphs=True), dict(max_batch=4, cuda_graphs=True, fused_layers=True),
                dict(max_batch=4, cuda_graphs=True, device_preprocess=True, fused_layers=True),
                dict(max_batch=4, cuda_graphs=True, compile=True, device_preprocess=True, fused_layers=True)]
    if torch.cuda.get_device_capability() >= (8, 9):
        variants.append(dict(max_batch=4, cuda_graphs=True, device_preprocess=True, quantize="fp8"))
    wrong = []  # every variant is checked, and all that miss are named at once
    for kw in variants:
        eng = engine(reference, device="cuda", warmup_iters=1, **kw)
        eng.warmup()
        outs = eng.infer_batch(images, states, tasks)
        single = eng.infer(list(images[2]), states[2], tasks[2])
        # fp8 (e4m3) on this tiny random model: ~11 % feature error (see the emulation test above); on an
        # H200 its values moved by up to 0.06. The full model's fp8 error is in the GPU suite's results.
        tol = 0.1 if kw.get("quantize") else 0.02
        batch_err = float(np.abs(values(outs)[0] - values(ref)[0]).max())
        single_err = abs(single.value - outs[2].value)
        if not eng.describe()["cuda_graphs"] or batch_err >= tol or single_err >= 0.01:
            wrong.append(f"{kw}: graphs {eng.describe()['cuda_graphs']}, batch |dV| {batch_err:.3g} "
                         f"(< {tol}), single vs batch |dV| {single_err:.3g} (< 0.01)")
    assert not wrong, "\n".join(wrong)
