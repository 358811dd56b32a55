# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The value estimator's parameters: one table of names, defaults, descriptions and ranges.

``config/value_estimator.yaml`` holds the same defaults (a test keeps the two equal). ``read`` turns the
declared values into a checked ``Settings`` and raises ``ConfigError`` with a message that says what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from ove_ros.typed_config import ConfigError  # the one configuration error of every tool (node.py catches it)

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


PARAMS: tuple[Param, ...] = (
    Param("autostart", True,
          "Configure and activate right after start; false waits for a lifecycle manager."),
    Param("checkpoint", "", "Deploy bundle directory (model.safetensors, config.json, tokenizer/)."),
    Param("device", "auto", "Inference device: auto (cuda when available), cpu or cuda.", choices=DEVICES),
    Param("dtype", "auto", "Model dtype: auto (bfloat16 on cuda, float32 on cpu), float32, bfloat16 or "
          "float16.", choices=DTYPES),
    Param("compile", False, "torch.compile the model at configure (about a minute more to start on a GPU, "
          "faster ticks)."),
    Param("compile_mode", "auto", "torch.compile mode; auto: default kernels inside the engine's CUDA graph "
          "when cuda_graphs is on, reduce-overhead otherwise (cpu: default).", choices=COMPILE_MODES),
    Param("cuda_graphs", True, "Replay the forward pass as one captured CUDA graph (cuda only; ignored on "
          "cpu). Off: every kernel is launched from Python, much slower ticks on a GPU."),
    Param("num_threads", 0, "CPU threads for the model; 0 keeps torch's default (one per core). Use fewer "
          "when other processes share the cores: oversubscribed threads slow inference down a lot.",
          int_range=(0, 256)),
    Param("resize", "auto", "How frames are resized to the model's input: float (exactly training's filter), "
          "uint8 (the same filter on uint8, within 1/255), opencv, or auto (float on cuda, else uint8 where "
          "fast, else opencv).", choices=RESIZES),
    Param("camera_topics", ["camera/image_raw"],
          "Camera topics in the bundle's camera order (one per camera the model was trained with)."),
    Param("camera_transports", ["auto"],
          "Per camera (or one entry for all): raw (sensor_msgs/Image), compressed (CompressedImage) or auto "
          "(the publisher's type, detected from the ROS graph).", choices=TRANSPORTS),
    Param("joint_states_topic", "joint_states", "sensor_msgs/JointState topic with the robot state."),
    Param("joint_names", [""],
          "Joints that form the state vector, in the model's order; [''] uses the bundle's joint names."),
    Param("task", "",
          "Task prompt. Changing it at run time starts a new episode; '' uses the bundle's first task.",
          dynamic=True),
    Param("n_step", 0, "Advantage horizon N in dataset frames; 0 = the bundle's (the N its thresholds were "
          "computed with).", int_range=(0, 100000)),
    Param("bootstrap_tolerance", 0, "When frame t+N was not valued, bootstrap from the nearest valued frame "
          "within this many frames (the published n_step says which); 0 = only frame t+N itself.",
          int_range=(0, 100000)),
    Param("advantage_threshold", 0.0,
          "Label threshold used for tasks without a threshold in the bundle.", float_range=(-10.0, 10.0),
          dynamic=True),
    Param("publish_distribution", True, "Fill ValueEstimate.probabilities with the bin probabilities.",
          dynamic=True),
    Param("frame_id", "base_link", "header.frame_id of the value, advantage and marker messages.",
          dynamic=True),
    Param("sync.fps", 0.0, "Frame grid rate in frames per second; 0 = the bundle's dataset fps (what "
          "training counted steps in).", float_range=(0.0, 1000.0)),
    Param("sync.tolerance_periods", 0.0, "A frame keeps an input message at most this many frame periods "
          "old; 0 = the bundle's (the bag converter's setting).", float_range=(0.0, 100.0)),
    Param("sync.max_age", 0.5,
          "Seconds of sensor time after which a frame is decided without an input that has not delivered "
          "past it (the frame is then missing that input); also warns about inputs older than this on the "
          "node clock; 0 = decide only when every input has passed the frame.",
          float_range=(0.0, 3600.0)),
    Param("sync.event_delay", 0.5,
          "Seconds of sensor time an END may arrive after the inputs stamped past it: a frame's advantage "
          "bootstraps from a later frame only once that frame is older than the newest input by this much "
          "(a later END cannot take it back); advantages come out this much later.",
          float_range=(0.0, 60.0)),
    Param("input_qos.reliability", "best_effort",
          "Input subscriptions' reliability; best_effort also receives from reliable publishers.",
          choices=RELIABILITIES),
    Param("input_qos.depth", 5, "Input subscriptions' queue depth.", int_range=(1, 1000)),
    Param("input_qos.durability", "volatile",
          "Input and episode-event subscriptions' durability; transient_local receives what a "
          "transient_local publisher (ove_ros.sim.bag_player) sent before this node matched it, so a replay "
          "loses no first messages. A volatile publisher does not match a transient_local subscription.",
          choices=DURABILITIES),
    Param("input_timeout", 2.0, "Warn when an input topic has delivered nothing for this many seconds.",
          float_range=(0.1, 3600.0)),
    Param("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", float_range=(0.05, 60.0)),
    Param("overlay.enabled", True, "Publish ~/overlay (drawn only while it has subscribers).", dynamic=True),
    Param("overlay.camera", 0, "Index (in camera_topics) of the camera drawn on.", int_range=(0, 64),
          dynamic=True),
    Param("overlay.history", 150, "Values shown by the overlay's sparkline.", int_range=(2, 10000),
          dynamic=True),
)
BY_NAME = {p.name: p for p in PARAMS}


def declare(node) -> None:
    """Declare every parameter with its default and descriptor on ``node``."""
    node.declare_parameters("", [(p.name, p.default, p.descriptor()) for p in PARAMS])


@dataclass(frozen=True)
class Settings:
    """The checked parameter values."""

    checkpoint: str
    device: str
    dtype: str
    compile: bool
    compile_mode: str
    cuda_graphs: bool
    num_threads: int
    resize: str
    camera_topics: tuple[str, ...]
    camera_transports: tuple[str, ...]
    joint_states_topic: str
    joint_names: tuple[str, ...]  # empty: the bundle's
    task: str
    n_step: int  # 0: the bundle's
    bootstrap_tolerance: int
    advantage_threshold: float
    publish_distribution: bool
    frame_id: str
    fps: float  # 0: the bundle's
    tolerance_periods: float  # 0: the bundle's
    max_age: float
    event_delay: float
    reliability: str
    depth: int
    durability: str
    input_timeout: float
    diagnostics_period: float
    overlay_enabled: bool
    overlay_camera: int
    overlay_history: int


def check_choice(name: str, value: str) -> None:
    """Raise ConfigError when ``value`` is not one of the parameter's choices."""
    choices = BY_NAME[name].choices
    if choices is not None and value not in choices:
        raise ConfigError(f"parameter {name}={value!r} is not one of {list(choices)}")


def read(node) -> Settings:
    """Read and check the declared parameters of ``node``."""
    v = {p.name: node.get_parameter(p.name).value for p in PARAMS}
    for p in PARAMS:
        if p.choices is not None and not isinstance(p.default, list):  # list entries: checked below
            check_choice(p.name, v[p.name])
    if not v["checkpoint"]:
        raise ConfigError(
            "no checkpoint: set the 'checkpoint' parameter to a deploy bundle directory (written by "
            "`python -m ove_ros.training.convert`), e.g. `--ros-args -p checkpoint:=/path/to/bundle` (or "
            "checkpoint:=... with the launch file)"
        )
    cameras = tuple(v["camera_topics"])
    if not cameras or any(not t for t in cameras):
        raise ConfigError(f"camera_topics must list one non-empty topic per camera, got {list(cameras)}")
    if len(set(cameras)) != len(cameras):
        raise ConfigError(f"camera_topics has duplicates: {list(cameras)}")
    transports = tuple(v["camera_transports"])
    if len(transports) == 1:
        transports = transports * len(cameras)
    if len(transports) != len(cameras):
        raise ConfigError(
            f"camera_transports has {len(transports)} entries for {len(cameras)} camera_topics; give one "
            "entry for all cameras or one per camera"
        )
    for t in transports:
        if t not in TRANSPORTS:
            raise ConfigError(f"camera_transports entry {t!r} is not one of {list(TRANSPORTS)}")
    joints = tuple(v["joint_names"])
    if joints == ("",):
        joints = ()
    if any(not j for j in joints) or len(set(joints)) != len(joints):
        raise ConfigError(f"joint_names must be unique non-empty names (or ['']), got {list(joints)}")
    if not v["joint_states_topic"]:
        raise ConfigError("joint_states_topic is empty")
    if v["overlay.camera"] >= len(cameras):
        raise ConfigError(f"overlay.camera={v['overlay.camera']} but only {len(cameras)} camera_topics")
    return Settings(
        checkpoint=v["checkpoint"], device=v["device"], dtype=v["dtype"], compile=v["compile"],
        compile_mode=v["compile_mode"], cuda_graphs=v["cuda_graphs"], num_threads=v["num_threads"],
        resize=v["resize"],
        camera_topics=cameras, camera_transports=transports,
        joint_states_topic=v["joint_states_topic"], joint_names=joints, task=v["task"], n_step=v["n_step"],
        bootstrap_tolerance=v["bootstrap_tolerance"],
        advantage_threshold=v["advantage_threshold"], publish_distribution=v["publish_distribution"],
        frame_id=v["frame_id"], fps=v["sync.fps"], tolerance_periods=v["sync.tolerance_periods"],
        max_age=v["sync.max_age"], event_delay=v["sync.event_delay"],
        reliability=v["input_qos.reliability"], depth=v["input_qos.depth"],
        durability=v["input_qos.durability"], input_timeout=v["input_timeout"],
        diagnostics_period=v["diagnostics_period"], overlay_enabled=v["overlay.enabled"],
        overlay_camera=v["overlay.camera"], overlay_history=v["overlay.history"],
    )
