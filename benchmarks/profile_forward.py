# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Where a tick's device time goes: kernels of the engine's forward, grouped and ranked.

Runs the engine (no CUDA graphs, so each kernel is seen on its own) on random weights and 3 VGA cameras under
``torch.profiler`` and reports, per kernel family (matrix products, attention, normalization, elementwise,
copies), the summed device time per tick and the number of kernel launches. The sum of kernel times is what a
captured CUDA graph cannot go below; launches times a few microseconds is what graphs remove.

Usage::

    python benchmarks/profile_forward.py config=full device=cuda ticks=5
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inference import FRAME_HW, STATE_DIM, TASK, build_model, machine, write_json  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ove_ros import typed_cli  # noqa: E402
from ove_ros.bundle import BundleMetadata  # noqa: E402
from ove_ros.engine import EngineConfig, InferenceEngine  # noqa: E402
from ove_ros.typed_config import setting  # noqa: E402

# First match wins; kernel names differ between cuBLAS/cuDNN/Triton/ATen versions, so the patterns are loose.
FAMILIES = (
    ("attention", r"flash|fmha|attention|softmax|efficient_attention|sdpa"),
    ("matmul", r"gemm|cutlass|sm90|xmma|matmul|cublas|nvjet|mm_"),
    ("normalization", r"norm|rsqrt|mean|var_"),
    ("copy/convert", r"copy|cat|convert|fill|index|gather|to_|contiguous"),
    ("elementwise", r"elementwise|vectorized|gelu|tanh|mul|add|pow|triton"),
)


def family(name: str) -> str:
    low = name.lower()
    for fam, pattern in FAMILIES:
        if re.search(pattern, low):
            return fam
    return "other"


def profile(config: str, device: str, ticks: int, dtype: str, **options: Any) -> dict[str, Any]:
    """``options`` go to :class:`EngineConfig` (e.g. ``fused_layers``, ``device_preprocess``, ``compile``)."""
    model = build_model(config, 3)
    engine = InferenceEngine(model, BundleMetadata.from_model(model),
                             EngineConfig(device=device, dtype=dtype, static_shapes=True, warmup_iters=3,
                                          **options))
    engine.warmup()
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8) for _ in range(3)]
    state = rng.uniform(-2, 2, STATE_DIM)
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(ticks):
            engine.infer(frames, state, TASK)
    kernels: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for ev in prof.key_averages():
        if device == "cuda":
            us = getattr(ev, "self_device_time_total", None) or getattr(ev, "self_cuda_time_total", 0.0)
            if ev.device_type != torch.autograd.DeviceType.CUDA or us <= 0:
                continue
        else:
            us = ev.self_cpu_time_total
            if not ev.key.startswith("aten::") or us <= 0:
                continue
        kernels[ev.key][0] += us / ticks
        kernels[ev.key][1] += ev.count / ticks
    families: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for name, (us, n) in kernels.items():
        families[family(name)][0] += us
        families[family(name)][1] += n
    top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:25]
    total = sum(us for us, _ in kernels.values())
    return {
        "config": config, "device": device, "dtype": dtype, "ticks": ticks, "options": options,
        "kernel_time_per_tick_ms": round(total / 1e3, 3),
        "launches_per_tick": int(round(sum(n for _, n in kernels.values()))),
        "families": {k: {"ms_per_tick": round(us / 1e3, 3), "launches_per_tick": round(n, 1),
                         "share": round(us / total, 3) if total else 0.0}
                     for k, (us, n) in sorted(families.items(), key=lambda kv: -kv[1][0])},
        "top_kernels": [{"name": k[:160], "ms_per_tick": round(us / 1e3, 3), "launches_per_tick": round(n, 1)}
                        for k, (us, n) in top],
    }


USAGE = "usage: python benchmarks/profile_forward.py [key=value ...]"


@dataclass
class Settings:
    """The model, device and engine options to profile (``key=value``; ``--help`` lists the keys)."""

    config: str = setting("full", "Model preset.", choices=("tiny", "full"))
    device: str = setting("cuda", "Device.", choices=("cpu", "cuda"))
    dtype: str = setting("auto", "Engine dtype (auto: bf16 on CUDA, fp32 on CPU).")
    ticks: int = setting(5, "Profiled ticks.", ge=1)
    fused_layers: bool = setting(False, "Engine option fused_layers.")
    device_preprocess: bool = setting(False, "Engine option device_preprocess.")
    compile: bool = setting(False, "torch.compile (default mode), still no graphs.")
    out: str = setting("benchmarks/results/profile_forward.json", "Result JSON.")


def main(argv: list[str] | None = None) -> int:
    args = typed_cli.parse_or_exit(Settings, argv, USAGE, __doc__.split("\n\n")[0])
    if args.device == "cuda" and not torch.cuda.is_available():
        typed_cli.fail("CUDA is not available here; use device=cpu")
    options = {k: True for k in ("fused_layers", "device_preprocess", "compile") if getattr(args, k)}
    if options.get("compile"):
        options["compile_mode"] = "default"
    result = profile(args.config, args.device, max(1, args.ticks), args.dtype, **options)
    print(f"{args.config} on {args.device}: {result['kernel_time_per_tick_ms']:.2f} ms of kernels and "
          f"{result['launches_per_tick']} launches per tick")
    for fam, row in result["families"].items():
        print(f"  {fam:14s} {row['ms_per_tick']:8.3f} ms  {row['launches_per_tick']:7.1f} launches  "
              f"{100 * row['share']:5.1f} %")
    print("top kernels:")
    for row in result["top_kernels"]:
        print(f"  {row['ms_per_tick']:8.3f} ms  x{row['launches_per_tick']:<6} {row['name'][:100]}")
    write_json(Path(args.out), {"machine": machine(), "results": [result]})
    print(f"wrote {args.out}")
    print(json.dumps(result["families"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
