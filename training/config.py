# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Typed configuration of the training tools, loaded from YAML plus ``key=value`` overrides.

Every command line of the training tools has the form::

    python -m ove_ros.training.train config=training/configs/tiny.yaml run_name=my_run data.batch_size=32

``config=`` names the YAML file (required); every other argument is a dotted ``key=value`` override applied
on top of it (``ove_ros.typed_config.load``, the loader of every tool). Unknown keys and wrongly typed values
are rejected with the name of the offending key, and values outside the choices or range a field declares
(a negative learning rate, a percentile of 150) when the config loads, before any data.

The spellings of the open-value-estimator library are accepted as aliases (listed by ``--help``):
``training.num_steps`` = ``training.steps``, ``resume_from`` = ``training.resume_from``, the ``eval`` group =
``evaluate``, and the sweep launcher's ``sweep_config``, ``count``, ``sweep_id`` and ``create_only``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import MISSING, OmegaConf

from ove_ros import typed_config
from ove_ros.typed_config import ConfigError, setting
from ove_ros.typed_config import describe as describe_fields
from ove_ros.values import TARGET_KINDS, RewardConfig

_f = setting  # a field with its default, description and allowed values (ove_ros.typed_config)

MODEL_PRESETS = ("tiny", "full")
SWEEP_BACKENDS = ("wandb", "optuna")


def _mirror(cls: type, name: str) -> Any:
    """A setting with the default, description and range of ``cls.name`` (one source for both)."""
    f = next(f for f in fields(cls) if f.name == name)
    return setting(f.default, **f.metadata)


@dataclass
class DataConfig:
    """Which dataset to read and how to turn its frames into value targets."""

    repo_id: str = _f(
        MISSING, "LeRobot dataset id (e.g. 'local/pick_bottle'); names the dataset's cache entry."
    )
    root: str | None = _f(None, "Local directory of the LeRobot v3 dataset (no download happens when set).")
    camera_names: list[str] = _f(
        [],
        "Cameras fed to the model, by short name ('cam_high' for 'observation.images.cam_high'); "
        "empty = every camera of the dataset, in the dataset's order.",
    )
    state_key: str = _f("observation.state", "Feature holding the joint vector.")
    reward_key: str = _f("reward", "Feature holding the per-frame reward (see ARCHITECTURE.md).")
    done_key: str = _f("is_done", "Feature marking the last frame of an episode (informational).")
    precomputed_rewards: bool = _f(
        False,
        "True: use the reward column as is. False: only the sign of each episode's last reward "
        "counts (success/failure) and rewards are built from step_penalty and fail_penalty.",
    )
    step_penalty: float = _mirror(RewardConfig, "step_penalty")
    fail_penalty: float = _mirror(RewardConfig, "fail_penalty")
    assume_success_without_reward: bool = _f(
        False,
        "Datasets without a reward column (pure demonstrations): treat every episode as a success. "
        "Without this flag such a dataset is rejected.",
    )
    val_fraction: float = _f(
        0.1, "Fraction of the episodes held out for validation (split by episode).", ge=0, lt=1
    )
    val_episodes: list[int] = _f([], "Explicit validation episode indices (overrides val_fraction).")
    split_seed: int = _f(0, "Seed of the train/validation episode split.")
    episodes: list[int] = _f([], "Restrict the dataset to these episode indices (empty = all).")
    batch_size: int = _f(32, "Samples per optimizer micro-step and per process.", ge=1)
    eval_batch_size: int = _f(
        64, "Samples per forward pass during validation, evaluation and labelling.", ge=1
    )
    num_workers: int = _f(2, "DataLoader worker processes (0 = load in the main process).", ge=0)
    video_backend: str | None = _f(
        None, "'torchcodec' or 'pyav'; None picks torchcodec when it loads.",
        choices=("torchcodec", "pyav", "video_reader"),
    )
    cache_dir: str | None = _f(None, "Where value targets are cached; None = <output_root>/cache.")


@dataclass
class ModelConfig:
    """Which value model to build (see ove_ros.model.ValueModelConfig for the architecture)."""

    preset: str = _f(
        "tiny", "tiny: random-init, seconds on a CPU; full: SigLIP + Gemma-3 270M.", choices=MODEL_PRESETS
    )
    overrides: dict[str, Any] = _f(
        {},
        "ValueModelConfig fields to override on top of the preset (e.g. image_size: 64; vision/text dicts "
        "are merged key by key). Camera names and state size always come from the dataset.",
    )
    pretrained_vision: str | None = _f(None, "Local SigLIP checkpoint directory (full preset).")
    pretrained_text: str | None = _f(None, "Local Gemma-3 checkpoint directory (full preset).")
    tokenizer_path: str | None = _f(None, "Local tokenizer directory; None = the built-in local tokenizer.")
    init_from: str | None = _f(
        None, "Start from the weights of a bundle, a checkpoint file or a run directory (no optimizer state)."
    )
    value_head_depth: int | None = _f(
        None, "Hidden layers of the GELU MLP value head (0 = linear); None = the preset's (2).", ge=0
    )


@dataclass
class OptimConfig:
    """The optimization loop."""

    steps: int = _f(1000, "Total optimizer steps of the run (defines the learning-rate schedule).", ge=1)
    max_steps_this_run: int | None = _f(
        None,
        "Stop this invocation after this many optimizer steps (resume later, e.g. on preemptible jobs).",
        gt=0,
    )
    learning_rate: float = _f(1e-4, "Peak learning rate of AdamW.", gt=0)
    min_lr_ratio: float = _f(
        0.1, "Final learning rate as a fraction of the peak (cosine decay floor).", ge=0, le=1
    )
    warmup_steps: int = _f(100, "Linear warm-up steps from 0 to the peak learning rate.", ge=0)
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and norm weights).", ge=0)
    betas: list[float] = _f([0.9, 0.95], "AdamW betas (two values).", ge=0, lt=1)
    eps: float = _f(1e-8, "AdamW epsilon.", gt=0)
    grad_clip: float = _f(1.0, "Clip the global gradient norm to this value (0 = off).", ge=0)
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step.", ge=1)
    mixed_precision: str = _f(
        "bf16", "'bf16' autocast on CUDA, 'no' for fp32. CPUs always run fp32.", choices=("bf16", "no")
    )
    target_encoding: str = _f("one_hot", "Target distribution over the bins.", choices=TARGET_KINDS)
    hl_gauss_sigma: float | None = _f(
        None, "Std of the HL-Gauss target in value units (None = 0.75 bins).", gt=0
    )
    augment_shift: float = _f(
        0.0, "Random image shift per sample and camera, as a fraction of the image side (0 = off).", ge=0
    )
    augment_color: float = _f(0.0, "Brightness/contrast jitter: factors in [1 - x, 1 + x] (0 = off).", ge=0)
    augment_state: float = _f(
        0.0,
        "Gaussian noise on the joints, std as a fraction of half of each joint's training range (0 = off).",
        ge=0,
    )
    augment_drop_images: float = _f(
        0.0, "Probability that a training sample's images are all replaced by mid-grey (0 = off).", ge=0, le=1
    )
    consistency_weight: float = _f(
        0.0,
        "Weight of the temporal-consistency term: the squared difference between the value error of a frame "
        "and that of the frame consistency_gap later in its episode (the value should change as the return "
        "does). 0 = off; on, every sample brings its partner frame, which doubles the work per step.",
        ge=0,
    )
    consistency_gap: int = _f(1, "Frames between a sample and its partner in the consistency term.", ge=1)
    aux_image_weight: float = _f(
        0.0,
        "Weight of the auxiliary loss that decodes each camera's 8x8 picture from its image tokens "
        "(training/aux_image.py; a training-time head, not in the model's weights). 0 = off.",
        ge=0,
    )
    freeze_vision: bool = _f(False, "Freeze the vision tower (train the projector, language model and head).")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass to save memory.")
    ema_decay: float = _f(
        0.999, "EMA decay of the weights (0 = no EMA); ramps up as (1+s)/(10+s).", ge=0, lt=1
    )
    seed: int = _f(0, "Seed of the weights, the data order and every random number of the run.")
    log_every: int = _f(10, "Log training metrics every N optimizer steps.", gt=0)
    val_every: int = _f(200, "Validate every N optimizer steps (0 = only at the end).", ge=0)
    max_val_batches: int | None = _f(
        None, "Cap validation at this many batches (None = the whole split).", gt=0
    )
    save_every: int = _f(
        500, "Write a checkpoint every N optimizer steps (the last step is always saved).", gt=0
    )
    keep_last: int = _f(3, "Keep the newest K checkpoints of the run (older ones are deleted).", ge=0)
    resume: bool = _f(False, "Continue the run from its newest intact checkpoint under the output directory.")
    resume_from: str | None = _f(
        None,
        "Resume from this checkpoint (a checkpoint_<step>.safetensors file, an older step directory or a run "
        "directory); implies training.resume.",
    )
    trust_pickled_checkpoint: bool = _f(
        False,
        "Allow resuming an older checkpoint whose training_state.pt is a pickle (loading a pickle can run "
        "code: only for checkpoints you made or trust).",
    )
    compile: bool = _f(False, "torch.compile the vision and text towers (CUDA only).")
    num_threads: int | None = _f(
        None, "CPU threads of torch (None = torch's default; 1 on busy shared CPUs).", gt=0
    )


@dataclass
class WandbConfig:
    """Weights & Biases logging."""

    mode: str = _f(
        "auto",
        "'auto' (online when WANDB_API_KEY is set, offline otherwise), 'online', 'offline', 'disabled'.",
        choices=("auto", "online", "offline", "disabled"),
    )
    project: str | None = _f(None, "W&B project (None = the config's project).")
    entity: str | None = _f(None, "W&B entity (team or user).")
    tags: list[str] = _f([], "Tags of the W&B run.")


@dataclass
class EvaluateConfig:
    """``python -m ove_ros.training.evaluate``: metrics, value-curve plots and overlay videos."""

    checkpoint: str | None = _f(
        None, "What to evaluate: a checkpoint_<step>.safetensors / checkpoint_ema.safetensors file, a run "
        "directory (newest checkpoint) or a bundle directory."
    )
    use_ema: bool = _f(True, "Evaluate the EMA weights of a training checkpoint.")
    split: str = _f(
        "val", "The episode split of the checkpoint's run to evaluate.", choices=("val", "train", "all")
    )
    output_dir: str | None = _f(None, "Where reports go; None = <run dir>/eval/<checkpoint name>.")
    plot_episodes: int = _f(6, "Number of episodes to plot (value curve: prediction vs target).", ge=0)
    video_episodes: int = _f(
        1, "Number of episodes to render as an MP4 with the value drawn on the frames.", ge=0
    )
    video_fps: int | None = _f(None, "Frame rate of the videos; None = the dataset's.", gt=0)


@dataclass
class AdvantageConfig:
    """``python -m ove_ros.training.advantage``: write a dataset copy with an ``advantage`` column."""

    checkpoint: str | None = _f(
        None, "Whose values are used: a bundle directory, a checkpoint_<step>.safetensors / "
        "checkpoint_ema.safetensors file or a run directory."
    )
    use_ema: bool = _f(True, "Use the EMA weights of a training checkpoint.")
    mode: str = _f(
        "n_step", "n_step: sum of N rewards + V(t+N) - V(t); mc: G_t - V(t).", choices=("n_step", "mc")
    )
    n_step: int = _f(50, "N of the n-step advantage.", ge=1)
    percentile: float = _f(30.0, "Per-task percentile used as the positive/negative threshold.", ge=0, le=100)
    output_repo_id: str | None = _f(None, "repo_id of the labelled copy (None = <repo_id>_advantage).")
    output_root: str | None = _f(None, "Directory of the labelled copy (None = beside the source dataset).")
    overwrite: bool = _f(False, "Replace an existing output directory.")


@dataclass
class SweepConfig:
    """``python -m ove_ros.training.sweep``: hyper-parameter search (W&B sweeps or local Optuna)."""

    spec: str = _f("training/configs/sweep.yaml", "Sweep file in W&B format (method, metric, parameters).")
    name: str = _f("sweep", "Name of the sweep (Optuna study name, run-name prefix).")
    n_trials: int = _f(10, "Number of trials (runs) to start.", ge=1)
    storage: str | None = _f(None, "Optuna storage URL; None = sqlite under <output_root>/<project>/sweeps.")
    sampler_seed: int = _f(0, "Seed of the Optuna sampler.")
    wandb_sweep_id: str | None = _f(None, "Join an existing W&B sweep instead of creating one.")
    create_only: bool = _f(False, "W&B: create the sweep, print its id and start no agent.")
    backend: str = _f(
        "wandb", "wandb: W&B sweep, needs WANDB_API_KEY; optuna: local, no server.", choices=SWEEP_BACKENDS
    )


@dataclass
class AccelerateConfig:
    """Settings of the ``accelerate`` Accelerator (process count and machines come from
    ``accelerate launch``)."""

    cpu: bool = _f(False, "Train on the CPU even where a GPU is present.")
    find_unused_parameters: bool = _f(
        False, "DDP: tolerate parameters without gradients (needed by some frozen/partial set-ups; slower)."
    )


CLOUD_PREFIX = "cloud."


@dataclass
class CloudConfig:
    """A Vertex AI CustomJob's placement, hardware, storage and secrets."""

    project: str | None = _f(None, "GCP project id (None = the project of the default credentials).")
    region: str = _f("us-central1", "Vertex AI region of the job.")
    staging_bucket: str | None = _f(
        None, "gs:// URI for Vertex AI's job files (the job's base output directory goes below it)."
    )
    output_uri: str | None = _f(
        None, "gs:// URI of the run outputs: <output_uri>/<project>/<run_name>/ (checkpoints, metrics)."
    )
    image_uri: str | None = _f(None, "Training image built from the Dockerfile (Artifact Registry URI).")
    service_account: str | None = _f(None, "Service account e-mail the job runs as (None = the default).")
    machine_type: str = _f("a2-highgpu-1g", "Compute Engine machine type of every node.")
    accelerator_type: str = _f(
        "NVIDIA_TESLA_A100", "aiplatform_v1.AcceleratorType name ('' or NONE = CPU only)."
    )
    accelerator_count: int = _f(1, "GPUs per node (one training process each).", ge=0)
    replica_count: int = _f(1, "Nodes; more than 1 runs accelerate's multi-node launch.", ge=1)
    boot_disk_type: str = _f("pd-ssd", "Boot disk type of every node.")
    boot_disk_size_gb: int = _f(200, "Boot disk size (GB): the dataset copy and the local run directory.")
    spot: bool = _f(False, "Run on Spot VMs (pre-emptible; the job resumes from its newest checkpoint).")
    restart_on_worker_restart: bool = _f(
        True, "Restart every node when one restarts (a multi-node run resumes together)."
    )
    timeout_hours: float = _f(72.0, "Maximum run time of the job.", gt=0)
    hf_token_secret: str | None = _f(
        None,
        "Secret Manager secret holding HF_TOKEN: 'name', 'name:version' or "
        "'projects/<p>/secrets/<name>/versions/<v>'.",
    )
    wandb_api_key_secret: str | None = _f(None, "Secret Manager secret holding WANDB_API_KEY (same forms).")
    env: dict[str, str] = _f({}, "Plain (non-secret) environment variables of the job.")
    labels: dict[str, str] = _f({}, "Labels of the job.")
    copy_dataset: bool = _f(
        True, "Copy the gs:// dataset to the node's disk first (False = read it through the bucket mount)."
    )
    gcs_mount: str = _f("/gcs", "Where the job sees gs://<bucket>/<path> (Vertex AI's Cloud Storage mount).")
    local_dir: str = _f("/tmp/ove_ros", "Node-local scratch directory: dataset copy, run directory.")
    sync_every_s: float = _f(30.0, "How often the entry point copies new checkpoints to output_uri.", gt=0)
    main_process_port: int = _f(29500, "Rendezvous port of multi-node runs on the primary node.")
    sweep_agents: int = _f(1, "Sweep launcher: number of agent jobs joining sweep.wandb_sweep_id.", ge=1)
    request_dir: str = _f("outputs/cloud", "Where the launchers write the job requests as JSON.")

    def to_args(self) -> list[str]:
        """``cloud.<key>=<value>`` for every field, so the remote entry point sees the same settings."""
        args = []
        for key, value in asdict(self).items():
            if isinstance(value, dict):
                args.append(f"{CLOUD_PREFIX}{key}={{}}")
                args += [f"{CLOUD_PREFIX}{key}.{k}={_dotlist_value(v)}" for k, v in value.items()]
            else:
                args.append(f"{CLOUD_PREFIX}{key}={_dotlist_value(value)}")
        return args


def _dotlist_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclass
class Config:
    """Everything a training-tool invocation needs; ``run_name`` names the output directory."""

    project: str = _f("ove_ros", "Project name: the first level of the output directory and the W&B project.")
    run_name: str | None = _f(None, "Run name: outputs go to <output_root>/<project>/<run_name>/.")
    output_root: str = _f("outputs", "Root directory of all runs.")
    debug: bool = _f(False, "Show the full traceback of an error (same as --debug).")
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Dataset and targets."})
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "Value model."})
    training: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "Optimization loop."})
    wandb: WandbConfig = field(default_factory=WandbConfig, metadata={"help": "W&B logging."})
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig, metadata={"help": "Evaluation."})
    advantage: AdvantageConfig = field(default_factory=AdvantageConfig, metadata={"help": "Advantages."})
    sweep: SweepConfig = field(default_factory=SweepConfig, metadata={"help": "Hyper-parameter sweeps."})
    accelerate: AccelerateConfig = field(default_factory=AccelerateConfig, metadata={"help": "Accelerate."})
    cloud: CloudConfig = field(default_factory=CloudConfig, metadata={"help": "Vertex AI jobs."})

    @property
    def eval(self) -> EvaluateConfig:
        """The reference library's name of the ``evaluate`` group."""
        return self.evaluate

    @property
    def run_dir(self) -> Path:
        """``<output_root>/<project>/<run_name>``."""
        if not self.run_name:
            raise ConfigError("run_name is not set")
        return Path(self.output_root) / self.project / self.run_name

    @property
    def reward(self) -> RewardConfig:
        return RewardConfig(
            step_penalty=float(self.data.step_penalty),
            fail_penalty=float(self.data.fail_penalty),
            precomputed_rewards=bool(self.data.precomputed_rewards),
        )

    def to_dict(self) -> dict[str, Any]:
        return OmegaConf.to_container(OmegaConf.structured(self), resolve=True)  # type: ignore[return-value]

    def to_yaml(self) -> str:
        return OmegaConf.to_yaml(OmegaConf.structured(self))


_RUN_NAME = re.compile(r"^[A-Za-z0-9._\-]+$")

# Other spellings of keys (the open-value-estimator library's), accepted on the command line and in YAML.
ALIASES: dict[str, str] = {
    "training.num_steps": "training.steps",
    "resume_from": "training.resume_from",
    "sweep_config": "sweep.spec",
    "count": "sweep.n_trials",
    "sweep_id": "sweep.wandb_sweep_id",
    "create_only": "sweep.create_only",
}
GROUP_ALIASES: dict[str, str] = {"eval": "evaluate"}


def canonical_key(key: str) -> str:
    """The documented name of a dotted key given in any accepted spelling."""
    if key in ALIASES:
        return ALIASES[key]
    head, _, rest = key.partition(".")
    if head in GROUP_ALIASES:
        return GROUP_ALIASES[head] + (f".{rest}" if rest else "")
    return key


def validate(cfg: Config, require_run_name: bool = True) -> Config:
    """Check what the fields' declared choices and ranges (``typed_config.check``) cannot: the run name and
    the settings that go together, so a bad value stops the command before it reads any data."""
    if require_run_name:
        if not cfg.run_name:
            raise ConfigError(
                "run_name is not set: add `run_name: <name>` to the config file or pass run_name=<name> "
                f"on the command line (outputs go to {cfg.output_root}/{cfg.project}/<run_name>/)"
            )
        if not _RUN_NAME.match(cfg.run_name):
            raise ConfigError(f"run_name {cfg.run_name!r} may only contain letters, digits, '.', '_' and '-'")
    typed_config.check(cfg)
    if len(cfg.training.betas) != 2:
        raise ConfigError(f"training.betas must be two values in [0, 1), got {cfg.training.betas}")
    cfg.reward  # noqa: B018 -- RewardConfig also rejects infinite penalties
    return cfg


def split_cli_args(argv: Sequence[str], required: bool = True) -> tuple[str | None, list[str]]:
    """Separate ``config=<file>`` from the dotlist overrides; a missing ``config=`` is an error when
    ``required``."""
    config_path: str | None = None
    overrides: list[str] = []
    for given in argv:
        arg = given[2:] if given.startswith("--") else given
        if arg.startswith("config="):
            config_path = arg.split("=", 1)[1]
        elif "=" not in arg:
            raise ConfigError(f"argument {given!r} is not of the form key=value (e.g. data.batch_size=32)")
        else:
            overrides.append(arg)
    if required and not config_path:
        raise ConfigError("config=<file.yaml> is required, e.g. config=training/configs/tiny.yaml")
    return config_path, overrides


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    require_run_name: bool = True,
    data: dict[str, Any] | str | None = None,
    what: str = "configuration",
) -> Config:
    """Defaults <- YAML file (or ``data``: a mapping or YAML text) <- dotlist overrides, every key in any
    accepted spelling (``canonical_key``), checked against the dataclasses."""
    cfg = typed_config.load(
        Config, path, overrides, data=data, rename=canonical_key, what=what, example="data.batch_size=32"
    )
    if cfg.training.resume_from:
        cfg.training.resume = True
    return validate(cfg, require_run_name=require_run_name)


def config_from_argv(argv: Sequence[str], require_run_name: bool = True) -> Config:
    """``config=<file> key=value ...`` -> Config."""
    path, overrides = split_cli_args(argv)
    return load_config(path, overrides, require_run_name=require_run_name)


def config_from_dict(data: dict[str, Any], require_run_name: bool = False) -> Config:
    """Rebuild a Config saved with ``Config.to_dict`` (e.g. from a checkpoint, also one from before a key was
    renamed)."""
    return load_config(data=data, require_run_name=require_run_name, what="stored configuration")


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically) so a run can be reproduced from its directory."""
    from ove_ros.training.checkpoint import atomic_write_text

    atomic_write_text(Path(path), cfg.to_yaml())


def describe(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(key, default, help) of every field, for ``--help`` output and docs."""
    return describe_fields(cls, prefix)


def print_help(tool: str, extra: str = "") -> None:
    """Usage line plus every key with its default and description, and the accepted aliases."""
    usage = f"usage: python -m {tool} config=<file.yaml> [key=value ...] [--debug]"
    print(typed_config.help_text(Config, usage, extra))
    print("\naliases (other accepted spellings):")
    for alias, key in {**ALIASES, **{f"{a}.<key>": f"{k}.<key>" for a, k in GROUP_ALIASES.items()}}.items():
        print(f"  {alias:42s} = {key}")


_R = TypeVar("_R")

_PLAIN_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
                 PermissionError, KeyError)


def error_message(exc: BaseException, log: Path | None = None) -> str:
    """One line for a command's failure: the message alone for the errors that explain themselves, and where
    the traceback went (``log``) or how to see it."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    plain = isinstance(exc, _PLAIN_ERRORS) and text
    if not plain:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    line = "error: " + " ".join(text.split())
    if log is not None:
        return f"{line} (traceback in {log})"
    return line if plain else f"{line} (--debug shows the traceback)"


def write_error_log(cfg: Config) -> Path | None:
    """The current exception's traceback in ``<run dir>/error.log`` when the command has a run directory."""
    import traceback

    try:
        run_dir = cfg.run_dir
    except ConfigError:
        return None
    if not run_dir.is_dir():
        return None
    path = run_dir / "error.log"
    try:
        with open(path, "a") as fh:
            fh.write(traceback.format_exc())
    except OSError:
        return None
    return path


HELP_ARGS = ("-h", "--help", "help")


def wants_debug(argv: Sequence[str]) -> bool:
    return any(a in ("--debug", "debug=true", "debug=True", "--debug=true") for a in argv)


def run_cli(
    tool: str,
    doc: str | None,
    argv: Sequence[str] | None,
    run: Callable[[Config], _R],
    require_run_name: bool = True,
) -> _R | None:
    """The ``main()`` of the config-driven tools, so that they answer ``--help``, log and fail alike.

    ``-h``/``--help``/``help`` prints the keys and returns None; otherwise the config is loaded from ``argv``
    (``sys.argv[1:]`` when None) and ``run(cfg)`` returned. Any error ends the command with one line
    ``error: <message>`` on stderr and exit status 1; the traceback goes to ``<run dir>/error.log`` where the
    run has a directory, and ``--debug`` (or ``debug=true``) lets it through instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_ARGS for a in argv):
        print_help(tool, doc or "")
        return None
    debug = wants_debug(argv)
    argv = [a for a in argv if a != "--debug"]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_argv(argv, require_run_name=require_run_name)
    except Exception as exc:
        if debug:
            raise
        raise SystemExit(error_message(exc)) from None
    try:
        return run(cfg)
    except Exception as exc:
        if debug or cfg.debug:
            raise
        log = None if isinstance(exc, ConfigError) else write_error_log(cfg)  # a ConfigError says it all
        raise SystemExit(error_message(exc, log)) from None
