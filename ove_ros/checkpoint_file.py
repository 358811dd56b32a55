# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Single-file training checkpoints (``checkpoint_<step>.safetensors``, ``checkpoint_ema.safetensors``).

Training writes each weights file with the checkpoint's description (step, model config, joint names, dataset
statistics, run config) as JSON in the safetensors header, so one file is enough to rebuild the model; the
tokenizer lies beside it in ``tokenizer/`` unless the model uses the built-in one. This module reads those
files with the runtime's dependencies only (no training stack), and tells a complete file from one that was
cut short, which safetensors itself reports only as a bare parse error.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch

META_KEY = "ove_ros.checkpoint"
WEIGHTS_KIND_KEY = "ove_ros.weights"  # "raw" or "ema"
TOKENIZER_DIR = "tokenizer"
_MAX_HEADER = 100_000_000  # safetensors' own limit


class IncompleteFileError(ValueError):
    """A weights file that is shorter than its header says, or not a safetensors file at all."""


def safetensors_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, after checking that the file holds every byte it announces."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise IncompleteFileError(
                f"{path} is incomplete ({size} bytes, not even a safetensors header): the write or copy "
                "was cut short; use another checkpoint or copy the file again"
            )
        (n,) = struct.unpack("<Q", head)
        if n > _MAX_HEADER:
            raise IncompleteFileError(f"{path} is not a safetensors file (header length {n} is implausible)")
        raw = fh.read(n)
    if len(raw) < n:
        raise IncompleteFileError(
            f"{path} is incomplete ({size} bytes, its header alone needs {8 + n}): the write or copy was cut "
            "short; use another checkpoint or copy the file again"
        )
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise IncompleteFileError(f"{path} is damaged or not a safetensors file (unreadable header)") from exc
    if not isinstance(header, dict):
        raise IncompleteFileError(f"{path} is damaged or not a safetensors file (header is not a table)")
    end = max(
        (int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)),
        default=0,
    )
    expected = 8 + n + end
    if size < expected:
        raise IncompleteFileError(
            f"{path} is incomplete ({size} of {expected} bytes): the write or copy was cut short (a "
            "killed job, a full disk, an unfinished download); use another checkpoint or copy the file again"
        )
    return header


def read_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor of a complete safetensors file (no code runs while reading: the format has none)."""
    from safetensors.torch import load_file

    safetensors_header(path)
    return load_file(str(path), device=str(device))


def file_metadata(path: str | Path) -> dict[str, str]:
    return dict(safetensors_header(path).get("__metadata__") or {})


def checkpoint_meta(path: str | Path) -> dict[str, Any]:
    """The description training stored in a checkpoint file's header."""
    metadata = file_metadata(path)
    if META_KEY not in metadata:
        raise ValueError(
            f"{path} is a safetensors file without a training checkpoint description; pass a "
            "checkpoint_<step>.safetensors / checkpoint_ema.safetensors written by "
            "`python -m ove_ros.training.train`, or a bundle directory written by "
            "`python -m ove_ros.training.convert`"
        )
    meta = json.loads(metadata[META_KEY])
    meta["weights"] = metadata.get(WEIGHTS_KIND_KEY, "raw")
    return meta


def checkpoint_tokenizer(path: str | Path, vocab_size: int | None) -> Any:
    """The tokenizer saved beside a checkpoint file, or the built-in one for models built with it."""
    from ove_ros.tokenizer import LOCAL_VOCAB_SIZE, build_local_tokenizer, load_tokenizer

    tok_dir = Path(path).parent / TOKENIZER_DIR
    if tok_dir.is_dir():
        return load_tokenizer(tok_dir)
    if vocab_size is None or int(vocab_size) == LOCAL_VOCAB_SIZE:
        return build_local_tokenizer()
    raise FileNotFoundError(
        f"{path} was trained with its own tokenizer (vocabulary {vocab_size}), but {tok_dir} is "
        "missing; copy the run's tokenizer/ folder beside the checkpoint file"
    )
