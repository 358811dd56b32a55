# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The live value estimator: camera + joint-state inputs on the dataset's frame grid in, values and n-step
advantages out.

Threads. Input callbacks (each subscription in its own mutually exclusive group: ``inputs.own_group``)
only check messages and feed the frame grid (``ove_ros.frame_grid``), which decides, by the bag converter's
rule, which grid ticks are dataset frames; a frame goes to the inference worker, the one thread that owns
the model, and replaces a frame still waiting there (the replaced frame is a gap, not a shift). Episode
starts and ends travel the same queue behind the frames before them. The lifecycle services run in a
reentrant group, so `configure`, which waits for the worker to load and warm up the model, does not block
get_state, parameter services or diagnostics.

Episodes follow the converter: an EpisodeEvent START begins one at its stamp, END ends it with the outcome
once every frame at or before the END stamp is decided, and frames in between episodes are valued without
advantages. Without events an episode starts when every input has delivered. The ~/reset service, a task
change and a clock jump end the episode without an outcome (truncated, never scored as a success).

This file is the lifecycle, the wiring and the tick; the decisions live beside it: ``inputs`` (QoS, callback
groups, camera transport, message checks, watchdog hints), ``contract`` (settings against the bundle),
``episode_tracker`` (episodes and advantages on the worker), ``outputs`` (topics, QoS, the views for
people), ``publishers`` (output messages), ``diagnostics_report`` (the /diagnostics content), ``worker``
(the model's thread), ``params`` (the parameters).
"""

from __future__ import annotations

import math
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import InvalidHandle
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Future
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64
from std_srvs.srv import Trigger

from ove_ros.frame_grid import EpisodeEnd, EpisodeStart, FrameGrid, GridFrame
from ove_ros.msg import EpisodeEvent
from ove_ros.ros import contract, params
from ove_ros.ros import conversions as conv
from ove_ros.ros.callback_gate import CallbackGate, gated
from ove_ros.ros.conversions import ConversionError
from ove_ros.ros.diagnostics import InputStats, Throttle, Window
from ove_ros.ros.diagnostics_report import WINDOWS, DiagnosticsSnapshot, InputSnapshot, diagnostic_array
from ove_ros.ros.episode_tracker import Episode, EpisodeTracker
from ove_ros.ros.inputs import (
    JOINTS,
    camera_transport,
    check_stamp,
    event_qos,
    input_qos,
    own_group,
    reject_kind,
    timeout_hint,
)
from ove_ros.ros.outputs import Outputs
from ove_ros.ros.publishers import advantage_msg, value_msg
from ove_ros.ros.worker import Worker
from ove_ros.streaming import AdvantageRecord
from ove_ros.values import RewardConfig

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


@dataclass
class TickJob:
    """One dataset frame handed to the worker."""

    episode: int  # the frame grid's episode serial
    index: int | None  # frame index in the episode; None between episodes
    stamp: Time  # the frame's grid time
    frames: list  # Image / CompressedImage per camera, bundle order
    state: np.ndarray
    skew: float  # spread of the input stamps used, seconds
    fired: float  # perf_counter() when the completing message arrived
    sync_s: float  # time spent in that message's callback
    final: int = 0  # the episode's frames no late END can take back (GridFrame.final)


class ValueEstimatorNode(LifecycleNodeMixin, Node):
    def __init__(self, **kwargs):
        Node.__init__(self, "value_estimator", **kwargs)
        LifecycleNodeMixin.__init__(self, enable_communication_interface=True,
                                    callback_group=ReentrantCallbackGroup())
        params.declare(self)
        self.exit_code: int | None = None
        self.exited = Future()  # done when the node must exit (a failed autostart)
        self._autostarting = False  # a failed transition is then logged once, as the reason to exit
        self._timers_group = MutuallyExclusiveCallbackGroup()
        self._control_group = ReentrantCallbackGroup()
        self._throttle = Throttle(5.0)
        self._lock = threading.Lock()  # the frame grid (input callbacks, events, services, diagnostics)
        self._gate = CallbackGate()  # open from configure to cleanup: what the callbacks read exists
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
        self._image_specs: list = []
        self._inputs: dict[str, InputStats] = {}
        self._subs: dict[str, object] = {}
        self._waiting_type: dict[str, str] = {}  # camera -> topic whose message type is not known yet
        self._out: Outputs | None = None  # the publishers
        self._timers: list = []
        self._service = None
        self._grid: FrameGrid | None = None
        self._contract: dict = {}  # fps, tolerance_periods, n_step in force, and where each came from
        self._joint_index: conv.JointIndex | None = None
        self._tracker: EpisodeTracker | None = None  # the worker's episode bookkeeping
        self._event_task: str | None = None
        self._active = False
        self._activated_at = time.monotonic()
        self._last_error = ""
        self._last_error_wall = -math.inf
        self._counts = dict.fromkeys(("ticks", "dropped_busy", "errors", "clock_resets"), 0)
        # Seconds per tick (per message for "callback"), over the last 1000.
        self._win = {k: Window() for k in WINDOWS}
        self._diag_prev = (time.monotonic(), 0)  # wall time and ticks at the last diagnostics

    # ------------------------------------------------------------------------------------------- lifecycle

    def _autostart(self) -> None:
        self._autostart_timer.cancel()
        self._autostarting = True
        for name, trigger in (("configure", self.trigger_configure), ("activate", self.trigger_activate)):
            if trigger() != SUCCESS:
                self.get_logger().fatal(f"{self._last_error or name + ' failed'}; exiting")
                self.exit_code = 1
                self.exited.set_result(1)
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
            s, self._contract = contract.resolve(s, meta, self.get_logger().warning)
        except (params.ConfigError, BundleError) as exc:
            return self._fail(f"cannot configure: {exc}")
        self.get_logger().info(f"loading {s.checkpoint} on the inference thread ...")
        try:
            describe = self._worker.submit(partial(self._load, s)).result()
        except Exception as exc:  # model/engine errors name their own cause
            return self._fail(f"cannot load the model from {s.checkpoint}: {type(exc).__name__}: {exc}")
        self.settings, self._meta, self._bins = s, meta, config.bins
        self._reward = RewardConfig.from_dict(meta.reward)
        self._tracker = EpisodeTracker(meta, self._reward, self._publish_advantage, self.get_logger())
        if self._reward.precomputed_rewards:
            self.get_logger().warning(
                "the bundle was trained on precomputed per-frame rewards, which a live robot does not "
                "publish: values only, no advantages (label advantages offline with "
                "ove_ros.training.advantage)")
        self._cameras = list(meta.camera_names)
        # Each camera's frames are prepared as the dataset's were (bundle contract); none recorded: as is.
        from ove_ros.images import ImageError, specs_from_dict

        try:
            specs = specs_from_dict(meta.images) if meta.images else {}
        except ImageError as exc:
            return self._fail(f"cannot configure: the bundle's image preprocessing is invalid: {exc}")
        self._image_specs = [specs.get(cam) for cam in self._cameras]
        self._joint_index = conv.JointIndex(s.joint_names)
        self._inputs = {cam: InputStats(topic, s.camera_transports[i])
                        for i, (cam, topic) in enumerate(zip(self._cameras, s.camera_topics, strict=True))}
        self._inputs[JOINTS] = InputStats(s.joint_states_topic, "joint_states")
        # Any stamp going back by more than the tolerance is a clock jump (bag loop, simulator reset).
        self._grid = FrameGrid([*self._cameras, JOINTS], s.fps, s.tolerance_periods,
                               max_wait_s=s.max_age or 3600.0, clock_jump_s=s.tolerance_periods / s.fps,
                               event_delay_s=s.event_delay)
        self._create_outputs(s)
        self._gate.open()
        self.get_logger().info(
            f"configured: {len(self._cameras)} cameras {self._cameras} <- {list(s.camera_topics)}, "
            f"{len(s.joint_names)} joints <- {s.joint_states_topic}, frame grid {s.fps:g} fps "
            f"(tolerance {s.tolerance_periods:g} periods), n_step {s.n_step} frames "
            f"({contract.contract_text(self._contract)}), {describe}")
        return SUCCESS

    def flush_truncated(self, reason: str) -> None:
        """End the running episode without an outcome and publish its advantages (truncated)."""
        if self._grid is None or not self._active:
            return
        with self._lock:
            items = self._grid.restart(reason)
        self._dispatch(items)
        try:
            self._worker.submit(lambda: None).result(timeout=5.0)
        except Exception as exc:
            self.get_logger().warning(f"{reason}: the last advantages were not flushed: {exc}")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        with self._lock:
            items = self._grid.restart("activate", task=self.settings.task)
        self._dispatch(items)
        for st in self._inputs.values():
            st.last_wall, st.timed_out = None, False
        self._activated_at = time.monotonic()
        self._create_inputs(self.settings)
        self._active = True
        self.get_logger().info("active: publishing values")
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._destroy_inputs()
        with self._lock:
            items = self._grid.restart("deactivate", task=self.settings.task)
        self._dispatch(items)
        self._worker.submit(lambda: None).result()  # the truncated episode's advantages are out
        self.get_logger().info("inactive: inputs unsubscribed, model kept loaded")
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._destroy_inputs()
        self._destroy_outputs()
        # Callbacks the executor took before the entities went may still run: let them finish first.
        if not self._gate.close(timeout=30.0):
            self.get_logger().warning("cleanup: input or timer callbacks still running after 30 s")
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

    def _load(self, s: params.Settings) -> dict:
        """Worker thread: build and warm up the engine (the thread then owns its device context)."""
        from ove_ros.engine import EngineConfig, InferenceEngine

        cfg = EngineConfig(device=s.device, dtype=s.dtype, compile=s.compile, compile_mode=s.compile_mode,
                           cuda_graphs=s.cuda_graphs, num_threads=s.num_threads, resize=s.resize)
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
        self._out = Outputs(self, s.n_step)
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
        if self._out is not None:
            self._out.destroy()
        if self._service is not None:
            self.destroy_service(self._service)
        self._timers, self._out, self._service = [], None, None

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
        self._waiting_type = {cam: topic for cam, topic in zip(self._cameras, s.camera_topics, strict=True)}
        self._subscribe_cameras()
        self._subs[JOINTS] = self.create_subscription(
            JointState, s.joint_states_topic, self._on_joints, input_qos(s), callback_group=own_group(),
            event_callbacks=self._events(JOINTS))
        self._subs["events"] = self.create_subscription(
            EpisodeEvent, "episode_events", self._on_episode_event, event_qos(s), callback_group=own_group())

    def _subscribe_cameras(self) -> None:
        """Subscribe each camera whose transport is configured or known from the ROS graph."""
        graph = None
        for cam, topic in list(self._waiting_type.items()):
            st = self._inputs[cam]
            configured = self.settings.camera_transports[self._cameras.index(cam)]
            types = []
            if configured == "auto":
                if graph is None:
                    graph = dict(self.get_topic_names_and_types())
                types = graph.get(self.resolve_topic_name(topic), [])
            transport = camera_transport(configured, topic, types)
            if transport is None:
                continue  # no publisher yet: retried by the input watchdog
            msg_type = CompressedImage if transport == "compressed" else Image
            self._subs[cam] = self.create_subscription(
                msg_type, topic, partial(self._on_camera, stream=cam), input_qos(self.settings),
                callback_group=own_group(), event_callbacks=self._events(cam))
            st.kind = transport
            del self._waiting_type[cam]
            self.get_logger().info(f"camera {cam} <- {self.resolve_topic_name(topic)} ({msg_type.__name__})")

    def _destroy_inputs(self) -> None:
        for sub in self._subs.values():
            self.destroy_subscription(sub)
        self._subs, self._waiting_type = {}, {}

    # ---------------------------------------------------------------------------------- input callbacks

    @gated
    def _on_camera(self, msg, stream: str) -> None:
        start = time.perf_counter()
        if self._received(stream):
            try:
                conv.check_frame(msg)
                check_stamp(msg.header.stamp)
            except ConversionError as exc:
                return self._reject(stream, exc)
            self._offer(stream, msg.header.stamp, msg, start)

    @gated
    def _on_joints(self, msg: JointState) -> None:
        start = time.perf_counter()
        if self._received(JOINTS):
            try:
                check_stamp(msg.header.stamp)
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
        self._input_problem(stream, f"reject:{reject_kind(exc)}", f"message dropped: {exc}")

    @gated
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
            self._input_problem(stream, "stale", f"message is {now - t:.3f} s old (> sync.max_age="
                                f"{max_age}); if the publisher's clock differs from this node's "
                                "(use_sim_time?), fix the clocks or set sync.max_age to 0")
        with self._lock:
            jumps = self._grid.stats.clock_jumps
            items = self._grid.add(stream, conv.stamp_to_ns(stamp), (stamp, payload))
            if self._grid.stats.clock_jumps != jumps:
                self._counts["clock_resets"] += 1
                self.get_logger().warning("time went back on an input: the episode ends without an outcome "
                                          "and a new one starts when every input delivers again")
        self._dispatch(items, start)
        self._win["callback"].add(time.perf_counter() - start)

    def _dispatch(self, items: list, start: float | None = None) -> None:
        """Hand the frame grid's output to the worker: episode changes in order, frames latest-wins."""
        for item in items:
            if isinstance(item, GridFrame):
                if item.payloads is None:
                    continue  # re-placed from history after a late START; its messages are gone
                fired = time.perf_counter()
                stamps = item.stamps_ns.values()
                job = TickJob(episode=item.episode, index=item.index, stamp=conv.ns_to_stamp(item.stamp_ns),
                              frames=[item.payloads[c][1] for c in self._cameras],
                              state=item.payloads[JOINTS][1], skew=(max(stamps) - min(stamps)) * 1e-9,
                              fired=fired, sync_s=fired - start if start is not None else 0.0,
                              final=item.final)
                if self._worker.submit_tick(job):
                    self._counts["dropped_busy"] += 1
            elif isinstance(item, EpisodeStart):
                self._worker.submit(partial(self._start_episode, item))
            elif isinstance(item, EpisodeEnd):
                self._worker.submit(partial(self._end_episode, item))

    @gated
    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        stamp = conv.stamp_to_ns(msg.header.stamp)
        with self._lock:
            newest = self._grid.newest_ns
        if stamp == 0 or (newest is not None and newest - stamp > 10 * 1_000_000_000):
            # Unstamped (or far older than the inputs): the event happens now, in the sensors' clock.
            self._throttle(self.get_logger().warning, "event-stamp",
                           "EpisodeEvent without a usable header.stamp: placed at the newest input's stamp; "
                           "stamp events with the sensor time of the first/last observation")
            if newest is None:
                return self._throttle(self.get_logger().warning, "event-early",
                                      "EpisodeEvent before any input: ignored")
            stamp = newest
        if msg.event == EpisodeEvent.START:
            task = msg.task or self._episode_task()
            if msg.task and msg.task != self.get_parameter("task").value:
                self._event_task = msg.task  # `ros2 param get` shows it; not a second episode start
                self.set_parameters([Parameter("task", value=msg.task)])
            with self._lock:
                items = self._grid.start(stamp, task, "START event")
        elif msg.event == EpisodeEvent.END:
            outcomes = {EpisodeEvent.OUTCOME_SUCCESS: True, EpisodeEvent.OUTCOME_FAILURE: False}
            with self._lock:
                items = self._grid.end(stamp, outcomes.get(msg.outcome), "END event")
        else:
            self._throttle(self.get_logger().warning, "event",
                           f"ignoring EpisodeEvent with event={msg.event}")
            return
        self._dispatch(items)

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        with self._lock:
            items = self._grid.restart("~/reset service", task=self._episode_task())
        self._dispatch(items)
        future = self._worker.submit(lambda: self._tracker.last_flush)
        try:
            flushed = future.result(timeout=30.0)
        except Exception as exc:
            response.success, response.message = False, f"reset failed: {exc}"
            return response
        response.success = True
        response.message = (f"episode reset; {flushed} pending advantages flushed as truncated (no outcome); "
                            "a new episode starts when every input delivers")
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
            task = names["task"] or contract.default_task(self._meta, names["task"])
            if self._event_task == names["task"]:
                self._event_task = None  # set by a START event, which starts the episode itself
            else:
                with self._lock:
                    items = self._grid.restart("task parameter changed", task=task)
                self._dispatch(items)
        elif {"advantage_threshold", "overlay.history"} & names.keys():
            self._worker.submit(lambda: self._tracker.apply_settings(self.settings))

    # ---------------------------------------------------------------------------- worker: ticks, episodes

    def _episode_task(self) -> str:
        return self._tracker.task(self.settings.task)

    def _start_episode(self, start: EpisodeStart) -> None:
        self._tracker.start(start, self.settings)

    def _end_episode(self, end: EpisodeEnd) -> int:
        return self._tracker.end(end)

    def _process_tick(self, job: TickJob) -> None:
        engine, s = self._engine, self.settings
        if engine is None or not self._active:
            return
        tracker = self._tracker
        ep = tracker.current(job.episode)
        task = ep.task if ep is not None else self._episode_task()
        t0 = time.perf_counter()
        images = []
        for cam, msg, spec in zip(self._cameras, job.frames, self._image_specs, strict=True):
            try:
                images.append(conv.to_rgb(msg, spec))
            except ConversionError as exc:
                return self._reject(cam, exc)
            self._note_shape(cam, images[-1].shape[:2])
        t1 = time.perf_counter()
        # A model with elapsed time as an input reads the frame index (frames between episodes: 0).
        out = engine.infer(images, job.state, task, frame_index=job.index or 0)
        t2 = time.perf_counter()
        if not self._active:
            return  # deactivated while the model ran
        # The published float32 value is the one the advantages use, so they can be recomputed offline.
        value = float(np.float32(out.value))
        in_episode = ep is not None and job.index is not None
        records = tracker.value(ep, job.index, conv.stamp_to_ns(job.stamp), value, job.final)
        pubs = self._out
        msg = value_msg(job.stamp, s.frame_id, task, job.index if in_episode else 0, out, self._bins,
                        job.skew, s.publish_distribution)
        msg.in_episode = in_episode
        msg.episode = job.episode
        pubs.value.publish(msg)
        if ep is not None:
            tracker.emit(ep, records)
        cam = s.overlay_camera
        pubs.views(job.stamp, s.frame_id, value, out.std, task, self._bins, s.overlay_enabled, images[cam],
                   job.frames[cam].header.frame_id, ep.history if ep is not None else deque([value]),
                   ep.last_positive if ep else None)
        t3 = time.perf_counter()
        pubs.latency.publish(Float64(data=t3 - job.fired))
        self._counts["ticks"] += 1
        for key, seconds in (("model", t2 - t1), ("e2e", t3 - job.fired), ("wait", t0 - job.fired),
                             ("decode", t1 - t0),
                             ("publish", t3 - t2), ("overhead", job.sync_s + (t1 - t0) + (t3 - t2))):
            self._win[key].add(seconds)

    def _publish_advantage(self, ep: Episode, rec: AdvantageRecord, stamp_ns: int) -> None:
        """The episode tracker's outlet (worker thread)."""
        out = self._out
        if out is not None:
            msg = advantage_msg(rec, conv.ns_to_stamp(stamp_ns), self.settings.frame_id, ep.task)
            msg.episode = ep.serial
            out.advantage.publish(msg)

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

    @gated
    def _watch_inputs(self) -> None:
        if not self._active:
            return
        self._settle_end()
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
            hint = timeout_hint(stream in self._waiting_type, st.received,
                                partial(self.count_publishers, topic), s.reliability, s.depth)
            self._throttle(self.get_logger().warning, f"timeout:{stream}",
                           f"no message on {topic} for {silent:.1f} s (input_timeout={s.input_timeout}): "
                           f"{hint}")

    def _settle_end(self) -> None:
        """An END whose last frames wait for inputs that fell silent (the robot stopped publishing at the
        end of the episode) closes with the messages at hand once every input has been silent for
        input_timeout: messages still queued behind a busy executor must not be cut off."""
        last = max((st.last_wall for st in self._inputs.values() if st.last_wall is not None), default=None)
        quiet = last is not None and time.monotonic() - last > self.settings.input_timeout
        if not quiet:
            return
        with self._lock:
            items = self._grid.settle() if self._grid.end_pending else []
        self._dispatch(items)

    @gated
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            grid = replace(self._grid.stats)
        prev_wall, prev_ticks = self._diag_prev
        rate = (self._counts["ticks"] - prev_ticks) / max(1e-6, now - prev_wall)
        self._diag_prev = (now, self._counts["ticks"])
        s, tracker = self.settings, self._tracker
        inputs = []
        for st in self._inputs.values():
            new_problems = st.problems - st.problems_reported
            st.problems_reported = st.problems
            inputs.append(InputSnapshot(
                topic=st.topic, resolved=self.resolve_topic_name(st.topic), kind=st.kind,
                received=st.received, rejected=st.rejected, last_error=st.last_error,
                silent_s=(now - st.last_wall) if st.last_wall is not None else math.nan,
                timed_out=st.timed_out, new_problems=new_problems))
        snap = DiagnosticsSnapshot(
            node=self.get_fully_qualified_name(),
            hardware=str(self._engine.device) if self._engine is not None else "unloaded",
            active=self._active, inputs=inputs, input_timeout=s.input_timeout,
            error_recent=now - self._last_error_wall < 2 * s.diagnostics_period, last_error=self._last_error,
            rate_hz=rate, checkpoint=s.checkpoint, task=self._episode_task(),
            episode_frames=self._grid.frames if self._grid else 0, fps=s.fps, n_step=s.n_step,
            contract=contract.contract_text(self._contract), ticks=self._counts["ticks"], windows=self._win,
            dropped_busy=self._counts["dropped_busy"], grid=grid, outside_frames=tracker.outside_frames,
            clock_resets=self._counts["clock_resets"], advantage_stats=tracker.stream_stats(),
            advantages=tracker.advantages, episodes=tracker.episodes, errors=self._counts["errors"])
        msg = diagnostic_array(snap)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._out.diagnostics.publish(msg)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = ValueEstimatorNode()
    # Two threads serve inputs and timers while a third may wait in configure; a fourth for spare.
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    failures: list[float] = []
    try:
        while rclpy.ok() and not node.exited.done():
            try:
                executor.spin_until_future_complete(node.exited)
            except InvalidHandle:
                # Deactivate and cleanup destroy the input subscriptions on an executor thread; the QoS
                # event handlers of one may be collected into the next wait set at that moment, and rclpy
                # raises out of spin. The node is fine: collect the entities again.
                continue
            except Exception:  # a bug in one callback: say so, and keep serving unless it repeats
                node.get_logger().error(f"a callback failed:\n{traceback.format_exc()}")
                failures = [t for t in failures if time.monotonic() - t < 60.0] + [time.monotonic()]
                if len(failures) >= 10:
                    node.get_logger().fatal("10 callback failures within 60 s: exiting")
                    node.exit_code = 1
                    break
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.flush_truncated("shutdown")
        node._active = False
        node._worker.stop()
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return node.exit_code or 0
