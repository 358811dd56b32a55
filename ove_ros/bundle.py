# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The offline deploy bundle: one directory with everything the live node needs.

Layout::

    <bundle>/model.safetensors   weights (incl. the state statistics as buffers)
    <bundle>/config.json         {"format_version": 1, "model": ValueModelConfig, "metadata": BundleMetadata,
                                  "ensemble_members": K (only for an ensemble, K >= 2)}
    <bundle>/tokenizer/          Hugging Face tokenizer files

An ensemble (:class:`ove_ros.ensemble.ValueEnsemble`: K models of one config, trained with other seeds) stores
its members' weights under ``members.<i>.``; the model section is the config they share.

Loading validates every piece against the others and raises :class:`BundleError` naming the file and the
problem, so a bad bundle fails at node start-up instead of producing wrong values.

This module is the format only: it writes any model that has the attributes of :class:`BundledModel` and
reads the pieces back (:func:`read_bundle`); :func:`ove_ros.model.load_bundle` builds the model from them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ove_ros.file_modes import default_modes
from ove_ros.model_config import ValueModelConfig
from ove_ros.output_guard import OutputRefused, check_output, is_bundle
from ove_ros.tokenizer import load_tokenizer
from ove_ros.values import RewardConfig

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_DIR = "tokenizer"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class BundleError(ValueError):
    """A bundle directory is missing, incomplete, damaged or inconsistent."""


class BundledModel(Protocol):
    """What the format needs of a model (:class:`ove_ros.model.OpenValueEstimator` has it)."""

    config: ValueModelConfig
    tokenizer: Any
    state_low: torch.Tensor
    state_high: torch.Tensor
    joint_names: list[str] | None
    dtype: torch.dtype

    def state_dict(self) -> Mapping[str, torch.Tensor]: ...


def parse_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """``"bfloat16"`` / ``torch.bfloat16`` / None -> torch dtype or None."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")
    return DTYPES[name]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass
class BundleMetadata:
    """What the deployed model needs besides its weights: input order, statistics, advantage settings."""

    camera_names: list[str]
    joint_names: list[str]
    state_low: list[float]
    state_high: list[float]
    task_normalizers: dict[str, float] = field(default_factory=dict)
    default_scale: float = 1.0
    reward: dict[str, Any] = field(default_factory=lambda: RewardConfig().to_dict())
    advantage_thresholds: dict[str, float] = field(default_factory=dict)
    advantage_percentile: float = 30.0
    n_step: int = 50
    training: dict[str, Any] = field(default_factory=dict)
    dtype: str = "float32"
    # The data contract: how the training frames were made, so the live node counts and sees them alike.
    fps: float = 0.0  # dataset frames per second (0: not recorded; the node then needs sync.fps)
    tolerance_periods: float = 1.5  # the converter's staleness limit of an input, in frame periods
    images: dict[str, Any] = field(default_factory=dict)  # per camera, the preprocessing of its frames

    def __post_init__(self) -> None:
        self.camera_names = [str(c) for c in self.camera_names]
        self.joint_names = [str(j) for j in self.joint_names]
        self.state_low = [float(v) for v in self.state_low]
        self.state_high = [float(v) for v in self.state_high]
        self.task_normalizers = {str(k): float(v) for k, v in self.task_normalizers.items()}
        self.advantage_thresholds = {str(k): float(v) for k, v in self.advantage_thresholds.items()}
        self.reward = RewardConfig.from_dict(self.reward).to_dict()  # validates the keys and values
        n = len(self.joint_names)
        if not self.camera_names or len(set(self.camera_names)) != len(self.camera_names):
            raise ValueError(f"camera_names must be non-empty and unique, got {self.camera_names}")
        if n == 0 or len(set(self.joint_names)) != n:
            raise ValueError(f"joint_names must be non-empty and unique, got {self.joint_names}")
        if len(self.state_low) != n or len(self.state_high) != n:
            raise ValueError(
                f"state_low has {len(self.state_low)} and state_high {len(self.state_high)} values for "
                f"{n} joint_names; store one min and one max per joint, in joint_names order"
            )
        values = [*self.state_low, *self.state_high, *self.task_normalizers.values(),
                  *self.advantage_thresholds.values(), self.default_scale, self.advantage_percentile]
        if not all(math.isfinite(v) for v in values):
            raise ValueError("metadata holds NaN/inf statistics, scales or thresholds; recompute them")
        if any(lo > hi for lo, hi in zip(self.state_low, self.state_high, strict=True)):
            raise ValueError("state_low exceeds state_high for some joint; store (min, max) in that order")
        if self.default_scale <= 0 or any(s <= 0 for s in self.task_normalizers.values()):
            raise ValueError("task normalizer scales must be > 0 (see ARCHITECTURE.md: scale >= 1)")
        if not 0.0 <= self.advantage_percentile <= 100.0:
            raise ValueError(f"advantage_percentile must be in [0, 100], got {self.advantage_percentile}")
        if int(self.n_step) < 1:
            raise ValueError(f"n_step must be >= 1, got {self.n_step}")
        self.fps = float(self.fps)
        self.tolerance_periods = float(self.tolerance_periods)
        if not (math.isfinite(self.fps) and self.fps >= 0):
            raise ValueError(f"fps must be a finite number >= 0 (0: not recorded), got {self.fps}")
        if not (math.isfinite(self.tolerance_periods) and self.tolerance_periods > 0):
            raise ValueError(f"tolerance_periods must be > 0, got {self.tolerance_periods}")
        self.n_step = int(self.n_step)
        parse_dtype(self.dtype)

    def scale_for(self, task: str) -> float:
        """Per-task normalizer, ``default_scale`` for tasks not seen in training."""
        return self.task_normalizers.get(task, self.default_scale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BundleMetadata:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"BundleMetadata: unknown keys {unknown}; expected a subset of {sorted(known)}")
        return cls(**dict(data))

    @classmethod
    def from_model(cls, model: BundledModel, **overrides: Any) -> BundleMetadata:
        """Metadata matching ``model`` (statistics from its buffers); other fields from ``overrides``."""
        names = model.joint_names or [f"joint_{i}" for i in range(model.config.state_dim)]
        data: dict[str, Any] = {
            "camera_names": list(model.config.camera_names),
            "joint_names": list(names),
            "state_low": model.state_low.detach().cpu().double().tolist(),
            "state_high": model.state_high.detach().cpu().double().tolist(),
            "dtype": dtype_name(model.dtype),
        }
        data.update(overrides)
        return cls(**data)


def _mismatch(metadata: BundleMetadata, model: BundledModel) -> str | None:
    """Describe how metadata disagrees with the model it describes (None when consistent)."""
    cfg = model.config
    if metadata.camera_names != cfg.camera_names:
        return f"camera_names {metadata.camera_names} differ from the model's {cfg.camera_names}"
    if len(metadata.joint_names) != cfg.state_dim:
        return f"{len(metadata.joint_names)} joint_names for a model with state_dim={cfg.state_dim}"
    for name in ("state_low", "state_high"):
        stored = getattr(model, name).detach().cpu().float().numpy()
        listed = np.asarray(getattr(metadata, name), dtype=np.float32)
        if stored.shape != listed.shape or not np.array_equal(stored, listed):
            return f"metadata {name} differs from the statistics stored in the weights"
    return None


# ------------------------------------------------------------------------------------------------ save


def save_bundle(
    path: str | Path,
    model: BundledModel,
    metadata: BundleMetadata,
    inputs: Sequence[str | Path] = (),
) -> Path:
    """Write the bundle atomically: build it in a temp dir next to ``path``, then rename it into place.

    An existing bundle (or empty folder) at ``path`` is replaced; any other file or folder, and any folder
    that is or holds one of ``inputs`` (the checkpoint it came from), is refused.
    """
    problem = _mismatch(metadata, model)
    if problem:
        raise ValueError(f"save_bundle: {problem}; build the metadata with BundleMetadata.from_model(model)")
    try:
        root = check_output(path, kind="bundle", recognise=is_bundle, inputs=inputs, flag="a new --output")
    except OutputRefused as exc:
        raise BundleError(str(exc)) from None
    root.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format_version": FORMAT_VERSION,
        "model": model.config.to_dict(),
        "metadata": {**metadata.to_dict(), "dtype": dtype_name(model.dtype)},
    }
    members = getattr(model, "members", None)
    if members is not None:
        doc["ensemble_members"] = len(members)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        (tmp / CONFIG_FILE).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        model.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        default_modes(tmp)  # mkdtemp and safetensors make private entries; readable like other outputs
        if root.exists():
            old = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(root, old)
            os.replace(tmp, root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


# ------------------------------------------------------------------------------------------------ load


def read_bundle_config(path: str | Path) -> tuple[ValueModelConfig, BundleMetadata]:
    """Parse and validate ``config.json`` only (cheap: no weights, no tokenizer)."""
    config, metadata, _ = _read_config(_bundle_dir(path))
    return config, metadata


def ensemble_members(path: str | Path) -> int:
    """How many models the bundle holds (1 unless it is an ensemble)."""
    return _read_config(_bundle_dir(path))[2]


def _read_config(root: Path) -> tuple[ValueModelConfig, BundleMetadata, int]:
    file = root / CONFIG_FILE
    if not file.is_file():
        raise BundleError(
            f"{file}: missing; a bundle needs {CONFIG_FILE}, {WEIGHTS_FILE} and {TOKENIZER_DIR}/"
        )
    try:
        doc = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(
            f"{file}: not valid JSON ({exc}); the file is damaged, re-export the bundle"
        ) from exc
    if not isinstance(doc, dict):
        raise BundleError(f"{file}: expected a JSON object, got {type(doc).__name__}")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{file}: unknown format_version {version!r}; this ove_ros reads format_version {FORMAT_VERSION} "
            "(re-export the bundle with this version's convert tool)"
        )
    for section in ("model", "metadata"):
        if not isinstance(doc.get(section), dict):
            raise BundleError(f"{file}: missing or non-object {section!r} section")
    try:
        config = ValueModelConfig.from_dict(doc["model"])
    except (TypeError, ValueError, KeyError) as exc:
        raise BundleError(f"{file}: invalid 'model' section: {exc}") from exc
    try:
        metadata = BundleMetadata.from_dict(doc["metadata"])
    except (TypeError, ValueError, KeyError) as exc:
        raise BundleError(f"{file}: invalid 'metadata' section: {exc}") from exc
    if metadata.camera_names != config.camera_names:
        raise BundleError(
            f"{file}: metadata camera_names {metadata.camera_names} differ from model camera_names "
            f"{config.camera_names}"
        )
    if len(metadata.joint_names) != config.state_dim:
        raise BundleError(
            f"{file}: metadata lists {len(metadata.joint_names)} joint_names but the model has "
            f"state_dim={config.state_dim}"
        )
    members = doc.get("ensemble_members", 1)
    if isinstance(members, bool) or not isinstance(members, int) or members < 1 or members == 1 and \
            "ensemble_members" in doc:
        raise BundleError(f"{file}: ensemble_members must be an integer >= 2 (absent for one model), got "
                          f"{members!r}; the file is damaged, re-export the bundle")
    return config, metadata, members


def _bundle_dir(path: str | Path) -> Path:
    root = Path(path)
    if not root.exists():
        raise BundleError(
            f"bundle directory {root} does not exist; pass a bundle directory written by "
            "`python -m ove_ros.training.convert`"
        )
    if not root.is_dir():
        raise BundleError(
            f"{root} is not a directory; a bundle is a directory ({CONFIG_FILE}, {WEIGHTS_FILE}, ...)"
        )
    return root


def _read_weights(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise BundleError(f"{file}: missing; re-export the bundle")
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise BundleError(
            f"{file}: corrupt or truncated safetensors file ({exc}); copy the bundle again or re-export it"
        ) from exc


def _check_tensors(file: Path, expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]) -> None:
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [
        f"{k}: file {tuple(got[k].shape)} vs config {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(got))
        if tuple(got[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)})")
    if unexpected:
        problems.append(
            f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''} ({len(unexpected)})"
        )
    if shapes:
        problems.append(f"mis-shaped tensors {shapes[:5]}{' ...' if len(shapes) > 5 else ''}")
    if problems:
        raise BundleError(
            f"{file}: weights do not match {CONFIG_FILE}: {'; '.join(problems)}; the files come from "
            "different models, re-export the bundle"
        )


@dataclass
class BundleContents:
    """A bundle's validated pieces, before any model exists."""

    root: Path
    config: ValueModelConfig
    metadata: BundleMetadata
    tokenizer: Any
    tensors: dict[str, torch.Tensor]
    dtype: torch.dtype | None  # the dtype asked for at load time (None: keep the stored one)
    members: int = 1  # models in the bundle (>= 2: an ensemble, weights under members.<i>.)

    def load_into(self, model: Any) -> None:
        """Check the weights against ``model`` (built from :attr:`config`), load them and the joint names."""
        _check_tensors(self.root / WEIGHTS_FILE, model.state_dict(), self.tensors)
        model.load_state_dict(self.tensors, strict=True, assign=True)
        model.joint_names = list(self.metadata.joint_names)
        problem = _mismatch(self.metadata, model)
        if problem:
            raise BundleError(f"{self.root / CONFIG_FILE}: {problem}")


def read_bundle(path: str | Path, dtype: torch.dtype | str | None = None) -> BundleContents:
    """Read and validate config, metadata, tokenizer and weights (for :func:`ove_ros.model.load_bundle`)."""
    root = _bundle_dir(path)
    target_dtype = parse_dtype(dtype)
    config, metadata, members = _read_config(root)
    tok_dir = root / TOKENIZER_DIR
    if not tok_dir.is_dir():
        raise BundleError(f"{tok_dir}: missing tokenizer directory; re-export the bundle")
    try:
        tokenizer = load_tokenizer(tok_dir)
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise BundleError(f"{tok_dir}: cannot load the tokenizer ({exc})") from exc
    if len(tokenizer) > config.vocab_size:
        raise BundleError(
            f"{tok_dir}: tokenizer has {len(tokenizer)} tokens but {CONFIG_FILE} says vocab_size="
            f"{config.vocab_size}; tokenizer and weights come from different models"
        )
    tensors = _read_weights(root / WEIGHTS_FILE)
    return BundleContents(root, config, metadata, tokenizer, tensors, target_dtype, members)
