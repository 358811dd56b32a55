# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The live value estimator: synced camera + joint-state ticks in, values and n-step advantages out.

Threads. Input callbacks (one mutually exclusive group) only check messages and feed the latest-wins
synchronizer; a fired tick goes to the inference worker, the one thread that owns the model, and replaces a
tick still waiting there. The lifecycle services run in a reentrant group, so `configure`, which waits for
the worker to load and warm up the model, does not block get_state, parameter services or diagnostics.

Episodes. Ticks are numbered from 0 per episode. An EpisodeEvent START, a task change or the ~/reset service
flush the pending advantages with an unknown outcome and start a new episode; END flushes them with the
outcome. A clock jump or out-of-order stamp (bag loop, simulator reset) drops them. All episode state lives
on the worker, and episode changes are queued behind the ticks observed before them.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float32, Float64
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker

from ove_ros.msg import Advantage, EpisodeEvent, ValueEstimate
from ove_ros.overlay import draw_value_overlay
from ove_ros.ros import conversions as conv
from ove_ros.ros import params
from ove_ros.ros.conversions import ConversionError
from ove_ros.ros.diagnostics import ERROR, OK, WARN, InputStats, Throttle, Window, status
from ove_ros.ros.publishers import advantage_msg, marker_msg, value_msg
from ove_ros.ros.worker import Worker
from ove_ros.streaming import StreamingAdvantage
from ove_ros.sync import LatestWinsSynchronizer, SyncConfig
from ove_ros.values import RewardConfig

JOINTS = "joint_states"  # synchronizer stream name of the joint state
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE
DROP_COUNTERS = ("superseded", "dropped_stale", "dropped_unmatched", "dropped_reset")
IMAGE_TYPES = {"sensor_msgs/msg/Image": "raw", "sensor_msgs/msg/CompressedImage": "compressed"}


@dataclass
class TickJob:
    """One synced observation handed to the worker."""

    stamp: Time  # the newest input stamp, copied from the message that carried it
    frames: list  # Image / CompressedImage per camera, bundle order
    state: np.ndarray
    skew: float
    fired: float  # perf_counter() when the completing message arrived
    sync_s: float  # time spent in that message's callback


@dataclass
class Episode:
    """Worker-only state of the running episode."""

    task: str
    stream: StreamingAdvantage
    history: deque
    tick: int = 0
    stamps: dict[int, Time] = field(default_factory=dict)  # tick -> stamp, until its advantage is out
    last_positive: bool | None = None


class ValueEstimatorNode(LifecycleNodeMixin, Node):
    def __init__(self, **kwargs):
        Node.__init__(self, "value_estimator", **kwargs)
        LifecycleNodeMixin.__init__(self, enable_communication_interface=True,
                                    callback_group=ReentrantCallbackGroup())
        params.declare(self)
        self.exit_code: int | None = None
        self._autostarting = False  # a failed transition is then logged once, as the reason to exit
        self._inputs_group = MutuallyExclusiveCallbackGroup()
        self._timers_group = MutuallyExclusiveCallbackGroup()
        self._control_group = ReentrantCallbackGroup()
        self._throttle = Throttle(5.0)
        self._lock = threading.Lock()  # the synchronizer (input callbacks vs. diagnostics)
        self._worker = Worker(self._process_tick, self._on_worker_error)
        self._worker.start()
        self._reset_state()
        self.add_on_set_parameters_callback(self._check_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        if self.get_parameter("autostart").value:
            self._autostart_timer = self.create_timer(0.0, self._autostart,
                                                      callback_group=self._control_group)

    def _reset_state(self) -> None:
        """Everything configure creates and cleanup destroys."""
        self.settings: params.Settings | None = None
        self._engine = None
        self._meta = None
        self._bins = None
        self._reward: RewardConfig | None = None
        self._cameras: list[str] = []
        self._inputs: dict[str, InputStats] = {}
        self._subs: dict[str, object] = {}
        self._waiting_type: dict[str, str] = {}  # camera -> topic whose message type is not known yet
        self._pubs: dict[str, object] = {}
        self._timers: list = []
        self._service = None
        self._sync: LatestWinsSynchronizer | None = None
        self._joint_index: conv.JointIndex | None = None
        self._episode: Episode | None = None
        self._active = False
        self._activated_at = time.monotonic()
        self._last_error = ""
        self._last_error_wall = -math.inf
        self._counts = dict.fromkeys(("ticks", "dropped_busy", "errors", "clock_resets", "advantages",
                                      "episodes"), 0)
        # Seconds per tick (per message for "callback"), over the last 1000.
        self._win = {k: Window() for k in ("model", "e2e", "wait", "overhead", "decode", "publish",
                                           "callback")}
        self._diag_prev = (time.monotonic(), 0)  # wall time and ticks at the last diagnostics

    # ------------------------------------------------------------------------------------------- lifecycle

    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self._autostarting = True
        for name, trigger in (("configure", self.trigger_configure), ("activate", self.trigger_activate)):
            if trigger() != SUCCESS:
                self.get_logger().fatal(f"{self._last_error or name + ' failed'}; exiting")
                self.exit_code = 1
                return
        self._autostarting = False

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            s = params.read(self)
        except params.ConfigError as exc:
            return self._fail(f"cannot configure: {exc}")
        # Imported here: the bundle code pulls in torch + transformers (seconds), which a parameter error
        # should not wait for.
        from ove_ros.bundle import BundleError, read_bundle_config

        try:
            config, meta = read_bundle_config(s.checkpoint)
            s = self._check_against_bundle(s, meta)
        except (params.ConfigError, BundleError) as exc:
            return self._fail(f"cannot configure: {exc}")
        self.get_logger().info(f"loading {s.checkpoint} on the inference thread ...")
        try:
            describe = self._worker.submit(partial(self._load, s)).result()
        except Exception as exc:  # model/engine errors name their own cause
            return self._fail(f"cannot load the model from {s.checkpoint}: {type(exc).__name__}: {exc}")
        self.settings, self._meta, self._bins = s, meta, config.bins
        self._reward = RewardConfig.from_dict(meta.reward)
        self._cameras = list(meta.camera_names)
        self._joint_index = conv.JointIndex(s.joint_names)
        self._inputs = {cam: InputStats(topic, s.camera_transports[i])
                        for i, (cam, topic) in enumerate(zip(self._cameras, s.camera_topics, strict=True))}
        self._inputs[JOINTS] = InputStats(s.joint_states_topic, "joint_states")
        # fresh="all": one tick per new camera frame set, not one per (faster) joint state.
        self._sync = LatestWinsSynchronizer(SyncConfig(streams=[*self._cameras, JOINTS], slop=s.slop,
                                                       max_age=s.max_age, max_rate=s.max_rate, fresh="all"))
        self._create_outputs(s)
        self._worker.submit(partial(self._new_episode, s.task, "configure", flush=False)).result()
        self.get_logger().info(
            f"configured: {len(self._cameras)} cameras {self._cameras} <- {list(s.camera_topics)}, "
            f"{len(s.joint_names)} joints <- {s.joint_states_topic}, {describe}")
        return SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._lock:
            self._sync.reset("activate")
        for st in self._inputs.values():
            st.last_wall, st.timed_out = None, False
        self._activated_at = time.monotonic()
        self._create_inputs(self.settings)
        self._active = True
        self._worker.submit(partial(self._new_episode, self._episode_task(), "activate", flush=False))
        self.get_logger().info("active: publishing values")
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._destroy_inputs()
        self._worker.submit(partial(self._drop_episode, "deactivate")).result()
        self.get_logger().info("inactive: inputs unsubscribed, model kept loaded")
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._destroy_inputs()
        self._destroy_outputs()
        self._worker.submit(self._unload).result()
        self._reset_state()
        self.get_logger().info("cleaned up: model freed")
        return SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        return self.on_cleanup(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error in a transition from {state.label}; cleaning up")
        try:
            self.on_cleanup(state)
        except Exception as exc:
            self.get_logger().error(f"cleanup after the error failed: {exc}")
            return FAILURE
        return SUCCESS

    def _fail(self, message: str) -> TransitionCallbackReturn:
        self._last_error = message
        if not self._autostarting:  # otherwise _autostart logs it, once
            self.get_logger().error(message)
        return FAILURE

    def _check_against_bundle(self, s: params.Settings, meta) -> params.Settings:
        cams = meta.camera_names
        if len(s.camera_topics) != len(cams):
            raise params.ConfigError(
                f"camera_topics lists {len(s.camera_topics)} topic(s) {list(s.camera_topics)} but the "
                f"bundle {s.checkpoint} was trained with {len(cams)} camera(s) {cams}: set camera_topics to "
                "one topic per camera, in that order")
        joints = s.joint_names or tuple(meta.joint_names)
        if len(joints) != len(meta.joint_names):
            raise params.ConfigError(
                f"joint_names has {len(joints)} names but the model takes {len(meta.joint_names)} joints "
                f"(bundle order: {meta.joint_names}); list one name per model joint or use [''] for the "
                "bundle's names")
        task = s.task or _default_task(meta, s.task)
        if s.n_step != meta.n_step:
            self.get_logger().warning(
                f"n_step={s.n_step} but the bundle's thresholds were computed with n_step={meta.n_step}: "
                "online labels will not match the offline ones")
        return replace(s, joint_names=joints, task=task)

    def _load(self, s: params.Settings) -> dict:
        """Worker thread: build and warm up the engine (the thread then owns its device context)."""
        from ove_ros.engine import EngineConfig, InferenceEngine

        cfg = EngineConfig(device=s.device, dtype=s.dtype, compile=s.compile, compile_mode=s.compile_mode,
                           cuda_graphs=s.cuda_graphs, num_threads=s.num_threads)
        engine = InferenceEngine.from_bundle(s.checkpoint, cfg)
        engine.warmup()
        self._engine = engine
        return engine.describe()

    def _unload(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None and engine.device.type == "cuda":
            import torch

            del engine
            torch.cuda.empty_cache()

    # ---------------------------------------------------------------------------------- inputs / outputs

    def _create_outputs(self, s: params.Settings) -> None:
        reliable = QoSProfile(depth=10)
        self._pubs = {
            "value": self.create_publisher(ValueEstimate, "~/value", reliable),
            # END flushes up to n_step records at once.
            "advantage": self.create_publisher(Advantage, "~/advantage",
                                               QoSProfile(depth=max(10, s.n_step + 1))),
            "value_scalar": self.create_publisher(Float32, "~/value_scalar", reliable),
            "latency": self.create_publisher(Float64, "~/latency", reliable),
            "overlay": self.create_publisher(Image, "~/overlay", QoSProfile(depth=2)),
            "marker": self.create_publisher(Marker, "~/marker", reliable),
            "diagnostics": self.create_publisher(DiagnosticArray, "/diagnostics", reliable),
        }
        self._service = self.create_service(Trigger, "~/reset", self._on_reset,
                                            callback_group=self._control_group)
        self._timers = [
            self.create_timer(s.diagnostics_period, self._publish_diagnostics,
                              callback_group=self._timers_group),
            self.create_timer(0.5, self._watch_inputs, callback_group=self._timers_group),
        ]

    def _destroy_outputs(self) -> None:
        for timer in self._timers:
            self.destroy_timer(timer)
        for pub in self._pubs.values():
            self.destroy_publisher(pub)
        if self._service is not None:
            self.destroy_service(self._service)
        self._timers, self._pubs, self._service = [], {}, None

    def _input_qos(self, s: params.Settings) -> QoSProfile:
        reliable = s.reliability == "reliable"
        reliability = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=s.depth, reliability=reliability)

    def _events(self, stream: str) -> SubscriptionEventCallbacks:
        def incompatible_qos(info, stream=stream):
            self._input_problem(stream, "qos", "a publisher's QoS is incompatible (policy "
                                f"{info.last_policy_kind}); set input_qos.reliability to match it")

        def incompatible_type(info, stream=stream):
            self._input_problem(stream, "type", "a publisher uses another message type; check "
                                "camera_transports (raw = sensor_msgs/Image, compressed = CompressedImage)")

        return SubscriptionEventCallbacks(incompatible_qos=incompatible_qos,
                                          incompatible_type=incompatible_type)

    def _create_inputs(self, s: params.Settings) -> None:
        qos = self._input_qos(s)
        self._waiting_type = {cam: topic for cam, topic in zip(self._cameras, s.camera_topics, strict=True)}
        self._subscribe_cameras()
        self._subs[JOINTS] = self.create_subscription(
            JointState, s.joint_states_topic, self._on_joints, qos, callback_group=self._inputs_group,
            event_callbacks=self._events(JOINTS))
        self._subs["events"] = self.create_subscription(
            EpisodeEvent, "episode_events", self._on_episode_event, QoSProfile(depth=10),
            callback_group=self._inputs_group)

    def _subscribe_cameras(self) -> None:
        """Subscribe each camera whose transport is configured or known from the ROS graph."""
        graph = None
        for cam, topic in list(self._waiting_type.items()):
            st = self._inputs[cam]
            transport = self.settings.camera_transports[self._cameras.index(cam)]
            if transport == "auto":
                if graph is None:
                    graph = dict(self.get_topic_names_and_types())
                types = graph.get(self.resolve_topic_name(topic), [])
                found = [IMAGE_TYPES[t] for t in types if t in IMAGE_TYPES]
                if found:
                    transport = found[0]
                elif topic.rstrip("/").endswith("compressed"):
                    transport = "compressed"
                else:
                    continue  # no publisher yet: retried by the input watchdog
            msg_type = CompressedImage if transport == "compressed" else Image
            self._subs[cam] = self.create_subscription(
                msg_type, topic, partial(self._on_camera, stream=cam), self._input_qos(self.settings),
                callback_group=self._inputs_group, event_callbacks=self._events(cam))
            st.kind = transport
            del self._waiting_type[cam]
            self.get_logger().info(f"camera {cam} <- {self.resolve_topic_name(topic)} ({msg_type.__name__})")

    def _destroy_inputs(self) -> None:
        for sub in self._subs.values():
            self.destroy_subscription(sub)
        self._subs, self._waiting_type = {}, {}

    # ---------------------------------------------------------------------------------- input callbacks

    def _on_camera(self, msg, stream: str) -> None:
        start = time.perf_counter()
        if self._received(stream):
            try:
                conv.check_frame(msg)
                _check_stamp(msg.header.stamp)
            except ConversionError as exc:
                return self._reject(stream, exc)
            self._offer(stream, msg.header.stamp, msg, start)

    def _on_joints(self, msg: JointState) -> None:
        start = time.perf_counter()
        if self._received(JOINTS):
            try:
                _check_stamp(msg.header.stamp)
                state = self._joint_index.vector(msg)
            except ConversionError as exc:
                return self._reject(JOINTS, exc)
            self._offer(JOINTS, msg.header.stamp, state, start)

    def _received(self, stream: str) -> bool:
        st = self._inputs[stream]
        st.received += 1
        st.last_wall = time.monotonic()
        return self._active

    def _reject(self, stream: str, exc: Exception) -> None:
        st = self._inputs[stream]
        st.rejected += 1
        # Throttled per kind of error (its leading words), so a second, different problem still shows.
        kind = re.match(r"[A-Za-z ]*", str(exc)).group(0).strip()
        self._input_problem(stream, f"reject:{kind}", f"message dropped: {exc}")

    def _input_problem(self, stream: str, kind: str, problem: str) -> None:
        """Count and log (throttled per input and kind) a problem with one input."""
        st = self._inputs[stream]
        st.last_error = problem
        st.problems += 1
        self._throttle(self.get_logger().warning, f"{kind}:{stream}",
                       f"{self.resolve_topic_name(st.topic)}: {problem}")

    def _offer(self, stream: str, stamp: Time, payload, start: float) -> None:
        t = conv.stamp_to_sec(stamp)
        now = self.get_clock().now().nanoseconds * 1e-9
        max_age = self.settings.max_age
        if max_age > 0 and now - t > max_age:
            self._input_problem(stream, "stale", f"message is {now - t:.3f} s old (> sync.max_age={max_age}) "
                                "and is dropped; if the publisher's clock differs from this node's "
                                "(use_sim_time?), fix the clocks or set sync.max_age to 0")
        with self._lock:
            result = self._sync.add(stream, t, (stamp, payload), now=now)
        if result is not None:
            for event in result.events:
                self._counts["clock_resets"] += 1
                self.get_logger().warning(f"synchronizer reset: {event.reason}")
                self._worker.submit(partial(self._drop_episode, "synchronizer reset"))
            if result.tick is not None:
                tick = result.tick
                newest = max(tick.stamps, key=tick.stamps.get)
                fired = time.perf_counter()
                job = TickJob(stamp=tick.payloads[newest][0],
                              frames=[tick.payloads[c][1] for c in self._cameras],
                              state=tick.payloads[JOINTS][1], skew=tick.skew, fired=fired,
                              sync_s=fired - start)
                if self._worker.submit_tick(job):
                    self._counts["dropped_busy"] += 1
        self._win["callback"].add(time.perf_counter() - start)

    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        if msg.event == EpisodeEvent.START:
            if msg.task and msg.task != self.get_parameter("task").value:
                # The parameter callback starts the episode, so `ros2 param get` shows the task too.
                self.set_parameters([Parameter("task", value=msg.task)])
            else:
                task = msg.task or self._episode_task()
                self._worker.submit(partial(self._new_episode, task, "START event"))
        elif msg.event == EpisodeEvent.END:
            outcomes = {EpisodeEvent.OUTCOME_SUCCESS: True, EpisodeEvent.OUTCOME_FAILURE: False}
            success = outcomes.get(msg.outcome)
            self._worker.submit(partial(self._end_episode, success, "END event"))
        else:
            self._throttle(self.get_logger().warning, "event",
                           f"ignoring EpisodeEvent with event={msg.event}")

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        future = self._worker.submit(partial(self._end_episode, None, "~/reset service"))
        try:
            flushed = future.result(timeout=10.0)
        except Exception as exc:
            response.success, response.message = False, f"reset failed: {exc}"
            return response
        response.success = True
        response.message = f"episode reset; {flushed} pending advantages flushed with an unknown outcome"
        return response

    # ------------------------------------------------------------------------------------------ parameters

    def _check_parameters(self, changed: list[Parameter]) -> SetParametersResult:
        for p in changed:
            spec = params.BY_NAME.get(p.name)
            if spec is None:
                continue
            if spec.choices is not None:
                values = p.value if isinstance(p.value, list) else [p.value]
                bad = [v for v in values if v not in spec.choices]
                if bad:
                    return SetParametersResult(successful=False,
                                               reason=f"{p.name}: {bad} not in {list(spec.choices)}")
            if self.settings is not None and not spec.dynamic:
                return SetParametersResult(
                    successful=False,
                    reason=f"{p.name} is read at configure: deactivate + cleanup, set it, configure again")
            if p.name == "overlay.camera" and self.settings is not None and p.value >= len(self._cameras):
                return SetParametersResult(successful=False, reason=f"only {len(self._cameras)} cameras")
        return SetParametersResult(successful=True)

    def _apply_parameters(self, changed: list[Parameter]) -> None:
        s = self.settings
        if s is None:
            return
        names = {p.name: p.value for p in changed}
        self.settings = replace(
            s, publish_distribution=names.get("publish_distribution", s.publish_distribution),
            frame_id=names.get("frame_id", s.frame_id),
            advantage_threshold=names.get("advantage_threshold", s.advantage_threshold),
            overlay_enabled=names.get("overlay.enabled", s.overlay_enabled),
            overlay_camera=names.get("overlay.camera", s.overlay_camera),
            overlay_history=names.get("overlay.history", s.overlay_history))
        if "task" in names:
            task = names["task"] or _default_task(self._meta, names["task"])
            self._worker.submit(partial(self._new_episode, task, "task parameter changed"))
        elif {"advantage_threshold", "overlay.history"} & names.keys():
            self._worker.submit(self._apply_episode_settings)

    def _apply_episode_settings(self) -> None:
        """Worker: a new fallback threshold or sparkline length for the running episode."""
        ep, s = self._episode, self.settings
        if ep is None:
            return
        ep.stream.set_threshold(self._meta.advantage_thresholds.get(ep.task, s.advantage_threshold))
        ep.history = deque(ep.history, maxlen=s.overlay_history)

    # ---------------------------------------------------------------------------- worker: ticks, episodes

    def _episode_task(self) -> str:
        return self._episode.task if self._episode is not None else self.settings.task

    def _new_episode(self, task: str, reason: str, flush: bool = True) -> int:
        flushed = self._end_episode(None, reason) if flush and self._episode is not None else 0
        s, meta = self.settings, self._meta
        if task not in meta.task_normalizers:
            self.get_logger().warning(
                f"task {task!r} is not in the bundle (known: {sorted(meta.task_normalizers)}); using "
                f"default_scale={meta.default_scale}")
        threshold = meta.advantage_thresholds.get(task, s.advantage_threshold)
        stream = StreamingAdvantage(s.n_step, meta.scale_for(task), self._reward, threshold)
        self._episode = Episode(task=task, stream=stream, history=deque(maxlen=s.overlay_history))
        self._counts["episodes"] += 1
        self.get_logger().info(f"new episode ({reason}): task {task!r}, scale {stream.scale:g}, "
                               f"threshold {threshold:g}, n_step {s.n_step}")
        return flushed

    def _end_episode(self, success: bool | None, reason: str) -> int:
        ep = self._episode
        records = ep.stream.end_episode(success)
        self._publish_advantages(ep, records)
        outcome = {True: "success", False: "failure", None: "unknown"}[success]
        if ep.tick:
            self.get_logger().info(f"episode ended ({reason}, outcome {outcome}) after {ep.tick} ticks; "
                                   f"{len(records)} advantages flushed")
        ep.tick, ep.last_positive = 0, None
        ep.stamps.clear()
        ep.history.clear()
        return len(records)

    def _drop_episode(self, reason: str) -> None:
        ep = self._episode
        if ep is None:
            return
        dropped = ep.stream.reset()
        if dropped:
            self.get_logger().warning(f"{dropped} pending advantages dropped ({reason})")
        ep.tick, ep.last_positive = 0, None
        ep.stamps.clear()

    def _process_tick(self, job: TickJob) -> None:
        engine, ep, s = self._engine, self._episode, self.settings
        if engine is None or not self._active:
            return
        t0 = time.perf_counter()
        images = []
        for cam, msg in zip(self._cameras, job.frames, strict=True):
            try:
                images.append(conv.to_rgb(msg))
            except ConversionError as exc:
                return self._reject(cam, exc)
            self._note_shape(cam, images[-1].shape[:2])
        t1 = time.perf_counter()
        out = engine.infer(images, job.state, ep.task)
        t2 = time.perf_counter()
        if not self._active:
            return  # deactivated while the model ran
        # The published float32 value is the one the advantages use, so they can be recomputed offline.
        value = float(np.float32(out.value))
        tick = ep.tick
        ep.tick += 1
        ep.stamps[tick] = job.stamp
        ep.history.append(value)
        records = ep.stream.push(tick, conv.stamp_to_sec(job.stamp), value)
        pubs = self._pubs
        pubs["value"].publish(value_msg(job.stamp, s.frame_id, ep.task, tick, out, self._bins, job.skew,
                                        s.publish_distribution))
        self._publish_advantages(ep, records)
        # The views for people (plots, rviz) are built only while someone listens.
        if pubs["value_scalar"].get_subscription_count():
            pubs["value_scalar"].publish(Float32(data=value))
        if pubs["marker"].get_subscription_count():
            pubs["marker"].publish(marker_msg(job.stamp, s.frame_id, value, out.std, ep.task, self._bins))
        if s.overlay_enabled and pubs["overlay"].get_subscription_count():
            cam = s.overlay_camera
            drawn = draw_value_overlay(images[cam], value, ep.history, ep.last_positive, ep.task[:40],
                                       self._bins.v_min, self._bins.v_max)
            pubs["overlay"].publish(conv.rgb_to_image(drawn, job.stamp, job.frames[cam].header.frame_id))
        t3 = time.perf_counter()
        pubs["latency"].publish(Float64(data=t3 - job.fired))
        self._counts["ticks"] += 1
        for key, seconds in (("model", t2 - t1), ("e2e", t3 - job.fired), ("wait", t0 - job.fired),
                             ("decode", t1 - t0),
                             ("publish", t3 - t2), ("overhead", job.sync_s + (t1 - t0) + (t3 - t2))):
            self._win[key].add(seconds)

    def _publish_advantages(self, ep: Episode, records) -> None:
        pub = self._pubs.get("advantage")
        for rec in records:
            stamp = ep.stamps.pop(rec.tick)
            ep.last_positive = rec.positive
            if pub is not None:
                pub.publish(advantage_msg(rec, stamp, self.settings.frame_id, ep.task))
        self._counts["advantages"] += len(records)

    def _note_shape(self, cam: str, shape: tuple[int, int]) -> None:
        st = self._inputs[cam]
        if st.shape is None:
            st.shape = shape
            size = self._engine.model.config.image_size
            self.get_logger().info(f"camera {cam}: {shape[1]}x{shape[0]} frames, resized to {size}x{size} "
                                   "by the model's preprocessing (as in training)")
        elif st.shape != shape:
            self._input_problem(cam, "size", f"frame size changed from {st.shape[1]}x{st.shape[0]} to "
                                     f"{shape[1]}x{shape[0]}; frames are still resized for the model")

    def _on_worker_error(self, exc: Exception) -> None:
        if not self.context.ok():
            return  # shutting down: publishers are gone
        self._counts["errors"] += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._last_error_wall = time.monotonic()
        self._throttle(self.get_logger().error, "worker", f"tick failed: {self._last_error}")

    # ---------------------------------------------------------------------------------- watchdog, diagnostics

    def _watch_inputs(self) -> None:
        if not self._active:
            return
        if self._waiting_type:
            self._subscribe_cameras()
        now = time.monotonic()
        s = self.settings
        for stream, st in self._inputs.items():
            silent = now - (st.last_wall if st.last_wall is not None else self._activated_at)
            was_out, st.timed_out = st.timed_out, silent > s.input_timeout
            if was_out and not st.timed_out:
                self.get_logger().info(f"{self.resolve_topic_name(st.topic)} delivers again")
            if not st.timed_out:
                continue
            topic = self.resolve_topic_name(st.topic)
            if stream in self._waiting_type:
                hint = ("no publisher yet, so its type (Image or CompressedImage) is unknown; it is "
                        "subscribed when one appears (or set camera_transports)")
            elif st.received:
                hint = (f"it delivered {st.received} messages before: the publisher stopped or stalls "
                        "(driver crashed, device unplugged, process paused?)")
            elif self.count_publishers(topic) == 0:
                hint = ("no publisher: is the driver running and the topic name right (remap it or set "
                        "camera_topics / joint_states_topic)?")
            else:
                hint = (f"publishers exist but nothing arrives: check their QoS (this node subscribes "
                        f"{s.reliability}, depth {s.depth}; see input_qos.reliability) and the message type")
            self._throttle(self.get_logger().warning, f"timeout:{stream}",
                           f"no message on {topic} for {silent:.1f} s (input_timeout={s.input_timeout}): "
                           f"{hint}")

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            sync = self._sync.stats()
        prev_wall, prev_ticks = self._diag_prev
        rejected = sum(st.rejected for st in self._inputs.values())
        rate = (self._counts["ticks"] - prev_ticks) / max(1e-6, now - prev_wall)
        self._diag_prev = (now, self._counts["ticks"])
        s, hw = self.settings, (str(self._engine.device) if self._engine is not None else "unloaded")
        name = self.get_fully_qualified_name()
        statuses, problems = [], []
        for stream, st in self._inputs.items():
            counts = sync["streams"][stream]
            dropped = sum(counts[k] for k in DROP_COUNTERS)
            new_problems = st.problems - st.problems_reported
            st.problems_reported = st.problems
            level, message = OK, "ok"
            if st.timed_out:
                level, message = WARN, f"no message for more than {s.input_timeout} s"
            elif new_problems:
                level, message = WARN, f"{new_problems} problem(s), last: {st.last_error}"
            if level != OK:
                problems.append(f"{st.topic}: {message}")
            statuses.append(status(f"{name}: input {self.resolve_topic_name(st.topic)}", level, message, hw, {
                "type": st.kind, "received": st.received, "synced": counts["used"], "dropped": dropped,
                "rejected": st.rejected, "stale": counts["dropped_stale"],
                "unmatched": counts["dropped_unmatched"], "last_error": st.last_error,
                "silent_s": (now - st.last_wall) if st.last_wall is not None else math.nan}))
        level = max((ERROR if now - self._last_error_wall < 2 * s.diagnostics_period else OK),
                    WARN if problems else OK)
        if not self._active:
            summary = "inactive"
        elif level == ERROR:
            summary = f"tick failed: {self._last_error}"
        else:
            summary = "; ".join(problems) if problems else f"ok, {rate:.1f} ticks/s"
        p = {k: [v * 1e3 for v in self._win[k].percentiles(50, 99)] for k in self._win}
        totals = sync["totals"]
        values = {
            "state": "active" if self._active else "inactive", "device": hw, "model": s.checkpoint,
            "task": self._episode_task(), "episode_tick": self._episode.tick if self._episode else 0,
            "ticks": self._counts["ticks"], "rate_hz": rate,
            "latency_model_p50_ms": p["model"][0], "latency_model_p99_ms": p["model"][1],
            "latency_e2e_p50_ms": p["e2e"][0], "latency_e2e_p99_ms": p["e2e"][1],
            # Time a tick waited for the worker: at most about one model call when nothing queues up.
            "latency_wait_p50_ms": p["wait"][0], "latency_wait_p99_ms": p["wait"][1],
            "overhead_p50_ms": p["overhead"][0], "overhead_p99_ms": p["overhead"][1],
            "overhead_mean_ms": self._win["overhead"].mean() * 1e3,
            "decode_p50_ms": p["decode"][0], "publish_p50_ms": p["publish"][0],
            "callback_p50_ms": p["callback"][0], "callback_mean_ms": self._win["callback"].mean() * 1e3,
            "dropped_ticks": self._counts["dropped_busy"],
            "sync_misses": totals["dropped_unmatched"] + totals["dropped_stale"],
            "sync_resets": sync["resets"], "clock_resets": self._counts["clock_resets"],
            "rejected_inputs": rejected, "advantages": self._counts["advantages"],
            "episodes": self._counts["episodes"], "errors": self._counts["errors"],
            "last_error": self._last_error,
        }
        statuses.insert(0, status(f"{name}: value estimator", level, summary, hw, values))
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._pubs["diagnostics"].publish(msg)


def _default_task(meta, task: str) -> str:
    """``task``, or the bundle's first task when it is empty."""
    if task:
        return task
    if not meta.task_normalizers:
        raise params.ConfigError("no task: set the 'task' parameter (the bundle names no tasks)")
    return next(iter(meta.task_normalizers))


def _check_stamp(stamp: Time) -> None:
    if stamp.sec == 0 and stamp.nanosec == 0:
        raise ConversionError("header.stamp is 0: the publisher must stamp messages with the sensor time")


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = ValueEstimatorNode()
    # Two threads serve inputs and timers while a third may wait in configure; a fourth for spare.
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        while rclpy.ok() and node.exit_code is None:
            executor.spin_once(timeout_sec=0.2)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node._active = False
        node._worker.stop()
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return node.exit_code or 0
