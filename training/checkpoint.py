# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training checkpoints: atomic directories with weights, EMA weights, optimizer state and RNG state.

Layout of ``<run_dir>/checkpoints/step_<NNNNNNNNN>/``::

    model.safetensors      raw weights (fp32)
    ema.safetensors        EMA weights (absent when EMA is off)
    training_state.pt      optimizer, scheduler, EMA bookkeeping, RNG states, data position
    checkpoint.json        step, the run's full config, the model config and the dataset metadata
    tokenizer/             the tokenizer the model was trained with

A checkpoint is assembled in a temporary sibling directory and renamed into place, so a crash never leaves a
half-written checkpoint behind; ``checkpoints/last`` names the newest one.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ove_ros.file_modes import default_mode, default_modes

MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "training_state.pt"
META_FILE = "checkpoint.json"
TOKENIZER_DIR = "tokenizer"
LAST_POINTER = "last"
_PREFIX = "step_"


# --------------------------------------------------------------------------------------------- atomic io


@contextlib.contextmanager
def _replacing(path: Path, prefix: str, suffix: str) -> Iterator[Path]:
    """A temp file beside ``path`` (so the rename is atomic) that replaces it when the block ends, or is
    removed if the block raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        default_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it and rename it over ``path``."""
    path = Path(path)
    with _replacing(path, f".{path.name}.", ".tmp") as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_save_file(path: Path, writer: Callable[[Path], None], suffix: str = "") -> None:
    """Let ``writer`` fill a temp path (keeping ``suffix`` for libraries that look at it), then rename."""
    path = Path(path)
    with _replacing(path, f".{path.stem}.", f".tmp{suffix}") as tmp:
        writer(tmp)


def replace_dir(tmp_dir: Path, final_dir: Path) -> None:
    """Move a fully written directory into place, replacing an older one of the same name."""
    final_dir = Path(final_dir)
    if final_dir.exists():
        trash = final_dir.with_name(f".{final_dir.name}.old-{os.getpid()}")
        os.replace(final_dir, trash)
        os.replace(tmp_dir, final_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(tmp_dir, final_dir)


def save_state_dict(state: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors needs contiguous, unshared CPU tensors: copy them (tied weights become two copies)."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    save_file(tensors, str(path), metadata={"format": "pt"})


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path), device="cpu")


# ------------------------------------------------------------------------------------------------- rng


def rng_state() -> dict[str, Any]:
    """The state of every random number generator a training step may use."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------------------------------ checkpoints


@dataclass
class CheckpointPayload:
    """What the training loop hands to :func:`save_checkpoint`."""

    step: int
    model_state: dict[str, torch.Tensor]
    ema_state: dict[str, torch.Tensor] | None
    training_state: dict[str, Any]
    meta: dict[str, Any]
    tokenizer: Any | None = None


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:09d}"


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    found = [
        p for p in root.iterdir() if p.is_dir() and p.name.startswith(_PREFIX) and (p / META_FILE).is_file()
    ]
    return sorted(found, key=lambda p: int(p.name[len(_PREFIX) :]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint (the ``last`` pointer when valid, else the highest step)."""
    root = checkpoints_dir(run_dir)
    pointer = root / LAST_POINTER
    if pointer.is_file():
        candidate = root / pointer.read_text().strip()
        if (candidate / META_FILE).is_file():
            return candidate
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: Path, payload: CheckpointPayload, keep_last: int = 3) -> Path:
    """Write a checkpoint atomically, update ``last`` and delete all but the newest ``keep_last``."""
    root = checkpoints_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / checkpoint_name(payload.step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=root))
    try:
        save_state_dict(payload.model_state, tmp / MODEL_FILE)
        if payload.ema_state is not None:
            save_state_dict(payload.ema_state, tmp / EMA_FILE)
        torch.save(payload.training_state, tmp / STATE_FILE)
        if payload.tokenizer is not None:
            payload.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        meta = dict(payload.meta)
        meta["step"] = int(payload.step)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        default_modes(tmp)  # the directory and the files in it (safetensors writes them private)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write_text(root / LAST_POINTER, final.name + "\n")
    if keep_last > 0:
        for old in list_checkpoints(run_dir)[:-keep_last]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
    return final


def is_checkpoint(path: Path) -> bool:
    return (Path(path) / META_FILE).is_file() and (Path(path) / MODEL_FILE).is_file()


def resolve_checkpoint(path: Path) -> Path:
    """Accept a checkpoint directory or a run directory (-> its newest checkpoint)."""
    path = Path(path)
    if is_checkpoint(path):
        return path
    latest = latest_checkpoint(path)
    if latest is not None:
        return latest
    raise FileNotFoundError(
        f"{path} is neither a training checkpoint (no {META_FILE} + {MODEL_FILE}) nor a run directory with "
        "checkpoints/"
    )


def read_meta(ckpt_dir: Path) -> dict[str, Any]:
    return json.loads((Path(ckpt_dir) / META_FILE).read_text())


def load_weights(ckpt_dir: Path, use_ema: bool = True) -> tuple[dict[str, torch.Tensor], bool]:
    """Model weights of a checkpoint: the EMA copy when asked for and present. Returns (state, used_ema)."""
    ckpt_dir = Path(ckpt_dir)
    if use_ema and (ckpt_dir / EMA_FILE).is_file():
        return load_state_dict(ckpt_dir / EMA_FILE), True
    return load_state_dict(ckpt_dir / MODEL_FILE), False


def load_training_state(ckpt_dir: Path) -> dict[str, Any]:
    # weights_only=False: the state holds numpy RNG tuples and plain Python objects we wrote ourselves.
    return torch.load(Path(ckpt_dir) / STATE_FILE, map_location="cpu", weights_only=False)
