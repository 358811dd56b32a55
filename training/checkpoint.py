# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training checkpoints: weights files a model loads from directly, plus the state a run resumes from.

Layout under the run directory ``<output_root>/<project>/<run_name>/``::

    checkpoint_<step>.safetensors    weights (fp32); the header holds step, model config, dataset metadata and
                                     run config as JSON, so the file alone rebuilds the model
    checkpoint_<step>_state/         what resuming needs beyond the weights, none of it executable:
        ema.safetensors              EMA weights at that step (absent when EMA is off)
        training_state.safetensors   optimizer moments and RNG tensors
        training_state.json          everything else (step, scheduler, EMA bookkeeping, RNG, data position),
                                     tensors by reference into the file above
    checkpoint_ema.safetensors       EMA weights of the newest checkpoint: the file to deploy or evaluate
    tokenizer/                       the tokenizer the model was trained with

The state directory is written first (in a temporary sibling, renamed into place), then the weights file
(atomically), so a ``checkpoint_<step>.safetensors`` exists only once its checkpoint is complete. Files
cut short afterwards (a copy, a full disk) are named as incomplete when read, and resuming falls back to the
newest intact checkpoint.

Older runs used ``checkpoints/step_<NNNNNNNNN>/`` directories (``model.safetensors``, ``ema.safetensors``,
``checkpoint.json``, a pickled ``training_state.pt``) and a ``checkpoints/last`` pointer; they are still read.
Their pickled state can run code while it loads, so resuming one needs
``training.trust_pickled_checkpoint=true``; their weights load without it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from ove_ros.checkpoint_file import (
    META_KEY,
    TOKENIZER_DIR,
    WEIGHTS_KIND_KEY,
    IncompleteFileError,
    checkpoint_meta,
    read_tensors,
    safetensors_header,
)
from ove_ros.file_modes import default_mode, default_modes

logger = logging.getLogger(__name__)

EMA_LATEST = "checkpoint_ema.safetensors"
STATE_EMA_FILE = "ema.safetensors"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
_FILE = re.compile(r"^checkpoint_(\d+)\.safetensors$")

# The layout of older runs (read only).
LEGACY_DIR = "checkpoints"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "training_state.pt"
META_FILE = "checkpoint.json"
LAST_POINTER = "last"
_PREFIX = "step_"

__all__ = ["IncompleteFileError", "TOKENIZER_DIR"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked, with what to do instead."""


class UntrustedCheckpointError(CheckpointError):
    """An older checkpoint whose pickled training state would have to run code to load."""


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


def save_state_dict(
    state: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None
) -> None:
    """safetensors needs contiguous, unshared CPU tensors: copy them (tied weights become two copies)."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file; a file cut short raises IncompleteFileError naming it."""
    return read_tensors(path)


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


# ------------------------------------------------------------------------- training state without pickle

_TAGS = ("__tensor__", "__ndarray__", "__tuple__", "__items__")


def encode_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Plain JSON for a training state: tensors go to ``tensors`` (stored as safetensors) by reference;
    tuples, numpy arrays and dicts with non-string keys (optimizer state) are tagged so they come back
    alike."""
    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = obj.detach().to("cpu").contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(x, tensors) for x in obj]}
    if isinstance(obj, list):
        return [encode_state(x, tensors) for x in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: encode_state(v, tensors) for k, v in obj.items()}
        return {"__items__": [[encode_state(k, tensors), encode_state(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"a training state cannot hold a {type(obj).__name__}; store plain values and tensors")


def decode_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_state`; only the four tags above are understood, nothing else is built."""
    if isinstance(obj, list):
        return [decode_state(x, tensors) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__ndarray__" in obj:
        return np.asarray(obj["__ndarray__"], dtype=np.dtype(str(obj["dtype"]))).reshape(obj["shape"])
    if "__tuple__" in obj:
        return tuple(decode_state(x, tensors) for x in obj["__tuple__"])
    if "__items__" in obj:
        return {decode_state(k, tensors): decode_state(v, tensors) for k, v in obj["__items__"]}
    return {k: decode_state(v, tensors) for k, v in obj.items()}


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


def checkpoint_file(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / f"checkpoint_{int(step)}.safetensors"


def state_dir(weights_file: Path) -> Path:
    """``checkpoint_<step>_state/`` beside ``checkpoint_<step>.safetensors``."""
    weights_file = Path(weights_file)
    return weights_file.with_name(f"{weights_file.stem}_state")


def checkpoints_dir(run_dir: Path) -> Path:
    """Where older runs kept their ``step_<N>`` directories."""
    return Path(run_dir) / LEGACY_DIR


def is_legacy_checkpoint(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / META_FILE).is_file()


def checkpoint_step(path: Path) -> int:
    """The step of a checkpoint file or older checkpoint directory (from its name, else its metadata)."""
    path = Path(path)
    m = _FILE.match(path.name)
    if m:
        return int(m.group(1))
    if path.is_dir() and path.name.startswith(_PREFIX) and path.name[len(_PREFIX) :].isdigit():
        return int(path.name[len(_PREFIX) :])
    return int(read_meta(path)["step"])


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run, oldest first: ``checkpoint_<step>.safetensors`` files and older step
    directories."""
    run_dir = Path(run_dir)
    found: list[tuple[int, Path]] = []
    if run_dir.is_dir():
        for p in run_dir.iterdir():
            m = _FILE.match(p.name)
            if m and p.is_file():
                found.append((int(m.group(1)), p))
    legacy = checkpoints_dir(run_dir)
    if legacy.is_dir():
        for p in legacy.iterdir():
            if p.name.startswith(_PREFIX) and p.name[len(_PREFIX) :].isdigit() and is_legacy_checkpoint(p):
                found.append((int(p.name[len(_PREFIX) :]), p))
    return [p for _, p in sorted(found, key=lambda sp: sp[0])]


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint of a run (None when it has none)."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def _save_tokenizer(run_dir: Path, tokenizer: Any) -> None:
    """The run's tokenizer, once (it does not change during a run), moved into place when complete."""
    final = run_dir / TOKENIZER_DIR
    if final.is_dir():
        return
    tmp = Path(tempfile.mkdtemp(prefix=f".{TOKENIZER_DIR}.", suffix=".tmp", dir=run_dir))
    try:
        tokenizer.save_pretrained(str(tmp))
        default_modes(tmp)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish(src: Path, dst: Path) -> None:
    """``dst`` becomes a copy of ``src`` in one rename (a hard link where the file system has them)."""
    fd, name = tempfile.mkstemp(prefix=f".{dst.stem}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
            default_mode(tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_checkpoint(path: Path) -> None:
    """Delete a checkpoint: its weights file first (so a half-deleted one is never listed), then its state."""
    path = Path(path)
    if path.is_file():
        path.unlink(missing_ok=True)
        shutil.rmtree(state_dir(path), ignore_errors=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(run_dir: Path, payload: CheckpointPayload, keep_last: int = 3) -> Path:
    """Write ``checkpoint_<step>.safetensors`` and its state; refresh ``checkpoint_ema.safetensors``; keep the
    newest ``keep_last`` checkpoints. Returns the weights file."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    step = int(payload.step)
    final = checkpoint_file(run_dir, step)
    meta = dict(payload.meta)
    meta["step"] = step
    header = {META_KEY: json.dumps(meta, sort_keys=True, default=float)}
    state_final = state_dir(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{state_final.name}.", suffix=".tmp", dir=run_dir))
    try:
        tensors: dict[str, torch.Tensor] = {}
        encoded = encode_state(payload.training_state, tensors)
        save_file(tensors, str(tmp / STATE_TENSORS), metadata={"format": "pt"})
        (tmp / STATE_JSON).write_text(json.dumps({"format": 1, "step": step, "state": encoded}) + "\n")
        if payload.ema_state is not None:
            save_state_dict(payload.ema_state, tmp / STATE_EMA_FILE, {**header, WEIGHTS_KIND_KEY: "ema"})
        default_modes(tmp)  # the folder and its files (mkdtemp and safetensors make them private)
        final.unlink(missing_ok=True)  # an older checkpoint of this step is replaced as a whole
        replace_dir(tmp, state_final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if payload.tokenizer is not None:
        _save_tokenizer(run_dir, payload.tokenizer)
    atomic_save_file(
        final,
        lambda p: save_state_dict(payload.model_state, p, {**header, WEIGHTS_KIND_KEY: "raw"}),
        suffix=".safetensors",
    )
    if payload.ema_state is not None:
        _publish(state_final / STATE_EMA_FILE, run_dir / EMA_LATEST)
    else:
        (run_dir / EMA_LATEST).unlink(missing_ok=True)  # never leave another run's EMA as the newest
    if keep_last > 0:
        for old in [p for p in list_checkpoints(run_dir) if p.is_file()][:-keep_last]:
            if old != final:
                remove_checkpoint(old)
    return final


def is_checkpoint(path: Path) -> bool:
    path = Path(path)
    if path.is_file():
        return path.suffix == ".safetensors" and META_KEY in _metadata_or_empty(path)
    return is_legacy_checkpoint(path) and (path / MODEL_FILE).is_file()


def _metadata_or_empty(path: Path) -> dict[str, Any]:
    try:
        return dict(safetensors_header(path).get("__metadata__") or {})
    except (IncompleteFileError, OSError):
        return {}


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file, an older checkpoint directory, the older ``checkpoints/last`` pointer or
    ``checkpoints/`` folder, or a run directory (-> its newest checkpoint)."""
    path = Path(path)
    if path.is_file():
        if path.suffix == ".safetensors":
            checkpoint_meta(path)  # names the file when it is incomplete or not a checkpoint
            return path
        if path.name == LAST_POINTER:
            target = path.parent / path.read_text().strip()
            if is_legacy_checkpoint(target):
                return target
            newest = latest_checkpoint(path.parent.parent if path.parent.name == LEGACY_DIR else path.parent)
            if newest is not None:
                return newest
            raise CheckpointError(f"{path} points at {target.name}, which is not a complete checkpoint")
        raise CheckpointError(
            f"{path} is not a checkpoint: pass a checkpoint_<step>.safetensors or checkpoint_ema.safetensors "
            "file, or a run directory"
        )
    if is_legacy_checkpoint(path):
        return path
    if path.is_dir():
        run_dir = path.parent if path.name == LEGACY_DIR else path
        newest = latest_checkpoint(run_dir)
        if newest is None and (path / EMA_LATEST).is_file():
            newest = path / EMA_LATEST
        if newest is not None:
            return newest
        raise FileNotFoundError(
            f"{path} holds no checkpoint (no checkpoint_<step>.safetensors); pass a checkpoint file or the "
            "directory of a run that saved one"
        )
    raise FileNotFoundError(
        f"checkpoint {path} does not exist; pass a checkpoint_<step>.safetensors / "
        "checkpoint_ema.safetensors file or a run directory (outputs/<project>/<run_name>)"
    )


def read_meta(path: Path) -> dict[str, Any]:
    """The description of a checkpoint: step, config, model_config, dataset, metrics."""
    path = Path(path)
    if path.is_file():
        return checkpoint_meta(path)
    file = path / META_FILE
    try:
        return json.loads(file.read_text())
    except ValueError as exc:
        raise IncompleteFileError(f"{file} is incomplete or damaged (not valid JSON)") from exc


def _run_dir_of(weights_file: Path) -> Path:
    parent = weights_file.parent
    return parent.parent if parent.name.endswith("_state") else parent


def weights_file(path: Path, use_ema: bool = True) -> tuple[Path, bool]:
    """The file holding a checkpoint's weights: its EMA copy when asked for and present. (file, used_ema)."""
    path = Path(path)
    if path.is_file():
        meta = checkpoint_meta(path)
        if meta["weights"] == "ema":
            if use_ema:
                return path, True
            raw = checkpoint_file(_run_dir_of(path), int(meta["step"]))
            if not raw.is_file():
                raise CheckpointError(
                    f"{path} holds EMA weights and the raw weights of step {meta['step']} ({raw}) are gone; "
                    "use the EMA weights or another checkpoint"
                )
            return raw, False
        ema = state_dir(path) / STATE_EMA_FILE
        if use_ema and ema.is_file():
            return ema, True
        return path, False
    if use_ema and (path / EMA_FILE).is_file():
        return path / EMA_FILE, True
    return path / MODEL_FILE, False


def load_weights(path: Path, use_ema: bool = True) -> tuple[dict[str, torch.Tensor], bool]:
    """Model weights of a checkpoint: the EMA copy when asked for and present. Returns (state, used_ema)."""
    file, used_ema = weights_file(path, use_ema)
    return load_state_dict(file), used_ema


def ema_file(path: Path) -> Path:
    """Where a checkpoint keeps the EMA weights it resumes with."""
    path = Path(path)
    return state_dir(path) / STATE_EMA_FILE if path.is_file() else path / EMA_FILE


def resumable(path: Path) -> Path:
    """The raw-weights checkpoint to resume from for ``path`` (``checkpoint_ema.safetensors`` -> its
    step's file)."""
    path = Path(path)
    if path.is_file() and checkpoint_meta(path)["weights"] == "ema":
        step = int(checkpoint_meta(path)["step"])
        raw = checkpoint_file(_run_dir_of(path), step)
        if not raw.is_file():
            raise CheckpointError(
                f"{path} holds EMA weights only, and {raw.name} (step {step}) is not beside it: resume "
                "from a checkpoint_<step>.safetensors, or start a new run from these weights with "
                f"model.init_from={path}"
            )
        return raw
    return path


def verify_checkpoint(path: Path) -> None:
    """Check that every file resuming from ``path`` reads is complete; raise naming the first that is not."""
    path = Path(path)
    if path.is_file():
        meta = checkpoint_meta(path)
        state = state_dir(path)
        if not (state / STATE_JSON).is_file():
            raise CheckpointError(
                f"{path} has no training state ({state.name}/{STATE_JSON} is missing): it holds weights "
                f"only; start a new run from them with model.init_from={path}"
            )
        _read_state_json(state / STATE_JSON)
        safetensors_header(state / STATE_TENSORS)
        if meta.get("ema"):
            safetensors_header(state / STATE_EMA_FILE)
        return
    read_meta(path)
    safetensors_header(path / MODEL_FILE)
    if (path / EMA_FILE).exists():
        safetensors_header(path / EMA_FILE)
    if not (path / STATE_FILE).is_file():
        raise CheckpointError(f"{path} has no {STATE_FILE}: it cannot be resumed")


def _read_state_json(file: Path) -> dict[str, Any]:
    try:
        doc = json.loads(file.read_text())
    except ValueError as exc:
        raise IncompleteFileError(f"{file} is incomplete or damaged (not valid JSON)") from exc
    if not isinstance(doc, dict) or "state" not in doc:
        raise IncompleteFileError(f"{file} is incomplete or damaged (no 'state')")
    return doc


def load_training_state(path: Path, trust_pickle: bool = False) -> dict[str, Any]:
    """Optimizer, scheduler, EMA bookkeeping, RNG and data position of a checkpoint.

    Checkpoint files keep them as JSON + safetensors, which cannot run code. Older checkpoint directories kept
    a pickle (``training_state.pt``); unpickling runs whatever the file says, so it is read only with
    ``trust_pickle`` (``training.trust_pickled_checkpoint=true``).
    """
    path = Path(path)
    if path.is_file():
        state = state_dir(path)
        doc = _read_state_json(state / STATE_JSON)
        return decode_state(doc["state"], read_tensors(state / STATE_TENSORS))
    file = path / STATE_FILE
    if not trust_pickle:
        raise UntrustedCheckpointError(
            f"{file} is a pickle from an older version: loading it can run any code it contains. If you "
            "trust where it comes from, resume with training.trust_pickled_checkpoint=true (the next "
            "checkpoint is written in the safe format); otherwise start a new run from its weights with "
            f"model.init_from={path}"
        )
    logger.warning("reading the pickled training state %s (training.trust_pickled_checkpoint=true)", file)
    return torch.load(file, map_location="cpu", weights_only=False)
