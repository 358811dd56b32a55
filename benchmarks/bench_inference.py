# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Per-tick latency of the value model: plain eager ``model(batch)`` vs the InferenceEngine.

Random weights, 3 cameras sending 480x640 RGB frames, one task, a 14-joint state. For each configuration and
device it times, in one process and on the same model object:

* ``eager-fp32``: what ``model(batch)`` does under ``torch.no_grad`` (frame conversion, float resize,
  tokenization every tick), run in its three stages so they can be timed;
* ``preprocess-<resize>``: only the engine's frame preprocessing with each resize path (float, uint8, opencv;
  see ``ove_ros.engine.resolve_resize``);
* ``engine-fp32`` (CPU) / ``engine-bf16`` and ``engine-bf16-graphs`` (CUDA): the engine's tick;
* ``engine-int8`` (CPU): the engine with dynamic int8 Linear weights (numbers change slightly);
* ``engine-compile`` with ``compile=true`` (slow to build on small CPUs), and on CUDA each mode named in
  ``compile_modes`` (``engine-bf16-compile-<mode>``).

Tick rows also hold the p50 of each stage (``preprocess``, ``forward``, ``postprocess``) and of the overhead
(everything but the forward); on CUDA the stages are separated by synchronizations.

Usage::

    python benchmarks/bench_inference.py configs=tiny,full devices=cpu,cuda iters=20 warmup=2
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine_info import cpu_model  # noqa: E402

from ove_ros import typed_cli  # noqa: E402
from ove_ros.bundle import BundleMetadata  # noqa: E402
from ove_ros.engine import RESIZE, EngineConfig, InferenceEngine  # noqa: E402
from ove_ros.model import OpenValueEstimator, ValueModelConfig  # noqa: E402
from ove_ros.typed_config import setting  # noqa: E402

FRAME_HW = (480, 640)
STATE_DIM = 14
TASK = "pick up the bottle and place it in the bin"


def machine() -> dict[str, Any]:
    import transformers

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
    }
    return info


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def build_model(name: str, num_cameras: int) -> OpenValueEstimator:
    """Random weights. The full model skips transformers' init (a minute on 2 cores) and fills N(0, 0.02)."""
    from transformers.modeling_utils import no_init_weights

    cfg = (ValueModelConfig.tiny if name == "tiny" else ValueModelConfig.full)(
        num_cameras=num_cameras, state_dim=STATE_DIM
    )
    torch.manual_seed(0)
    with no_init_weights():
        model = OpenValueEstimator(cfg)
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if pname.endswith("bias"):
                p.zero_()
            elif p.ndim == 1:
                p.fill_(1.0 if "layer_norm" in pname or "layernorm" in pname else 0.0)
            else:
                p.normal_(0.0, 0.02)
        model.projector.gain.fill_(1.0)
        model.match_token_scale()
    model.set_state_stats([-3.0] * STATE_DIM, [3.0] * STATE_DIM)
    return model.eval()


def summarize(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1e3 for t in times)
    p99 = ms[min(len(ms) - 1, int(round(0.99 * (len(ms) - 1))))]
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(p99, 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "min_ms": round(ms[0], 2),
    }


def stage_summary(stages: list[tuple[float, float, float]]) -> dict[str, float]:
    """p50 of each stage over the ticks (and p99 of the overhead, what a live node's budget is about)."""
    pre, fwd, post = (sorted(s[i] * 1e3 for s in stages) for i in range(3))
    over = sorted(a + c for a, c in zip(pre, post, strict=True))
    return {
        "preprocess_p50_ms": round(statistics.median(pre), 3),
        "forward_p50_ms": round(statistics.median(fwd), 3),
        "postprocess_p50_ms": round(statistics.median(post), 3),
        "overhead_p50_ms": round(statistics.median(over), 3),
        "overhead_p99_ms": round(over[min(len(over) - 1, int(round(0.99 * (len(over) - 1))))], 3),
    }


def time_ticks(tick, iters: int, warmup: int, sync) -> list[float]:
    for _ in range(warmup):
        tick(0)
    sync()
    times = []
    for i in range(iters):
        start = time.perf_counter()
        tick(i + 1)
        sync()
        times.append(time.perf_counter() - start)
    return times


def bench_one(name: str, device: str, args: Settings, rows: list[dict[str, Any]], save) -> None:
    """Appends a row per variant to ``rows`` and calls ``save()`` after each: a run cut short keeps them."""
    dev = torch.device(device)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    model = build_model(name, args.cameras).to(dev)
    build_s = time.perf_counter() - t0
    metadata = BundleMetadata.from_model(model)
    rng = np.random.default_rng(0)
    frames = [
        [rng.integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8) for _ in range(args.cameras)] for _ in range(4)
    ]
    states = rng.uniform(-2, 2, (4, STATE_DIM))

    def record(variant: str, times: list[float], extra: dict[str, Any] | None = None) -> None:
        row = {"config": name, "device": device, "variant": variant, "iters": len(times), **summarize(times)}
        row.update(load_avg=load_average(), measured=time.strftime("%Y-%m-%dT%H:%M:%S"), **(extra or {}))
        rows.append(row)
        save()
        stages = ""
        if "overhead_p50_ms" in row:
            stages = (f"  [pre {row['preprocess_p50_ms']:.2f} fwd {row['forward_p50_ms']:.1f} "
                      f"post {row['postprocess_p50_ms']:.2f} overhead p99 {row['overhead_p99_ms']:.2f} ms]")
        print(f"  {name:5s} {device:5s} {variant:20s} p50 {row['p50_ms']:10.1f} ms  "
              f"p99 {row['p99_ms']:10.1f} ms  (load {row['load_avg']}){stages}", flush=True)

    eager_stages: list[tuple[float, float, float]] = []

    def eager_tick(i: int) -> None:
        # model.predict(batch) split at its stage boundaries (same operations).
        k = i % 4
        t0 = time.perf_counter()
        with torch.no_grad():
            images = torch.stack([torch.from_numpy(f) for f in frames[k]]).to(dev).permute(0, 3, 1, 2)
            batch = {
                "observation.images": (images.float() / 255.0)[None],
                "observation.state": torch.from_numpy(states[k : k + 1]),
                "task": [TASK],
            }
            pixels = model.gather_images(batch)
            ids, mask = model.tokenize(batch["task"], batch["observation.state"])
            sync()
            t1 = time.perf_counter()
            logits = model.forward_tensors(pixels, ids, mask)
            sync()
            t2 = time.perf_counter()
            model.summarize(logits)["value"].cpu()
        eager_stages.append((t1 - t0, t2 - t1, time.perf_counter() - t2))

    eager_times = time_ticks(eager_tick, args.iters, args.warmup, sync)
    eager_extra = {"build_s": round(build_s, 1), **stage_summary(eager_stages[-args.iters :])}
    record("eager-fp32", eager_times, eager_extra)

    for resize in RESIZE[1:]:
        pre = InferenceEngine(model, metadata, EngineConfig(device=device, dtype="float32", resize=resize))
        times = time_ticks(lambda i, e=pre: e.preprocess(frames[i % 4]), args.iters, args.warmup, sync)
        record(f"preprocess-{resize}", times, {"resize": resize, "frames": f"{args.cameras}x{FRAME_HW}"})
        del pre

    def engine_variant(variant: str, **cfg: Any) -> None:
        try:
            run_engine_variant(variant, **cfg)
        except Exception as exc:  # one broken path (say, a compile failure) must not lose the other rows
            traceback.print_exc()
            rows.append({"config": name, "device": device, "variant": variant, "iters": 0,
                         "error": f"{type(exc).__name__}: {exc}"[:500],
                         "measured": time.strftime("%Y-%m-%dT%H:%M:%S")})
            save()
            print(f"  {name:5s} {device:5s} {variant:20s} FAILED: {rows[-1]['error']}", flush=True)

    def run_engine_variant(variant: str, **cfg: Any) -> None:
        t = time.perf_counter()
        config = EngineConfig(device=device, warmup_iters=args.warmup, **cfg)
        engine = InferenceEngine(model, metadata, config)
        engine.warmup()
        setup = time.perf_counter() - t
        stages: list[tuple[float, float, float]] = []

        def tick(i: int) -> None:
            k = i % 4
            out = engine.infer(frames[k], states[k], TASK)
            stages.append((out.preprocess_s, out.forward_s, out.postprocess_s))

        times = time_ticks(tick, args.iters, 0, sync)
        record(variant, times, {"setup_s": round(setup, 1), **stage_summary(stages), **engine.describe()})

    if dev.type == "cuda":
        engine_variant("engine-bf16", dtype="bfloat16")
        engine_variant("engine-bf16-graphs", dtype="bfloat16", cuda_graphs=True)
        if args.compile:
            engine_variant("engine-bf16-compile", dtype="bfloat16", compile=True)
        for mode in [m for m in args.compile_modes.split(",") if m]:
            # Kernels tuned by the mode, graphs captured by the engine when the mode captures none.
            graphs = mode in ("default", "max-autotune-no-cudagraphs")
            engine_variant(f"engine-bf16-compile-{mode}", dtype="bfloat16", compile=True, compile_mode=mode,
                           cuda_graphs=graphs)
    else:
        engine_variant("engine-fp32", dtype="float32")
        if args.compile:
            engine_variant("engine-fp32-compile", dtype="float32", compile=True)
        if args.int8:
            engine_variant("engine-int8", dtype="float32", quantize="int8")  # quantizes the model in place


def print_table(rows: list[dict[str, Any]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for r in rows:
            if "error" in r:
                print(f"{r['config']:6s} {r['device']:6s} {r['variant']:22s} failed: {r['error']}")
                continue
            print(f"{r['config']:6s} {r['device']:6s} {r['variant']:22s} "
                  f"{r['p50_ms']:10.1f} {r['p99_ms']:10.1f} {stage(r, 'preprocess')} {stage(r, 'overhead')}")
        return
    table = Table(title="value model tick latency (stage columns: p50)")
    cols = ("config", "device", "variant", "p50 ms", "p99 ms", "pre ms", "fwd ms", "post ms", "overhead ms",
            "iters", "load")
    for col in cols:
        table.add_column(col, justify="right" if "ms" in col or col in ("iters", "load") else "left")
    for r in rows:
        if "error" in r:
            table.add_row(r["config"], r["device"], r["variant"], "failed", "-", "-", "-", "-", "-", "0", "-")
            continue
        stages = [stage(r, name) for name in ("preprocess", "forward", "postprocess", "overhead")]
        table.add_row(r["config"], r["device"], r["variant"], f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
                      *stages, str(r["iters"]), str(r["load_avg"]))
    Console(width=None if sys.stdout.isatty() else 140).print(table)  # logs: no truncated columns


def stage(row: dict[str, Any], name: str) -> str:
    value = row.get(f"{name}_p50_ms")
    return "-" if value is None else f"{value:.2f}"


def write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


USAGE = "usage: python benchmarks/bench_inference.py [key=value ...]"


@dataclass
class Settings:
    """Which models, devices and variants to time (``key=value``; ``--help`` lists the keys)."""

    configs: str = setting("tiny,full", "Comma list of tiny, full.")
    devices: str = setting("cpu,cuda", "Comma list of cpu, cuda (cuda skipped if absent).")
    iters: int = setting(20, "Timed ticks per variant.", ge=1)
    warmup: int = setting(2, "Untimed ticks first.", ge=0)
    threads: int = setting(0, "Torch CPU threads (0: torch's default).", ge=0)
    cameras: int = setting(3, "Cameras.", ge=1)
    compile: bool = setting(False, "Also time torch.compile (minutes to build on CPU).")
    compile_modes: str = setting("", "CUDA: extra torch.compile modes to time, comma list (max-autotune).")
    int8: bool = setting(True, "Time the int8 CPU variant (--no-int8 skips it).")
    out: str | None = setting(
        None,
        "JSON file (default: benchmarks/results/inference.json, inference_cuda.json on a GPU machine, so the "
        "two machines' figures stay apart).",
    )


def main(argv: list[str] | None = None) -> int:
    args = typed_cli.parse_or_exit(Settings, argv, USAGE, __doc__.split("\n\n")[0])
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    configs = [c for c in args.configs.split(",") if c]
    devices = [d for d in args.devices.split(",") if d]
    bad = [c for c in configs if c not in ("tiny", "full")] + [d for d in devices if d not in ("cpu", "cuda")]
    if bad:
        typed_cli.fail(f"bad choice(s) {bad}: configs in tiny,full; devices in cpu,cuda")
    if "cuda" in devices and not torch.cuda.is_available():
        print("CUDA is not available: skipping cuda", flush=True)
        devices.remove("cuda")
    if args.out is None:
        name = "inference_cuda.json" if "cuda" in devices else "inference.json"
        args.out = str(Path("benchmarks/results") / name)
    out = Path(args.out)
    info = machine()
    print(f"machine: {info}", flush=True)
    try:
        old = json.loads(out.read_text()).get("results", []) if out.exists() else []
    except (OSError, ValueError):
        old = []
    rows: list[dict[str, Any]] = []
    settings = {k: str(v) for k, v in vars(args).items()}

    def save() -> None:
        # Earlier rows for other configs/devices stay; re-measured ones are replaced.
        fresh = {(r["config"], r["device"], r["variant"]) for r in rows}
        kept = [r for r in old if (r["config"], r["device"], r["variant"]) not in fresh]
        write_json(out, {"machine": info, "args": settings, "results": kept + rows})

    for name in configs:
        for device in devices:
            bench_one(name, device, args, rows, save)
    print_table(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
