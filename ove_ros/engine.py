# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Live inference: raw camera frames + joint state + task -> value distribution, as fast as the device allows.

What the ROS node calls once per tick. Compared with ``model(batch)`` it

* resizes uint8 HWC frames with a uint8 kernel on the CPU (into a preallocated pixel buffer), or uploads them
  as uint8 through pinned memory and resizes + normalizes on the GPU (see :func:`resolve_resize`),
* assembles prompt token ids from cached pieces (task prefix, one piece per state bin) instead of running
  the tokenizer each tick; the pieces are verified against the tokenizer and it falls back when they differ,
* runs under ``torch.inference_mode`` with the chosen device/dtype, optional static shapes, torch.compile,
  CUDA graph capture (CUDA only), dynamic int8 weights (CPU only) or FP8 tower matmuls (Hopper/Ada GPUs),
* batches: ``infer_batch`` runs up to ``max_batch`` samples in one forward, padded to the next of a few
  static batch sizes, with one CUDA graph per size (all in one memory pool),
* optionally swaps in fused attention/MLP blocks (:mod:`ove_ros.fused_layers`) and runs the whole tick on the
  device: uint8 frames in, resize + normalize + forward + distribution statistics in one captured graph,
* reports per-stage wall times (preprocess, forward, postprocess) with every result.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ove_ros.bundle import BundleMetadata, parse_dtype
from ove_ros.ensemble import members_of
from ove_ros.fp8 import convert_to_fp8, convert_with_torchao, supports_fp8
from ove_ros.fused_layers import fuse_layers
from ove_ros.model import OpenValueEstimator, load_bundle, preprocess_images
from ove_ros.prompt import (
    PROMPT_SUFFIX,
    StateNormalizer,
    build_prompt,
    clean_task,
    discretize,
    prompt_prefix,
    timed_task,
)

logger = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
ENGINE_DTYPES = ("auto", "float32", "bfloat16", "float16")
QUANTIZE = ("none", "int8", "fp8", "fp8-torchao")
RESIZE = ("auto", "float", "uint8", "opencv")
COMPILE_MODES = ("auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
COMPILE_SCOPES = ("model", "layers")
SCALARS = ("value", "std", "entropy")


@dataclass
class EngineConfig:
    """How the engine runs the model.

    ``static_shapes=None`` turns static shapes on exactly when compile or CUDA graphs are active: the text is
    then padded to ``max_text_tokens`` and a chunk of B samples to the smallest of ``batch_sizes`` >= B, so
    nothing recompiles per tick (each size compiles and captures once, at warm-up). ``batch_sizes=None``
    means the powers of two below ``max_batch`` plus ``max_batch``; more than ``max_batch`` samples run in
    chunks. ``quantize="int8"`` stores Linear weights as int8 (dynamic activation quantization; CPU only,
    faster matmuls on AVX2, small numerical change); ``"fp8"`` runs the towers' matmuls in float8 with
    per-row scales (:mod:`ove_ros.fp8`; CUDA compute capability >= 8.9 and bfloat16), ``"fp8-torchao"`` the
    same through torchao when it is installed. ``fused_layers`` swaps in the fused attention/MLP blocks of
    :mod:`ove_ros.fused_layers`. ``device_preprocess`` uploads the uint8 frames and runs resize,
    normalization, the forward and the distribution statistics as one function on the engine's device (one
    CUDA graph per batch size and camera resolution; only the forward is compiled, so a new resolution
    captures a graph but does not recompile); it uses training's float resize. ``num_threads > 0`` sets
    torch's CPU thread count. ``resize`` picks the frame resize (see :func:`resolve_resize`).
    ``compile_mode`` is torch.compile's mode (see :func:`resolve_compile_mode` for ``"auto"``).
    ``compile_scope="layers"`` compiles each transformer layer instead of the whole forward: identical layers
    share one compiled artifact, so building takes seconds instead of a minute, at the price of no fusion
    across layer boundaries (inside a CUDA graph the eager glue between layers costs no launch overhead).
    """

    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    compile_mode: str = "auto"
    cuda_graphs: bool = False
    max_batch: int = 1
    warmup_iters: int = 2
    quantize: str = "none"
    num_threads: int = 0
    static_shapes: bool | None = None
    task_cache_size: int = 32
    resize: str = "auto"
    batch_sizes: tuple[int, ...] | None = None
    fused_layers: bool = False
    device_preprocess: bool = False
    compile_scope: str = "model"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"EngineConfig.device must be one of {DEVICES}, got {self.device!r}")
        if self.dtype not in ENGINE_DTYPES:
            raise ValueError(f"EngineConfig.dtype must be one of {ENGINE_DTYPES}, got {self.dtype!r}")
        if self.quantize not in QUANTIZE:
            raise ValueError(f"EngineConfig.quantize must be one of {QUANTIZE}, got {self.quantize!r}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(
                f"EngineConfig.compile_mode must be one of {COMPILE_MODES}, got {self.compile_mode!r}"
            )
        if self.compile_scope not in COMPILE_SCOPES:
            raise ValueError(
                f"EngineConfig.compile_scope must be one of {COMPILE_SCOPES}, got {self.compile_scope!r}"
            )
        if self.resize not in RESIZE:
            raise ValueError(f"EngineConfig.resize must be one of {RESIZE}, got {self.resize!r}")
        if self.max_batch < 1 or self.warmup_iters < 0 or self.num_threads < 0 or self.task_cache_size < 1:
            raise ValueError(
                "EngineConfig: max_batch and task_cache_size must be >= 1, warmup_iters and num_threads >= 0"
            )
        if self.batch_sizes is not None:
            self.batch_sizes = tuple(sorted({int(b) for b in self.batch_sizes}))
            if not self.batch_sizes or self.batch_sizes[0] < 1 or self.batch_sizes[-1] != self.max_batch:
                raise ValueError(
                    f"EngineConfig.batch_sizes={self.batch_sizes}: sizes must be >= 1 and the largest must "
                    f"equal max_batch={self.max_batch} (or leave batch_sizes=None for powers of two)"
                )
        if self.device_preprocess and self.resize not in ("auto", "float"):
            raise ValueError(
                f"EngineConfig.device_preprocess resizes on the device with training's float resize; it "
                f"cannot use resize={self.resize!r} (set resize='auto' or 'float', or turn it off)"
            )

    def padded_sizes(self) -> tuple[int, ...]:
        """Static batch sizes: ``batch_sizes``, else the powers of two below ``max_batch``, and it."""
        if self.batch_sizes is not None:
            return self.batch_sizes
        sizes = {self.max_batch}
        b = 1
        while b < self.max_batch:
            sizes.add(b)
            b *= 2
        return tuple(sorted(sizes))


@dataclass(frozen=True)
class ValueOutput:
    """One tick's result. ``latency_s`` spans input checks to results on the host.

    The stages split it: ``preprocess_s`` (checks, prompt tokens, pixels), ``forward_s`` (the model),
    ``postprocess_s`` (distribution statistics back on the host). On CUDA the engine synchronizes at the stage
    boundaries so each stage owns its GPU time; with ``device_preprocess`` the frames' upload and resize run
    on the device inside ``forward_s`` and ``preprocess_s`` is host work only. From ``infer_batch`` all of
    them cover the chunks up to and including this row's.
    """

    probs: np.ndarray
    value: float
    std: float
    entropy: float
    latency_s: float
    preprocess_s: float = 0.0
    forward_s: float = 0.0
    postprocess_s: float = 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("EngineConfig.device='cuda' but CUDA is not available here; use 'auto' or 'cpu'")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        # bf16 halves memory traffic on GPUs; most CPUs lack fast bf16 matmuls, so fp32 there.
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtype = parse_dtype(name)
    assert dtype is not None
    return dtype


def resolve_resize(name: str, device: torch.device) -> str:
    """How camera frames are resized to the model's square size.

    Training resizes float [0, 1] frames (recorded resolution) with :func:`ove_ros.model.preprocess_images`:
    bilinear with antialias. ``"float"`` runs exactly that on the engine's device (the CUDA default; slow on
    a CPU). ``"uint8"`` runs the same filter in torch's vectorized uint8 kernel on the host, much faster on a
    CPU, and differs from training only by rounding the resized pixels to uint8 (at most 1/255). That kernel
    exists only in torch's AVX2 build; elsewhere (ARM, AVX512 dispatch) the generic uint8 kernel is as slow
    as float, so ``"auto"`` falls back to ``"opencv"``: INTER_AREA when shrinking, INTER_LINEAR otherwise.
    INTER_AREA is a box filter, not the training filter: its output differs by a few levels of 255 on
    camera-like images, more on fine texture.
    """
    if name != "auto":
        return name
    if device.type == "cuda":
        return "float"
    return "uint8" if torch.backends.cpu.get_cpu_capability() == "AVX2" else "opencv"


def resolve_compile_mode(name: str, device: torch.device, cuda_graphs: bool) -> str:
    """torch.compile's mode for ``"auto"``.

    On CUDA a batch-1 tick is bound by kernel launches, so the compiled forward belongs inside a CUDA graph.
    On the GPUs measured (benchmarks/results/inference_cuda.json), ``"default"`` kernels in the engine's own
    graph were faster than ``"reduce-overhead"`` (torch's graph trees), and both faster than the uncompiled
    graph. So with ``cuda_graphs`` the engine captures and compile only fuses kernels; without it compile
    captures its own. CPUs have no graphs: ``"default"``.
    """
    if name != "auto":
        return name
    if device.type != "cuda":
        return "default"
    return "default" if cuda_graphs else "reduce-overhead"


class PromptTokenCache:
    """Prompt token ids from cached pieces: ``specials + prefix(task) + piece(b1) ... + piece(;) + specials``.

    The pieces are only used when they reproduce the tokenizer exactly: checked for all bin values at
    construction and for each new task on first use; otherwise that prompt goes through the tokenizer.
    """

    def __init__(self, tokenizer: Any, state_bins: int = 256, max_tasks: int = 32) -> None:
        self.tokenizer = tokenizer
        self.max_tasks = max_tasks
        self._prefixes: OrderedDict[str, list[int] | None] = OrderedDict()
        self.bin_ids = [self._plain(f" {b}") for b in range(state_bins)]
        self.suffix_ids = self._plain(PROMPT_SUFFIX)
        self.head, self.tail = self._specials()
        self.exact = self.head is not None and self._verify_bins("pick up the red block", state_bins)
        if not self.exact:
            logger.warning("prompt pieces do not reproduce this tokenizer; tokenizing every prompt instead")

    def _plain(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _full(self, texts: list[str]) -> list[list[int]]:
        return [list(x) for x in self.tokenizer(texts)["input_ids"]]

    def _specials(self) -> tuple[list[int] | None, list[int] | None]:
        text = build_prompt("x", [0])
        full, plain = self._full([text])[0], self._plain(text)
        for i in range(len(full) - len(plain) + 1):
            if full[i : i + len(plain)] == plain:
                return full[:i], full[i + len(plain) :]
        return None, None

    def _assemble(self, prefix: list[int], bins: Sequence[int]) -> list[int]:
        ids = list(self.head or []) + prefix
        for b in bins:
            ids += self.bin_ids[int(b)]
        return ids + self.suffix_ids + list(self.tail or [])

    def _verify_bins(self, task: str, state_bins: int) -> bool:
        prefix = self._plain(prompt_prefix(task))
        rows = [[b] for b in range(state_bins)] + [list(range(state_bins))]
        want = self._full([build_prompt(task, r) for r in rows])
        return all(self._assemble(prefix, r) == w for r, w in zip(rows, want, strict=True))

    def _prefix(self, task: str, bins: Sequence[int]) -> list[int] | None:
        if task in self._prefixes:
            self._prefixes.move_to_end(task)
            return self._prefixes[task]
        prefix: list[int] | None = self._plain(prompt_prefix(task))
        if self._assemble(prefix, bins) != self._full([build_prompt(task, bins)])[0]:
            logger.warning("task %r does not tokenize piecewise; tokenizing its prompts every tick", task)
            prefix = None
        self._prefixes[task] = prefix
        if len(self._prefixes) > self.max_tasks:
            self._prefixes.popitem(last=False)
        return prefix

    def ids(self, task: str, bins: Sequence[int]) -> list[int]:
        """Token ids of ``build_prompt(task, bins)`` exactly as the tokenizer would produce them."""
        task = clean_task(task)
        prefix = self._prefix(task, bins) if self.exact else None
        if prefix is None:
            return self._full([build_prompt(task, bins)])[0]
        return self._assemble(prefix, bins)


def _quantize_int8(model: nn.Module) -> nn.Module:
    """Linear weights -> int8 per output channel, activations quantized on the fly (fbgemm kernels)."""
    with warnings.catch_warnings():
        # torch.ao's eager quantization is deprecated in favour of torchao, which this project does not ship.
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, inplace=True)


def _compile_layers(model: nn.Module, mode: str, batch_sizes: int) -> int:
    """``torch.compile`` every SigLIP encoder layer and Gemma-3 decoder layer of ``model`` in place.

    Layers of one class share compiled code; each batch size (and Gemma's two layer kinds) is one more
    specialization, so dynamo's per-function limit is raised to fit them.
    """
    from transformers.models.gemma3.modeling_gemma3 import Gemma3DecoderLayer
    from transformers.models.siglip.modeling_siglip import SiglipEncoderLayer

    layers = [m for m in model.modules() if isinstance(m, (SiglipEncoderLayer, Gemma3DecoderLayer))]
    cfg = torch._dynamo.config
    name = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
    setattr(cfg, name, max(getattr(cfg, name), 4 * batch_sizes))
    for layer in layers:
        layer.compile(mode=mode, dynamic=False)
    return len(layers)


class InferenceEngine:
    """Runs an :class:`OpenValueEstimator` on live inputs. Takes ownership of the model (moves/casts it)."""

    def __init__(
        self, model: OpenValueEstimator, metadata: BundleMetadata, config: EngineConfig | None = None
    ) -> None:
        self.config = config = config or EngineConfig()
        self.metadata = metadata
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(config.dtype, self.device)
        mcfg = model.config
        if metadata.camera_names != mcfg.camera_names or len(metadata.joint_names) != mcfg.state_dim:
            raise ValueError(
                f"metadata (cameras {metadata.camera_names}, {len(metadata.joint_names)} joints) does not "
                f"match the model (cameras {mcfg.camera_names}, state_dim {mcfg.state_dim})"
            )
        if self.device.type == "cpu" and config.num_threads > 0:
            torch.set_num_threads(config.num_threads)
        if self.device.type == "cpu" and self.dtype != torch.float32:
            logger.info("running %s on CPU; fp32 is faster on CPUs without bf16/fp16 units", self.dtype)
        self.model = model.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.camera_names = list(mcfg.camera_names)
        self.joint_names = list(metadata.joint_names)
        self.normalizer = StateNormalizer(
            model.state_low.detach().cpu().double().numpy(),
            model.state_high.detach().cpu().double().numpy(),
            self.joint_names,
        )
        self.tokens = PromptTokenCache(model.tokenizer, mcfg.state_bins, config.task_cache_size)
        self.pad_id = int(model.tokenizer.pad_token_id)

        self.fused: dict[str, int] = {}
        if config.fused_layers:
            self.fused = fuse_layers(self.model)
            if not self.fused:
                logger.info("fused_layers: the model has no SigLIP / Gemma-3 blocks to fuse")
        self.quantization = self._quantize(config.quantize)
        self.quantized = self.quantization == "int8"
        self._compile_mode: str | None = None  # set when compiled
        self._forward = self.model.forward_tensors
        if config.compile:
            if self.quantized:
                logger.info("torch.compile is skipped for the int8 dynamic-quantized model")
            else:
                mode = self._compile_mode = resolve_compile_mode(config.compile_mode, self.device,
                                                                 config.cuda_graphs)
                if config.compile_scope == "layers":
                    n = _compile_layers(self.model, mode, len(config.padded_sizes()))
                    logger.info("compiled %d transformer layers one by one (mode %r)", n, mode)
                else:
                    self._forward = torch.compile(self.model.forward_tensors, mode=mode, dynamic=False)
        self.use_graphs = False
        if config.cuda_graphs:
            if self.device.type != "cuda":
                logger.info("CUDA graphs need a CUDA device; disabled on %s", self.device.type)
            elif self.compiled and self._compile_mode in ("reduce-overhead", "max-autotune"):
                logger.info("torch.compile mode %r already captures CUDA graphs", self._compile_mode)
            else:
                self.use_graphs = True
        auto_static = self.compiled or self.use_graphs
        self.static = auto_static if config.static_shapes is None else config.static_shapes
        if self.use_graphs and not self.static:
            raise ValueError("cuda_graphs=True needs static_shapes (leave static_shapes=None or set True)")
        self.batch_sizes = config.padded_sizes() if self.static else ()
        # One graph per input shape (batch size; camera resolution when frames go in raw), one memory pool.
        self._graphs: dict[tuple[tuple[int, ...], ...], Any] = {}
        self._pool: Any = None
        self.warmed_up = False

        self.device_preprocess = config.device_preprocess
        self._tick = self._device_tick if self.device_preprocess else self._forward
        self._eager_tick = self._device_tick if self.device_preprocess else self.model.forward_tensors
        self.resize = "float" if self.device_preprocess else resolve_resize(config.resize, self.device)
        if self.resize == "opencv":
            import cv2  # noqa: F401 -- fail at construction, not at the first tick
        size = mcfg.image_size
        mean = torch.tensor(mcfg.image_mean, dtype=torch.float32)
        std = torch.tensor(mcfg.image_std, dtype=torch.float32)
        # (x / 255 - mean) / std as one multiply-add on the uint8 values.
        self._scale = (1.0 / (255.0 * std)).view(3, 1, 1).to(self.device)
        self._shift = (-mean / std).view(3, 1, 1).to(self.device)
        self._mean, self._std = mean.view(1, 3, 1, 1).to(self.device), std.view(1, 3, 1, 1).to(self.device)
        # Host-resized pixels are normalized into one static buffer (max_batch rows), no per-tick allocation.
        self._buffer = None if self.resize == "float" else torch.empty(
            config.max_batch, len(self.camera_names), 3, size, size, dtype=torch.float32, device=self.device
        )
        self._pinned: dict[tuple[int, ...], tuple[torch.Tensor, Any]] = {}
        self._staging: dict[tuple[Any, ...], list[torch.Tensor]] = {}

    def _quantize(self, mode: str) -> str:
        """Apply ``EngineConfig.quantize`` where the device supports it; returns the mode in effect."""
        if mode == "int8":
            if self.device.type != "cpu" or self.dtype != torch.float32:
                logger.info("quantize='int8' needs CPU + float32; running without it on %s/%s",
                            self.device.type, self.dtype)
                return "none"
            _quantize_int8(self.model)
            return "int8"
        if mode in ("fp8", "fp8-torchao"):
            if not supports_fp8(self.device) or self.dtype != torch.bfloat16:
                logger.info("quantize=%r needs a CUDA device of compute capability >= 8.9 and bfloat16; "
                            "running without it on %s/%s", mode, self.device, self.dtype)
                return "none"
            towers = [tower for m in members_of(self.model) for tower in (m.vision, m.text)]
            n = convert_with_torchao(towers) if mode == "fp8-torchao" else convert_to_fp8(towers)
            logger.info("quantize=%r: %d Linear layers of the towers run in float8", mode, n)
        return mode

    @property
    def compiled(self) -> bool:
        return self._compile_mode is not None

    @classmethod
    def from_bundle(cls, path: str | Path, config: EngineConfig | None = None) -> InferenceEngine:
        model, metadata = load_bundle(path, device="cpu")
        return cls(model, metadata, config)

    def describe(self) -> dict[str, Any]:
        """Effective settings (for logs and diagnostics)."""
        return {
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "compiled": self.compiled,
            "compile_mode": self._compile_mode,
            "compile_scope": self.config.compile_scope if self.compiled else None,
            "cuda_graphs": self.use_graphs,
            "int8": self.quantized,
            "quantize": self.quantization,
            "fused_layers": self.fused,
            "device_preprocess": self.device_preprocess,
            "static_shapes": self.static,
            "batch_sizes": list(self.batch_sizes),
            "piecewise_tokens": self.tokens.exact,
            "resize": self.resize,
            "threads": torch.get_num_threads(),
        }

    # ------------------------------------------------------------------------------------ validation

    def _check_frame(self, image: Any, cam: str) -> np.ndarray:
        if not isinstance(image, np.ndarray):
            raise ValueError(f"camera {cam!r}: expected a numpy array, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise ValueError(f"camera {cam!r}: dtype {image.dtype}; pass uint8 RGB frames (HxWx3, 0..255)")
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
            raise ValueError(
                f"camera {cam!r}: shape {image.shape}; pass HxWx3 RGB (convert mono/RGBA/BGR frames first)"
            )
        return image

    def _check_frames(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(images) != len(self.camera_names):
            raise ValueError(
                f"got {len(images)} images but the bundle expects {len(self.camera_names)} cameras in this "
                f"order: {self.camera_names}"
            )
        return [self._check_frame(img, cam) for img, cam in zip(images, self.camera_names, strict=True)]

    def _check_state(self, state: Any) -> np.ndarray:
        x = np.asarray(state, dtype=np.float64)
        if x.shape != (len(self.joint_names),):
            raise ValueError(
                f"state has shape {x.shape} but the bundle expects {len(self.joint_names)} joints in this "
                f"order: {self.joint_names}"
            )
        return x

    # -------------------------------------------------------------------------------------- building

    def _token_rows(
        self, tasks: Sequence[str], states: np.ndarray, frame_index: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded prompt ids and attention mask ``[B, T]`` (int64; T = max_text_tokens when static)."""
        bins = discretize(self.normalizer.normalize(states), self.model.config.state_bins)
        times = self.model.time_bins(frame_index, len(tasks))  # the time bin rides in the task text
        rows = [self.tokens.ids(timed_task(t, tb), b) for t, b, tb in zip(tasks, bins, times, strict=True)]
        limit = self.model.config.max_text_tokens
        longest = max(len(r) for r in rows)
        if longest > limit:
            raise ValueError(
                f"prompt has {longest} tokens > max_text_tokens={limit}; shorten the task text or rebuild "
                "the model with a larger ValueModelConfig.max_text_tokens"
            )
        length = limit if self.static else longest
        ids = np.full((len(rows), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), length), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return ids, mask

    def _text(
        self, tasks: Sequence[str], states: np.ndarray, frame_index: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self._token_rows(tasks, states, frame_index)
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)

    def _pixels(self, frames: Sequence[np.ndarray], rows: int) -> torch.Tensor:
        """``rows * N`` HxWx3 uint8 frames (row-major, cameras in order) -> ``[rows, N, 3, S, S]``."""
        n, size = len(self.camera_names), self.model.config.image_size
        if self.resize == "float":
            return self._pixels_float(frames).view(rows, n, 3, size, size)
        out = self._buffer[:rows]
        flat = out.view(rows * n, 3, size, size)
        for i, frame in enumerate(frames):
            small = self._resize_host(frame)
            if self.device.type != "cpu":
                small = small.to(self.device)
            torch.mul(small, self._scale, out=flat[i])
        flat.add_(self._shift)
        return out if self.dtype == torch.float32 else out.to(self.dtype)

    def _resize_host(self, frame: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 -> ``[3, S, S]`` uint8 on the host (``"uint8"`` or ``"opencv"``)."""
        size = self.model.config.image_size
        frame = np.ascontiguousarray(frame)
        h, w = frame.shape[:2]
        if (h, w) == (size, size):
            return torch.from_numpy(frame).permute(2, 0, 1)
        if self.resize == "opencv":
            import cv2

            interpolation = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
            small = cv2.resize(frame, (size, size), interpolation=interpolation)
            return torch.from_numpy(small).permute(2, 0, 1)
        # A permuted HWC array is a channels-last NCHW tensor, the layout the vectorized uint8 kernel reads.
        x = torch.from_numpy(frame).permute(2, 0, 1)[None]
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]

    def _pixels_float(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Training's own preprocessing on the engine's device -> ``[len(frames), 3, S, S]``."""
        if any(f.shape != frames[0].shape for f in frames):  # cameras of different sizes
            return torch.cat([self._pixels_float([f]) for f in frames])
        cfg = self.model.config
        x = self._upload(frames).permute(0, 3, 1, 2)
        return preprocess_images(x, cfg.image_size, cfg.image_mean, cfg.image_std, self.dtype)

    def _upload(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Same-shape uint8 frames -> ``[K, H, W, 3]`` uint8 on the device.

        On CUDA the frames are stacked straight into a reused pinned buffer (one per shape) and copied without
        blocking the host; a buffer is rewritten only after its previous copy has finished.
        """
        if self.device.type != "cuda":
            return torch.from_numpy(np.stack(frames))
        shape = (len(frames), *frames[0].shape)
        host, copied = self._pinned.get(shape, (None, None))
        if host is None:
            if len(self._pinned) >= 8:  # shapes keep changing: do not hoard pinned memory
                self._pinned.clear()
            host = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        elif copied is not None:
            copied.synchronize()
        np.stack(frames, out=host.numpy())
        pixels = host.to(self.device, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record()
        self._pinned[shape] = (host, copied)
        return pixels

    def _device_pixels(self, cameras: Sequence[torch.Tensor]) -> torch.Tensor:
        """Per-camera uint8 ``[B, H_c, W_c, 3]`` on the device -> ``[B, N, 3, S, S]``.

        The operations of :func:`ove_ros.model.preprocess_images` (training's resize) with the mean and std
        already on the device: building them per call would be a host-to-device copy, which a CUDA graph
        capture does not allow.
        """
        size = self.model.config.image_size

        def prep(x: torch.Tensor) -> torch.Tensor:  # [..., 3, H, W] uint8
            lead, (h, w) = x.shape[:-3], x.shape[-2:]
            x = x.reshape(-1, 3, h, w).float() / 255.0
            if (h, w) != (size, size):
                x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            return ((x - self._mean) / self._std).to(self.dtype).reshape(*lead, 3, size, size)

        if all(c.shape == cameras[0].shape for c in cameras):
            return prep(torch.stack(list(cameras), dim=1).permute(0, 1, 4, 2, 3))
        return torch.stack([prep(c.permute(0, 3, 1, 2)) for c in cameras], dim=1)

    def _stage(
        self, rows: Sequence[Sequence[np.ndarray]], ids: np.ndarray, mask: np.ndarray
    ) -> list[torch.Tensor]:
        """Frames and tokens of ``len(rows)`` samples -> host tensors (pinned on CUDA) at the padded size.

        One uint8 ``[B, H_c, W_c, 3]`` tensor per camera, then ids and mask. The buffers are reused per shape.
        Padded rows keep whatever an earlier tick left there: samples never mix inside the model and padded
        rows are dropped, so they only need to hold valid inputs (buffers start as zero frames / empty text).
        Reuse is safe because every tick waits for its results, and so for its uploads, before returning.
        """
        n, padded = len(rows), self._padded(len(rows))
        shapes = tuple(f.shape for f in rows[0])
        key = (padded, shapes, ids.shape[1])
        bufs = self._staging.get(key)
        if bufs is None:
            if len(self._staging) >= 8:  # shapes keep changing: do not hoard pinned memory
                self._staging.clear()
            pin = self.device.type == "cuda"
            bufs = [torch.zeros((padded, *shape), dtype=torch.uint8, pin_memory=pin) for shape in shapes]
            bufs.append(torch.full((padded, ids.shape[1]), self.pad_id, dtype=torch.int64, pin_memory=pin))
            bufs.append(torch.zeros((padded, ids.shape[1]), dtype=torch.int64, pin_memory=pin))
            self._staging[key] = bufs
        for cam, buf in enumerate(bufs[: len(shapes)]):
            np.stack([r[cam] for r in rows], out=buf.numpy()[:n])
        bufs[-2].numpy()[:n] = ids
        bufs[-1].numpy()[:n] = mask
        return bufs

    def _pack(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> ``[B, bins + 3]`` float32: probabilities, then value, std, entropy (one host copy)."""
        summary = self.model.summarize(logits)
        return torch.cat([summary["probs"], torch.stack([summary[k] for k in SCALARS], dim=1)], dim=1)

    def _device_tick(self, *inputs: torch.Tensor) -> torch.Tensor:
        """``device_preprocess``: per-camera uint8 frames, ids, mask -> packed statistics, on the device."""
        *cameras, ids, mask = inputs
        logits = self._forward(self._device_pixels(cameras), ids, mask)
        return logits if self.model.prior is not None else self._pack(logits)  # prior: added per tick

    @torch.inference_mode()
    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """One tick's frames -> the ``[1, N, 3, S, S]`` pixels the model gets (a copy, for checks/tools)."""
        frames = self._check_frames(images)
        if self.device_preprocess:
            return self._device_pixels([torch.from_numpy(f)[None].to(self.device) for f in frames]).clone()
        return self._pixels(frames, 1).clone()

    # --------------------------------------------------------------------------------------- running

    def _padded(self, rows: int) -> int:
        """The static batch size ``rows`` samples run at (``rows`` itself without static shapes)."""
        return next((b for b in self.batch_sizes if b >= rows), rows)

    def _pad_batch(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self._padded(tensors[0].shape[0]) - tensors[0].shape[0]
        if n <= 0:
            return tensors
        return tuple(torch.cat([t, t[-1:].expand(n, *t.shape[1:])]) for t in tensors)

    def _capture(self, inputs: Sequence[torch.Tensor]) -> tuple[Any, tuple[torch.Tensor, ...], torch.Tensor]:
        static_in = tuple(torch.empty_like(t, device=self.device).copy_(t) for t in inputs)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # also compiles, when a compile mode without its own graphs is on
                self._tick(*static_in)
        torch.cuda.current_stream().wait_stream(stream)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # Graphs of all sizes share one pool: only one replays at a time and each keeps its own output alive.
        with torch.cuda.graph(graph, pool=self._pool):
            static_out = self._tick(*static_in)
        return graph, static_in, static_out

    def _call(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Run the tick function on padded inputs (device tensors, or host tensors when graphs copy them in).

        The result may be a graph's or compile's static output: read it before the next call.
        """
        if self.use_graphs:
            key = tuple(tuple(t.shape) for t in inputs)
            entry = self._graphs.get(key)
            if entry is None:
                try:
                    entry = self._graphs[key] = self._capture(inputs)
                except Exception as exc:  # capture fails on ops that sync with the host
                    logger.warning("CUDA graph capture failed (%s); running eagerly", exc)
                    self.use_graphs = False
                    return self._eager_tick(*(t.to(self.device, non_blocking=True) for t in inputs))
            graph, static_in, static_out = entry
            for dst, src in zip(static_in, inputs, strict=True):
                dst.copy_(src, non_blocking=True)
            graph.replay()
            return static_out
        inputs = [t.to(self.device, non_blocking=True) for t in inputs]
        if self.compiled and self.device.type == "cuda":
            torch.compiler.cudagraph_mark_step_begin()
        return self._tick(*inputs)

    def _run(self, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = pixels.shape[0]
        out = self._call(self._pad_batch(pixels, ids, mask))[:b]
        return out.clone() if self.use_graphs or self.compiled else out

    def _clock(self) -> float:
        """Wall time at a stage boundary; on CUDA after the queued work, so stages own their GPU time."""
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()
        return time.perf_counter()

    def _rows(self, host: np.ndarray, start: float, stages: list[float], post: float) -> list[ValueOutput]:
        """Packed host statistics ``[B, bins + 3]`` -> results; ``stages`` gets the postprocess time from
        ``post`` on."""
        bins = host.shape[1] - len(SCALARS)
        stats = {"probs": host[:, :bins], **{k: host[:, bins + i] for i, k in enumerate(SCALARS)}}
        end = time.perf_counter()
        stages[2] += end - post
        return [
            ValueOutput(
                probs=stats["probs"][i],
                value=float(stats["value"][i]),
                std=float(stats["std"][i]),
                entropy=float(stats["entropy"][i]),
                latency_s=end - start,
                preprocess_s=stages[0],
                forward_s=stages[1],
                postprocess_s=stages[2],
            )
            for i in range(host.shape[0])
        ]

    def _outputs(self, logits: torch.Tensor, start: float, stages: list[float]) -> list[ValueOutput]:
        """``stages`` holds the preprocess and forward seconds so far and gets this chunk's postprocess."""
        post = time.perf_counter()
        # One device-to-host copy (and one synchronization) for all statistics, not one per statistic.
        return self._rows(self._pack(logits).float().cpu().numpy(), start, stages, post)

    def _chunk(self, rows: Sequence[Sequence[np.ndarray]], tasks: Sequence[str], states: np.ndarray,
               start: float, t0: float, stages: list[float], frame_index: Any = None) -> list[ValueOutput]:
        """Up to ``max_batch`` checked samples through the model; ``stages`` accumulates over chunks."""
        prior = self.model.prior_logits(tasks, frame_index, len(tasks))  # the frame-index prior, if any
        if self.device_preprocess:
            host = self._stage(rows, *self._token_rows(tasks, states, frame_index))
            ready = time.perf_counter()  # host work only: the upload and resize run inside the forward
            out = self._call(host)[: len(rows)]
            packed = (out if prior is None else self._pack(out + prior)).cpu().numpy()  # waits for the tick
            done = time.perf_counter()
            stages[0] += ready - t0
            stages[1] += done - ready
            return self._rows(packed, start, stages, done)
        ids, mask = self._text(tasks, states, frame_index)
        pixels = self._pixels([f for r in rows for f in r], len(rows))
        ready = self._clock()
        logits = self._run(pixels, ids, mask)
        if prior is not None:
            logits = logits + prior
        done = self._clock()
        stages[0] += ready - t0
        stages[1] += done - ready
        return self._outputs(logits, start, stages)

    @torch.inference_mode()
    def infer(
        self, images: Sequence[np.ndarray], state: np.ndarray, task: str, frame_index: int | None = None
    ) -> ValueOutput:
        """One tick: ``images`` are uint8 HxWx3 RGB frames, one per camera in bundle order (any size).

        ``frame_index`` (frames since the episode started, at the dataset's fps) is required by bundles
        whose model takes elapsed time as an input (``config.time_bin_frames > 0``) or is anchored on a
        frame-index prior (``config.value_prior``), and ignored otherwise.
        """
        start = time.perf_counter()
        frames = self._check_frames(images)
        x = self._check_state(state)
        fi = None if frame_index is None else [frame_index]
        return self._chunk([frames], [task], x[None], start, start, [0.0, 0.0, 0.0], fi)[0]

    @torch.inference_mode()
    def infer_batch(
        self, images: np.ndarray, states: np.ndarray, tasks: Sequence[str], frame_index: Any = None
    ) -> list[ValueOutput]:
        """``images`` uint8 ``[B, N, H, W, 3]``, ``states`` ``[B, D]``, one task per row.

        Up to ``max_batch`` samples run as one batched forward; more run in chunks of ``max_batch``;
        ``frame_index`` ``[B]`` as in :meth:`infer`.
        """
        start = time.perf_counter()
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
            raise ValueError("images must be a uint8 numpy array [B, N, H, W, 3] (RGB, 0..255)")
        n = len(self.camera_names)
        if images.ndim != 5 or images.shape[1] != n or images.shape[4] != 3:
            raise ValueError(
                f"images has shape {images.shape}; expected [B, {n}, H, W, 3] (cameras {self.camera_names})"
            )
        x = np.asarray(states, dtype=np.float64)
        if x.ndim != 2 or x.shape != (images.shape[0], len(self.joint_names)):
            raise ValueError(
                f"states has shape {x.shape}; expected [{images.shape[0]}, {len(self.joint_names)}] "
                f"(joints {self.joint_names})"
            )
        tasks = list(tasks)
        if len(tasks) != images.shape[0]:
            raise ValueError(f"got {len(tasks)} tasks for {images.shape[0]} samples; pass one per sample")
        out: list[ValueOutput] = []
        stages = [0.0, 0.0, 0.0]
        step = self.config.max_batch
        for i in range(0, images.shape[0], step):
            t0 = start if i == 0 else time.perf_counter()  # the first chunk owns the input checks
            rows = [list(sample) for sample in images[i : i + step]]
            fi = None if frame_index is None else np.asarray(frame_index).reshape(-1)[i : i + step]
            out += self._chunk(rows, tasks[i : i + step], x[i : i + step], start, t0, stages, fi)
        return out

    def warmup(self) -> None:
        """Run ``warmup_iters`` dummy ticks at every static batch size, largest first (compilation, graph
        capture, allocator and kernel selection).

        VGA frames, so the resize path and its buffers are exercised too; with ``device_preprocess`` each
        other camera resolution captures its own graphs on first use.
        """
        frames = np.zeros((len(self.camera_names), 480, 640, 3), dtype=np.uint8)
        state = (self.normalizer.low + self.normalizer.high) / 2.0
        prior = self.model.prior  # a task the frame-index prior knows: no 'unknown task' warning
        task = next(iter(prior.offsets)) if prior is not None else "warm up"
        for b in sorted(self.batch_sizes or (1,), reverse=True):
            for _ in range(self.config.warmup_iters):
                if b == 1:
                    self.infer(list(frames), state, task, 0)
                else:
                    self.infer_batch(np.broadcast_to(frames, (b, *frames.shape)), np.tile(state, (b, 1)),
                                     [task] * b, np.zeros(b, dtype=np.int64))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.warmed_up = True
