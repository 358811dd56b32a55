# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Times of the main job: the simulator alone (ms per frame, with and without cameras), then every stage of
``python -m ove_ros.sim.demo`` (record, convert, train + bundle, live node, report) without the cache.

    python benchmarks/bench_main_job.py [--episodes N] [--heldout N] [--train-steps N] [--sim-only]

(defaults: the main job's own, ``ove_ros.sim.demo.DemoConfig``)

Prints a table and writes JSON to ``benchmarks/results/main_job.json`` (stage seconds, EV, AUROC,
online-vs-offline agreement, the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import machine_info  # noqa: E402

from ove_ros.sim.demo import DemoConfig, _jsonable, run_demo  # noqa: E402
from ove_ros.sim.episodes import GL_BACKEND, SimConfig, SimWorld  # noqa: E402


def time_simulator(cameras: tuple[str, ...], image_size: int, episodes: int = 3) -> dict[str, float]:
    """Mean ms per frame over a few episodes (one per task), after the environments are built."""
    config = SimConfig(cameras=cameras, image_size=image_size)
    with SimWorld(config) as world:
        world.prepare()
        frames = 0
        start = time.perf_counter()
        for i in range(episodes):
            frames += len(world.rollout(config.tasks[i % len(config.tasks)], 500 + i).frames)
        seconds = time.perf_counter() - start
    return {"cameras": len(cameras), "image_size": image_size, "frames": frames,
            "ms_per_frame": 1e3 * seconds / frames}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=DemoConfig.episodes)
    parser.add_argument("--heldout", type=int, default=DemoConfig.heldout)
    parser.add_argument("--train-steps", type=int, default=DemoConfig.train_steps)
    parser.add_argument("--sim-only", action="store_true", help="only the simulator timings")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results" / "main_job.json")
    args = parser.parse_args()

    results: dict = {"machine": {**machine_info.basic(), "gl_backend": GL_BACKEND}}
    results["simulator"] = [time_simulator((), 64), time_simulator(("topview", "gripperPOV"), 64),
                            time_simulator(("topview", "gripperPOV"), 96)]
    for row in results["simulator"]:
        print(f"simulator {row['cameras']} camera(s) at {row['image_size']} px: "
              f"{row['ms_per_frame']:.1f} ms/frame")
    if not args.sim_only:
        with tempfile.TemporaryDirectory(prefix="bench_main_job_") as tmp:
            summary = run_demo(DemoConfig(output=Path(tmp) / "demo", cache_dir=Path(tmp) / "cache",
                                          use_cache=False, episodes=args.episodes, heldout=args.heldout,
                                          train_steps=args.train_steps))
        results["stages_s"] = {k: v["seconds"] for k, v in summary["stages"].items()}
        results["total_s"] = summary["total_seconds"]
        results["metrics"] = {"online": summary["report"]["online"], "offline": summary["report"]["offline"],
                              "agreement": summary["report"]["agreement"],
                              "node_latency_ms_median": summary["report"]["node_latency_ms_median"]}
        results["config"] = {"episodes": args.episodes, "heldout": args.heldout,
                             "train_steps": args.train_steps, "max_steps": DemoConfig.max_steps}
        results["machine"]["load_avg_1min_end"] = os.getloadavg()[0]
        for stage, seconds in results["stages_s"].items():
            print(f"  {stage:60s} {seconds:7.1f} s")
        online = results["metrics"]["online"]
        ceiling = online.get("ev_ceiling_without_clock", float("nan"))
        print(f"  total {results['total_s']:.0f} s; held-out EV {online['ev']:.3f} (ceiling without a clock "
              f"{ceiling:.3f}), AUROC {online['auroc_mid']:.3f}, "
              f"max |online - offline| {results['metrics']['agreement']['max_abs_diff']:.2e}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(_jsonable(results), indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
