# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Turn a training checkpoint into a deploy bundle for the live node.

    python -m ove_ros.training.convert --checkpoint outputs/ove_ros/my_run/checkpoint_30000.safetensors \
        --output bundles/my_run --dtype bfloat16 [--no-ema] [--advantage-info <labelled dataset dir>] \
        [--debug]

Every option is also a ``key=value`` of ``ConvertConfig`` (``checkpoint=... output=... dtype=bfloat16
use_ema=false advantage_info=... debug=true``); ``--help`` lists the keys with their defaults.

``members=[<ckpt>, ...]`` adds the checkpoints of other training seeds of the same run settings and data: the
bundle is then an ensemble (``ove_ros.ensemble``), valued as the mean of the members' distributions at that
many times the compute.

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

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ove_ros import typed_config
from ove_ros.bundle import BundleMetadata, parse_dtype, save_bundle
from ove_ros.training import checkpoint as ckpt
from ove_ros.training.config import error_message, wants_debug
from ove_ros.training.modeling import default_scale, model_from_checkpoint
from ove_ros.typed_config import ConfigError, setting

logger = logging.getLogger("ove_ros.training.convert")

ADVANTAGE_INFO = "meta/advantage.json"
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class ConvertConfig:
    """The options of ``python -m ove_ros.training.convert``."""

    checkpoint: str | None = setting(
        None,
        "Required. checkpoint_<step>.safetensors / checkpoint_ema.safetensors, or a run directory (newest).",
    )
    output: str | None = setting(None, "Required. Bundle directory to write (replaced if it is a bundle).")
    dtype: str = setting("float32", "Weight dtype of the bundle.", choices=DTYPES)
    use_ema: bool = setting(True, "Export the EMA weights; false exports the raw weights (--no-ema).")
    advantage_info: str | None = setting(
        None,
        "Dataset labelled by ove_ros.training.advantage (or its meta/advantage.json): adds the thresholds.",
    )
    debug: bool = setting(False, "Show the traceback of an error.")
    members: list[str] = setting(
        [], "Checkpoints (or run directories) of other training seeds: an ensemble bundle with checkpoint."
    )


# Today's flags, as keys of ConvertConfig: flags with a value, and switches with the value they set.
FLAGS = {
    "--checkpoint": "checkpoint",
    "--output": "output",
    "--dtype": "dtype",
    "--advantage-info": "advantage_info",
}
SWITCHES = {"--no-ema": "use_ema=false", "--debug": "debug=true"}
USAGE = (
    "usage: python -m ove_ros.training.convert --checkpoint <ckpt> --output <dir> [--dtype D] [--no-ema] "
    "[--advantage-info <dir>] [--debug]\n"
    "   or: python -m ove_ros.training.convert checkpoint=<ckpt> output=<dir> [key=value ...]"
)


def parse_args(argv: Sequence[str]) -> ConvertConfig:
    """Flags and ``key=value`` arguments -> a checked ``ConvertConfig`` (``ConfigError`` names a bad one)."""
    overrides: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        flag, eq, inline = arg.partition("=")
        if arg in SWITCHES:
            overrides.append(SWITCHES[arg])
        elif flag in FLAGS:
            if not eq:
                if not args:
                    raise ConfigError(f"{flag} needs a value (or write {FLAGS[flag]}=<value>)")
                inline = args.pop(0)
            overrides.append(f"{FLAGS[flag]}={json.dumps(inline)}")  # a flag's value is always a string
        elif arg.startswith("-"):
            known = ", ".join([*FLAGS, *SWITCHES])
            raise ConfigError(f"unknown option {arg!r}; options: {known}, or key=value (see --help)")
        else:
            overrides.append(arg)
    cfg = typed_config.load(ConvertConfig, None, overrides, what="convert options", example="dtype=bfloat16")
    typed_config.check(cfg, "convert options")
    for key, flag in (("checkpoint", "--checkpoint"), ("output", "--output")):
        if not getattr(cfg, key):
            raise ConfigError(f"{key} is required: pass {key}=<path> (or {flag} <path>)")
    return cfg


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
            # Where the scales came from and how many targets clipping changed: the evaluation of a bundle
            # reports them, as it does for a checkpoint.
            "normalizer_episodes": data.get("normalizer_episodes"),
            "target_clipping": data.get("target_clipping"),
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


# What the members of an ensemble must share of their checkpoints' record of the data: the same dataset,
# split, reward and scales, so the mixture's values mean what each member's do.
SHARED_DATA = ("repo_id", "fps", "joint_names", "task_normalizers", "reward", "train_episodes", "conversion")


def convert(
    checkpoint: str | Path,
    output: str | Path,
    dtype: str = ConvertConfig.dtype,
    use_ema: bool = ConvertConfig.use_ema,
    advantage_info: str | Path | None = None,
    members: Sequence[str | Path] = (),
) -> Path:
    """Write the bundle for ``checkpoint`` (a checkpoint file or directory, or a run directory) to ``output``;
    with ``members``, the ensemble of it and them. Returns its path."""
    target_dtype = parse_dtype(dtype)
    ckpt_dirs = [ckpt.resolve_checkpoint(Path(c)) for c in [checkpoint, *members]]
    loaded = [model_from_checkpoint(d, use_ema=use_ema) for d in ckpt_dirs]
    for d, (_, _, used) in zip(ckpt_dirs, loaded, strict=True):
        if use_ema and not used:
            logger.warning("%s has no EMA weights (EMA was off); exporting the raw weights", d)
    model, meta, used_ema = loaded[0]
    if members:
        from ove_ros.ensemble import ValueEnsemble

        first = meta.get("dataset", {})
        for d, (_, other, _) in zip(ckpt_dirs[1:], loaded[1:], strict=True):
            differ = [k for k in SHARED_DATA if other.get("dataset", {}).get(k) != first.get(k)]
            if differ:
                raise ValueError(
                    f"{d} was trained on other data than {ckpt_dirs[0]} ({', '.join(differ)} differ); the "
                    "members of an ensemble differ only in their training seed"
                )
        model = ValueEnsemble([m for m, _, _ in loaded])
    advantage = read_advantage_info(advantage_info) if advantage_info else None
    metadata = bundle_metadata(model, meta, used_ema, advantage)
    if members:
        metadata.training["members"] = [
            {"checkpoint": str(d), "run_name": m.get("config", {}).get("run_name"),
             "step": int(m.get("step", 0)), "seed": m.get("config", {}).get("training", {}).get("seed"),
             "ema": bool(used)}
            for d, (_, m, used) in zip(ckpt_dirs, loaded, strict=True)
        ]
    model.to(dtype=target_dtype)
    path = save_bundle(output, model, metadata, inputs=ckpt_dirs)
    logger.info(
        "wrote bundle %s (%s, %s weights, step %s%s)",
        path,
        dtype,
        "EMA" if used_ema else "raw",
        meta.get("step"),
        f", an ensemble of {len(ckpt_dirs)}" if members else "",
    )
    return path


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(typed_config.help_text(ConvertConfig, USAGE, "Convert a training checkpoint into a bundle."))
        return
    try:
        cfg = parse_args(argv)
    except ConfigError as exc:
        if wants_debug(argv):
            raise
        raise SystemExit(error_message(exc)) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        path = convert(cfg.checkpoint, cfg.output, cfg.dtype, cfg.use_ema, cfg.advantage_info, cfg.members)
    except Exception as exc:
        if cfg.debug:
            raise
        raise SystemExit(error_message(exc)) from None
    print(path)


if __name__ == "__main__":
    main()
