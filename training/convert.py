# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Turn a training checkpoint into a deploy bundle for the live node.

    python -m ove_ros.training.convert --checkpoint outputs/ove_ros/my_run/checkpoint_30000.safetensors \
        --output bundles/my_run --dtype bfloat16 [--no-ema] [--advantage-info <labelled dataset dir>] \
        [--debug]

``--checkpoint`` is a checkpoint file (``checkpoint_<step>.safetensors``, ``checkpoint_ema.safetensors``), a
run directory (its newest checkpoint), or an older run's ``checkpoints/step_<N>`` directory or
``checkpoints/last``.

The bundle holds the EMA weights (unless ``--no-ema``) in the chosen dtype, the tokenizer, the camera names,
joint names and min/max statistics, the per-task return normalizers, the reward settings and, when
``--advantage-info`` points at a dataset labelled by ``ove_ros.training.advantage`` (or its
``advantage.json``), the
per-task advantage thresholds, percentile and n-step.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ove_ros.bundle import BundleMetadata, parse_dtype, save_bundle
from ove_ros.training import checkpoint as ckpt
from ove_ros.training.config import error_message
from ove_ros.training.modeling import default_scale, model_from_checkpoint

logger = logging.getLogger("ove_ros.training.convert")

ADVANTAGE_INFO = "meta/advantage.json"


def read_advantage_info(path: str | Path) -> dict[str, Any]:
    """``advantage.json`` written by ``ove_ros.training.advantage`` (the file or the labelled dataset)."""
    path = Path(path)
    file = path / ADVANTAGE_INFO if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"no advantage information at {file}; run `python -m ove_ros.training.advantage` first"
        )
    info = json.loads(file.read_text())
    if "thresholds" not in info:
        raise ValueError(f"{file} has no 'thresholds'")
    return info


def bundle_metadata(
    model: Any, meta: dict[str, Any], used_ema: bool, advantage: dict[str, Any] | None = None
) -> BundleMetadata:
    """Bundle metadata from a checkpoint's record of its dataset and run."""
    data = meta.get("dataset", {})
    cfg = meta.get("config", {})
    normalizers = {k: float(v) for k, v in data.get("task_normalizers", {}).items()}
    overrides: dict[str, Any] = {
        "joint_names": data.get("joint_names")
        or model.joint_names
        or [f"joint_{i}" for i in range(model.config.state_dim)],
        "task_normalizers": normalizers,
        "default_scale": default_scale(normalizers),
        "n_step": int(cfg.get("advantage", {}).get("n_step", 50)),
        "advantage_percentile": float(cfg.get("advantage", {}).get("percentile", 30.0)),
        "training": {
            "run_name": cfg.get("run_name"),
            "project": cfg.get("project"),
            "step": int(meta.get("step", 0)),
            "ema": bool(used_ema),
            "repo_id": data.get("repo_id"),
            "train_episodes": data.get("train_episodes"),
            "val_episodes": data.get("val_episodes"),
            "target_encoding": cfg.get("training", {}).get("target_encoding"),
            "val_metrics": {k: v for k, v in meta.get("metrics", {}).items() if isinstance(v, (int, float))},
        },
    }
    if data.get("reward"):
        overrides["reward"] = data["reward"]
    # The data contract: the live node counts frames at the dataset's fps and sees them as training did.
    if data.get("fps"):
        overrides["fps"] = float(data["fps"])
    conversion = data.get("conversion") or {}
    if conversion.get("tolerance_periods"):
        overrides["tolerance_periods"] = float(conversion["tolerance_periods"])
    if conversion.get("images"):
        overrides["images"] = conversion["images"]
    if advantage is not None:
        overrides["advantage_thresholds"] = advantage["thresholds"]
        overrides["advantage_percentile"] = float(
            advantage.get("percentile", overrides["advantage_percentile"])
        )
        overrides["n_step"] = int(advantage.get("n_step", overrides["n_step"]))
    return BundleMetadata.from_model(model, **overrides)


def convert(
    checkpoint: str | Path,
    output: str | Path,
    dtype: str = "float32",
    use_ema: bool = True,
    advantage_info: str | Path | None = None,
) -> Path:
    """Write the bundle for ``checkpoint`` (a checkpoint file or directory, or a run directory) to ``output``;
    returns its path."""
    target_dtype = parse_dtype(dtype)
    ckpt_dir = ckpt.resolve_checkpoint(Path(checkpoint))
    model, meta, used_ema = model_from_checkpoint(ckpt_dir, use_ema=use_ema)
    if use_ema and not used_ema:
        logger.warning("%s has no EMA weights (EMA was off); exporting the raw weights", ckpt_dir)
    advantage = read_advantage_info(advantage_info) if advantage_info else None
    metadata = bundle_metadata(model, meta, used_ema, advantage)
    model.to(dtype=target_dtype)
    path = save_bundle(output, model, metadata, inputs=[ckpt_dir])
    logger.info(
        "wrote bundle %s (%s, %s weights, step %s)",
        path,
        dtype,
        "EMA" if used_ema else "raw",
        meta.get("step"),
    )
    return path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert a training checkpoint into a deploy bundle.")
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="checkpoint_<step>.safetensors / checkpoint_ema.safetensors, or a run directory (newest one)",
    )
    parser.add_argument(
        "--output", required=True, help="bundle directory to write (replaced if it is a bundle)"
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights instead of the EMA")
    parser.add_argument(
        "--advantage-info",
        default=None,
        help="dataset labelled by ove_ros.training.advantage (or its meta/advantage.json): adds thresholds",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        path = convert(args.checkpoint, args.output, args.dtype, not args.no_ema, args.advantage_info)
    except Exception as exc:
        if args.debug:
            raise
        raise SystemExit(error_message(exc)) from None
    print(path)


if __name__ == "__main__":
    main()
