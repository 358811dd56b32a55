# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Runs every benchmark with its default settings (long: the full-size model and the soak take minutes)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["bench_inference.py", "bench_node_soak.py", "bench_executor.py", "bench_bag_to_lerobot.py",
              "bench_training.py", "bench_main_job.py"]
# They read the simulated dataset of the last `make demo` run (outputs/demo/summary.json).
ON_DEMO_DATASET = ["bench_value_ceilings.py", "bench_model_folds.py"]


def main() -> int:
    import torch

    failed = []
    # Kernel breakdown and the variant suite: GPU machines only.
    extra = ["profile_forward.py", "bench_gpu_suite.py"] if torch.cuda.is_available() else []
    on_demo = ON_DEMO_DATASET if (HERE.parent / "outputs" / "demo" / "summary.json").exists() else []
    if not on_demo:
        print(f"skipping {', '.join(ON_DEMO_DATASET)}: they need a `make demo` run's dataset (outputs/demo)")
    for name in BENCHMARKS + on_demo + extra:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
