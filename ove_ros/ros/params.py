# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The value estimator's parameters: one table of names, defaults, descriptions and ranges.

``config/value_estimator.yaml`` holds the same defaults (a test keeps the two equal). ``read`` turns the
declared values into a checked ``Settings`` and raises ``ConfigError`` with a message that says what to fix.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from ove_ros import typed_config
from ove_ros.typed_config import ConfigError, setting  # ConfigError: one error for every tool

TRANSPORTS = ("auto", "raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
DURABILITIES = ("volatile", "transient_local")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("auto", "float32", "bfloat16", "float16")
RESIZES = ("auto", "float", "uint8", "opencv")
COMPILE_MODES = ("auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str
    float_range: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = None
    choices: tuple[str, ...] | None = None
    # Applied while the node runs; the others take effect at the next configure.
    dynamic: bool = False

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(name=self.name, description=self.description)
        if self.float_range is not None:
            d.floating_point_range = [FloatingPointRange(from_value=float(self.float_range[0]),
                                                         to_value=float(self.float_range[1]), step=0.0)]
        if self.int_range is not None:
            d.integer_range = [IntegerRange(from_value=self.int_range[0], to_value=self.int_range[1], step=1)]
        if self.choices is not None:
            d.additional_constraints = f"one of: {', '.join(self.choices)}"
        return d


def _p(default: Any, help: str, *, dynamic: bool = False, **checks: Any) -> Any:
    """A node parameter: its default, description and allowed values or range (``typed_config.setting``);
    ``dynamic``: applied while the node runs (the others take effect at the next configure)."""
    return setting(default, help, dynamic=dynamic, **checks)


@dataclass(frozen=True)
class Settings:
    """The checked parameter values; each field's metadata is its ROS parameter (``key``: the dotted name
    where it differs from the field's), declared from it by ``declare``."""

    autostart: bool = _p(
        True,
        'Configure and activate right after start; false waits for a lifecycle manager.',
    )
    checkpoint: str = _p(
        '',
        'Deploy bundle directory (model.safetensors, config.json, tokenizer/).',
    )
    device: str = _p(
        'auto',
        'Inference device: auto (cuda when available), cpu or cuda.',
        choices=DEVICES,
    )
    dtype: str = _p(
        'auto',
        'Model dtype: auto (bfloat16 on cuda, float32 on cpu), float32, bfloat16 or float16.',
        choices=DTYPES,
    )
    compile: bool = _p(
        False,
        'torch.compile the model at configure (about a minute more to start on a GPU, faster ticks).',
    )
    compile_mode: str = _p(
        'auto',
        "torch.compile mode; auto: default kernels inside the engine's CUDA graph when cuda_graphs is on,"
        ' reduce-overhead otherwise (cpu: default).',
        choices=COMPILE_MODES,
    )
    cuda_graphs: bool = _p(
        True,
        'Replay the forward pass as one captured CUDA graph (cuda only; ignored on cpu). Off: every '
        'kernel is launched from Python, much slower ticks on a GPU.',
    )
    num_threads: int = _p(
        0,
        "CPU threads for the model; 0 keeps torch's default (one per core). Use fewer when other "
        'processes share the cores: oversubscribed threads slow inference down a lot.',
        ge=0, le=256,
    )
    resize: str = _p(
        'auto',
        "How frames are resized to the model's input: float (exactly training's filter), uint8 (the same "
        'filter on uint8, within 1/255), opencv, or auto (float on cuda, else uint8 where fast, else '
        'opencv).',
        choices=RESIZES,
    )
    camera_topics: tuple[str, ...] = _p(
        ['camera/image_raw'],
        "Camera topics in the bundle's camera order (one per camera the model was trained with).",
    )
    camera_transports: tuple[str, ...] = _p(
        ['auto'],
        'Per camera (or one entry for all): raw (sensor_msgs/Image), compressed (CompressedImage) or auto'
        " (the publisher's type, detected from the ROS graph).",
        choices=TRANSPORTS,
    )
    joint_states_topic: str = _p(
        'joint_states',
        'sensor_msgs/JointState topic with the robot state.',
    )
    joint_names: tuple[str, ...] = _p(
        [''],
        "Joints that form the state vector, in the model's order; [''] uses the bundle's joint names.",
    )
    task: str = _p(
        '',
        "Task prompt. Changing it at run time starts a new episode; '' uses the bundle's first task.",
        dynamic=True,
    )
    n_step: int = _p(
        0,
        "Advantage horizon N in dataset frames; 0 = the bundle's (the N its thresholds were computed "
        'with).',
        ge=0, le=100000,
    )
    bootstrap_tolerance: int = _p(
        0,
        'When frame t+N was not valued, bootstrap from the nearest valued frame within this many frames '
        '(the published n_step says which); 0 = only frame t+N itself.',
        ge=0, le=100000,
    )
    advantage_threshold: float = _p(
        0.0,
        'Label threshold used for tasks without a threshold in the bundle.',
        ge=-10.0, le=10.0, dynamic=True,
    )
    publish_distribution: bool = _p(
        True,
        'Fill ValueEstimate.probabilities with the bin probabilities.',
        dynamic=True,
    )
    frame_id: str = _p(
        'base_link',
        'header.frame_id of the value, advantage and marker messages.',
        dynamic=True,
    )
    fps: float = _p(
        0.0,
        "Frame grid rate in frames per second; 0 = the bundle's dataset fps (what training counted steps "
        'in).',
        ge=0.0, le=1000.0, key='sync.fps',
    )
    tolerance_periods: float = _p(
        0.0,
        "A frame keeps an input message at most this many frame periods old; 0 = the bundle's (the bag "
        "converter's setting).",
        ge=0.0, le=100.0, key='sync.tolerance_periods',
    )
    max_age: float = _p(
        0.5,
        'Seconds of sensor time after which a frame is decided without an input that has not delivered '
        'past it (the frame is then missing that input); also warns about inputs older than this on the '
        'node clock; 0 = decide only when every input has passed the frame.',
        ge=0.0, le=3600.0, key='sync.max_age',
    )
    event_delay: float = _p(
        0.5,
        "Seconds of sensor time an END may arrive after the inputs stamped past it: a frame's advantage "
        'bootstraps from a later frame only once that frame is older than the newest input by this much '
        '(a later END cannot take it back); advantages come out this much later.',
        ge=0.0, le=60.0, key='sync.event_delay',
    )
    reliability: str = _p(
        'best_effort',
        "Input subscriptions' reliability; best_effort also receives from reliable publishers.",
        choices=RELIABILITIES, key='input_qos.reliability',
    )
    depth: int = _p(
        5,
        "Input subscriptions' queue depth.",
        ge=1, le=1000, key='input_qos.depth',
    )
    durability: str = _p(
        'volatile',
        "Input and episode-event subscriptions' durability; transient_local receives what a "
        'transient_local publisher (ove_ros.sim.bag_player) sent before this node matched it, so a replay'
        ' loses no first messages. A volatile publisher does not match a transient_local subscription.',
        choices=DURABILITIES, key='input_qos.durability',
    )
    input_timeout: float = _p(
        2.0,
        'Warn when an input topic has delivered nothing for this many seconds.',
        ge=0.1, le=3600.0,
    )
    diagnostics_period: float = _p(
        1.0,
        'Seconds between /diagnostics messages.',
        ge=0.05, le=60.0,
    )
    overlay_enabled: bool = _p(
        True,
        'Publish ~/overlay (drawn only while it has subscribers).',
        key='overlay.enabled', dynamic=True,
    )
    overlay_camera: int = _p(
        0,
        'Index (in camera_topics) of the camera drawn on.',
        ge=0, le=64, key='overlay.camera', dynamic=True,
    )
    overlay_history: int = _p(
        150,
        "Values shown by the overlay's sparkline.",
        ge=2, le=10000, key='overlay.history', dynamic=True,
    )


def _param(f: Any) -> Param:
    meta = f.metadata
    default = f.default_factory() if f.default_factory is not MISSING else f.default
    bounds = (meta["ge"], meta["le"]) if "ge" in meta else None
    is_float = isinstance(default, float)
    return Param(
        meta.get("key", f.name), default, meta["help"],
        float_range=bounds if is_float else None, int_range=None if is_float else bounds,
        choices=meta.get("choices"), dynamic=meta["dynamic"],
    )


PARAMS: tuple[Param, ...] = tuple(_param(f) for f in fields(Settings))
BY_NAME = {p.name: p for p in PARAMS}


def declare(node) -> None:
    """Declare every parameter with its default and descriptor on ``node``."""
    node.declare_parameters("", [(p.name, p.default, p.descriptor()) for p in PARAMS])


def read(node) -> Settings:
    """Read and check the declared parameters of ``node``."""
    v = {f.name: node.get_parameter(f.metadata.get("key", f.name)).value for f in fields(Settings)}
    cameras = tuple(v["camera_topics"])
    transports = tuple(v["camera_transports"])
    if len(transports) == 1:
        transports = transports * len(cameras)
    joints = tuple(v["joint_names"])
    if joints == ("",):
        joints = ()
    s = Settings(**{**v, "camera_topics": cameras, "camera_transports": transports, "joint_names": joints})
    typed_config.check(s, "parameters")  # every declared choice and range
    if not s.checkpoint:
        raise ConfigError(
            "no checkpoint: set the 'checkpoint' parameter to a deploy bundle directory (written by "
            "`python -m ove_ros.training.convert`), e.g. `--ros-args -p checkpoint:=/path/to/bundle` (or "
            "checkpoint:=... with the launch file)"
        )
    if not cameras or any(not t for t in cameras):
        raise ConfigError(f"camera_topics must list one non-empty topic per camera, got {list(cameras)}")
    if len(set(cameras)) != len(cameras):
        raise ConfigError(f"camera_topics has duplicates: {list(cameras)}")
    if len(transports) != len(cameras):
        raise ConfigError(
            f"camera_transports has {len(transports)} entries for {len(cameras)} camera_topics; give one "
            "entry for all cameras or one per camera"
        )
    if any(not j for j in joints) or len(set(joints)) != len(joints):
        raise ConfigError(f"joint_names must be unique non-empty names (or ['']), got {list(joints)}")
    if not s.joint_states_topic:
        raise ConfigError("joint_states_topic is empty")
    if s.overlay_camera >= len(cameras):
        raise ConfigError(f"overlay.camera={s.overlay_camera} but only {len(cameras)} camera_topics")
    return s
