# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training throughput: data loading alone and the real training loop (samples/s, share of time waiting).

    python benchmarks/bench_training.py                       # tiny model, CPU (and GPU when present)
    python benchmarks/bench_training.py steps=60 workers=[0,2] storage=[image,video]

Builds synthetic LeRobot v3 datasets in a temp directory (PNG frames in parquet, or MP4 video decoded on the
fly), then for every (storage, workers) pair measures (1) the DataLoader alone and (2)
``ove_ros.training.train`` on
the same data, reading samples/s and the data-wait fraction from the run's metrics log (steady state: the
second half of the steps). Prints a table and writes ``benchmarks/results/training.json`` with the machine.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
from machine_info import cpu_model  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from ove_ros import typed_cli  # noqa: E402
from ove_ros.training.checkpoint import atomic_write_json  # noqa: E402
from ove_ros.training.config import load_config  # noqa: E402
from ove_ros.training.dataset import ValueFrameDataset, compute_value_targets, open_lerobot_dataset  # noqa: E402
from ove_ros.training.sampler import ResumableBatchSampler  # noqa: E402
from ove_ros.training.synthetic import SyntheticSpec, make_synthetic_dataset  # noqa: E402
from ove_ros.training.train import collate, train  # noqa: E402
from ove_ros.typed_config import setting  # noqa: E402
from ove_ros.values import RewardConfig  # noqa: E402

TINY_YAML = REPO_ROOT / "training" / "configs" / "tiny.yaml"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    if hasattr(os, "getloadavg"):
        info["load_average_at_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def bench_loader(
    root: Path, batch_size: int, workers: int, batches: int, image_size: int
) -> dict[str, float]:
    dataset = open_lerobot_dataset("bench/values", root)
    targets = compute_value_targets(dataset, RewardConfig())
    frames = ValueFrameDataset(dataset, targets, None, dataset.meta.camera_keys, image_size=image_size)
    sampler = ResumableBatchSampler(len(frames), batch_size, seed=0)
    loader = DataLoader(frames, batch_sampler=sampler, num_workers=workers, collate_fn=collate)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    tic = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - tic
    del it, loader
    return {"samples_per_s": batches * batch_size / elapsed, "ms_per_batch": 1000 * elapsed / batches}


def bench_train(
    root: Path, out: Path, name: str, batch_size: int, workers: int, steps: int, preset: str
) -> dict[str, float]:
    half = max(1, steps // 2)
    overrides = [
        f"output_root={out}",
        f"run_name={name}",
        f"data.root={root}",
        "data.repo_id=bench/values",
        f"data.cache_dir={out / 'cache'}",
        f"data.num_workers={workers}",
        f"data.batch_size={batch_size}",
        "data.val_fraction=0.0",
        f"training.steps={steps}",
        f"training.log_every={half}",
        "training.val_every=0",
        f"training.save_every={steps}",
        "training.warmup_steps=0",
        "wandb.mode=disabled",
        f"model.preset={preset}",
    ]
    cfg = load_config(TINY_YAML, overrides)
    result = train(cfg)
    last = [r for r in result.history if r["split"] == "train"][-1]  # steady state: second half of the run
    return {
        "samples_per_s": last["samples_per_s"],
        "ms_per_step": 1000 * batch_size / last["samples_per_s"],
        "data_wait_fraction": last["data_wait_fraction"],
    }


STORAGES = ("image", "video")
USAGE = "usage: python benchmarks/bench_training.py [key=value ...]"


@dataclass
class Settings:
    """What to measure (``key=value``; ``--help`` lists the keys)."""

    steps: int = setting(40, "Training steps per measurement.", ge=1)
    batches: int = setting(20, "Batches per data-loading measurement.", ge=1)
    batch_size: int = setting(16, "Batch size.", ge=1)
    workers: list[int] = setting([0, 2], "DataLoader worker counts to measure.")
    storage: list[str] = setting(["image", "video"], "Dataset storages to measure.", choices=STORAGES)
    image_size: int = setting(32, "Stored frame size (the tiny model reads 32).", ge=8)
    cameras: int = setting(2, "Cameras per frame.", ge=1)
    preset: str = setting("tiny", "Model preset.", choices=("tiny", "full"))
    threads: int | None = setting(None, "Torch CPU threads (default: torch's).", ge=1)
    output: str = setting(str(REPO_ROOT / "benchmarks" / "results" / "training.json"), "Result JSON.")


def main(argv: list[str] | None = None) -> None:
    args = typed_cli.parse_or_exit(Settings, argv, USAGE, __doc__.splitlines()[0])
    if args.threads:
        torch.set_num_threads(args.threads)
    host = machine()  # load average before the benchmark's own work
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        tmp_path = Path(tmp)
        for storage in args.storage:
            spec = SyntheticSpec(
                num_episodes=12,
                min_length=20,
                max_length=40,
                image_size=args.image_size,
                cameras=tuple(f"cam{i}" for i in range(args.cameras)),
                use_videos=storage == "video",
            )
            root = make_synthetic_dataset(tmp_path / f"ds_{storage}", "bench/values", spec)
            for workers in args.workers:
                loader = bench_loader(
                    root, args.batch_size, workers, args.batches, 224 if args.preset == "full" else 32
                )
                name = f"{storage}_w{workers}"
                trained = bench_train(
                    root, tmp_path / "runs", name, args.batch_size, workers, args.steps, args.preset
                )
                rows.append(
                    {
                        "device": device,
                        "preset": args.preset,
                        "storage": storage,
                        "workers": workers,
                        "cameras": args.cameras,
                        "batch_size": args.batch_size,
                        "loader_samples_per_s": loader["samples_per_s"],
                        "train_samples_per_s": trained["samples_per_s"],
                        "ms_per_step": trained["ms_per_step"],
                        "data_wait_fraction": trained["data_wait_fraction"],
                    }
                )
    header = (
        f"{'device':>8} {'storage':>7} {'workers':>7} {'loader samp/s':>13} {'train samp/s':>12} "
        f"{'ms/step':>8} {'data wait':>9}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['device'][:8]:>8} {r['storage']:>7} {r['workers']:>7} {r['loader_samples_per_s']:>13.1f} "
            f"{r['train_samples_per_s']:>12.1f} {r['ms_per_step']:>8.1f} {r['data_wait_fraction']:>9.1%}"
        )
    result = {
        "benchmark": "training",
        "machine": host,
        "settings": asdict(args),
        "results": rows,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(Path(args.output), result)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
