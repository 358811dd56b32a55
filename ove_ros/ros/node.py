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

This file is the lifecycle adapter: parameters to settings, the transitions, the wiring of the parts, the
~/reset service, the diagnostics timer and ``main``. The jobs live beside it: ``input_callbacks`` (the
subscriptions, their callbacks and the watchdog's warnings), ``watchdog`` (the watchdog's rules),
``tick_pipeline`` (the frame grid, frames to the worker, and on the worker: value, advantage stream,
publish), ``inputs`` (QoS, callback groups, camera transport, message checks, watchdog hints), ``contract``
(settings against the bundle), ``episode_tracker`` (episodes and advantages on the worker), ``outputs``
(topics, QoS, the views for people), ``publishers`` (output messages), ``diagnostics_report`` (the
/diagnostics content), ``worker`` (the model's thread), ``params`` (the parameters).
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from dataclasses import replace
from functools import partial

import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.exceptions import InvalidHandle
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNodeMixin, LifecycleState, TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.task import Future
from std_srvs.srv import Trigger

from ove_ros.frame_grid import FrameGrid
from ove_ros.ros import contract, params
from ove_ros.ros import conversions as conv
from ove_ros.ros.callback_gate import CallbackGate, gated
from ove_ros.ros.diagnostics import Throttle, Window
from ove_ros.ros.diagnostics_report import WINDOWS, DiagnosticsSnapshot, diagnostic_array
from ove_ros.ros.executor import NodeExecutor
from ove_ros.ros.input_callbacks import InputCallbacks
from ove_ros.ros.inputs import JOINTS
from ove_ros.ros.outputs import Outputs
from ove_ros.ros.tick_pipeline import TickJob, TickPipeline
from ove_ros.ros.worker import Worker
from ove_ros.values import RewardConfig

SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


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
        self._cameras: list[str] = []
        self._ticks: TickPipeline | None = None  # the frame grid, the worker's ticks, the episode tracker
        self._in: InputCallbacks | None = None  # the subscriptions and their callbacks
        self._out: Outputs | None = None  # the publishers
        self._timers: list = []
        self._service = None
        self._contract: dict = {}  # fps, tolerance_periods, n_step in force, and where each came from
        self._event_task: str | None = None
        self._active = False
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
        self.settings, self._meta = s, meta
        reward = RewardConfig.from_dict(meta.reward)
        if reward.precomputed_rewards:
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
        # Any stamp going back by more than the tolerance is a clock jump (bag loop, simulator reset).
        grid = FrameGrid([*self._cameras, JOINTS], s.fps, s.tolerance_periods,
                         max_wait_s=s.max_age or 3600.0, clock_jump_s=s.tolerance_periods / s.fps,
                         event_delay_s=s.event_delay)
        self._ticks = TickPipeline(
            grid=grid, worker=self._worker, cameras=self._cameras,
            image_specs=[specs.get(cam) for cam in self._cameras], bins=config.bins, meta=meta, reward=reward,
            log=self.get_logger(), settings=lambda: self.settings, engine=lambda: self._engine,
            active=lambda: self._active, outputs=lambda: self._out, counts=self._counts, windows=self._win,
            reject=lambda cam, exc: self._in.reject(cam, exc),
            note_shape=lambda cam, shape, size: self._in.note_shape(cam, shape, size))
        self._in = InputCallbacks(
            self, settings=lambda: self.settings, cameras=self._cameras,
            joint_index=conv.JointIndex(s.joint_names), ticks=self._ticks, counts=self._counts,
            callback_window=self._win["callback"], throttle=self._throttle, active=lambda: self._active,
            event_task=self._task_from_event, gate=self._gate)
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
        if self._ticks is None or not self._active:
            return
        self._ticks.apply(lambda grid: grid.restart(reason))
        try:
            self._worker.submit(lambda: None).result(timeout=5.0)
        except Exception as exc:
            self.get_logger().warning(f"{reason}: the last advantages were not flushed: {exc}")

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._ticks.apply(lambda grid: grid.restart("activate", task=self.settings.task))
        self._in.subscribe()
        self._active = True
        self.get_logger().info("active: publishing values")
        return SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._in.unsubscribe()
        self._ticks.apply(lambda grid: grid.restart("deactivate", task=self.settings.task))
        self._worker.submit(lambda: None).result()  # the truncated episode's advantages are out
        self.get_logger().info("inactive: inputs unsubscribed, model kept loaded")
        return SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        # First the gate: callbacks the executor has taken (or takes before their entities are gone) finish
        # or do nothing, so none sees the publishers or the state half destroyed.
        if not self._gate.close(timeout=30.0):
            self.get_logger().warning("cleanup: input or timer callbacks still running after 30 s")
        if self._in is not None:
            self._in.unsubscribe()
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

    # ------------------------------------------------------------------------------- outputs, timers, service

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

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        ticks = self._ticks
        ticks.apply(lambda grid: grid.restart("~/reset service", task=ticks.task()))
        tracker = ticks.tracker
        future = self._worker.submit(lambda: tracker.last_flush)
        try:
            flushed = future.result(timeout=30.0)
        except Exception as exc:
            response.success, response.message = False, f"reset failed: {exc}"
            return response
        response.success = True
        response.message = (f"episode reset; {flushed} pending advantages flushed as truncated (no outcome); "
                            "a new episode starts when every input delivers")
        return response

    @gated
    def _watch_inputs(self) -> None:
        """The input watchdog's timer: a pending END closes once every input fell silent, then the inputs'
        own round (``InputCallbacks.watch``)."""
        if not self._active:
            return
        if self._in.all_silent():
            self._ticks.apply(lambda grid: grid.settle() if grid.end_pending else [])
        self._in.watch()

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
                self._ticks.apply(lambda grid: grid.restart("task parameter changed", task=task))
        elif {"advantage_threshold", "overlay.history"} & names.keys():
            tracker = self._ticks.tracker
            self._worker.submit(lambda: tracker.apply_settings(self.settings))

    def _task_from_event(self, task: str) -> None:
        """A START event names its task: the task parameter follows (`ros2 param get` shows it), without
        starting a second episode."""
        if task != self.get_parameter("task").value:
            self._event_task = task
            self.set_parameters([Parameter("task", value=task)])

    # ------------------------------------------------------------------------------- worker, diagnostics

    def _process_tick(self, job: TickJob) -> None:
        """Worker thread: the configured pipeline values the frame (none after cleanup)."""
        ticks = self._ticks
        if ticks is not None:
            ticks.process(job)

    def _on_worker_error(self, exc: Exception) -> None:
        if not self.context.ok():
            return  # shutting down: publishers are gone
        self._counts["errors"] += 1
        self._last_error = f"{type(exc).__name__}: {exc}"
        self._last_error_wall = time.monotonic()
        self._throttle(self.get_logger().error, "worker", f"tick failed: {self._last_error}")

    @gated
    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        ticks = self._ticks
        with ticks.lock:
            grid = replace(ticks.grid.stats)
        prev_wall, prev_ticks = self._diag_prev
        rate = (self._counts["ticks"] - prev_ticks) / max(1e-6, now - prev_wall)
        self._diag_prev = (now, self._counts["ticks"])
        s, tracker = self.settings, ticks.tracker
        snap = DiagnosticsSnapshot(
            node=self.get_fully_qualified_name(),
            hardware=str(self._engine.device) if self._engine is not None else "unloaded",
            active=self._active, inputs=self._in.snapshots(now), input_timeout=s.input_timeout,
            error_recent=now - self._last_error_wall < 2 * s.diagnostics_period, last_error=self._last_error,
            rate_hz=rate, checkpoint=s.checkpoint, task=ticks.task(), episode_frames=ticks.grid.frames,
            fps=s.fps, n_step=s.n_step, contract=contract.contract_text(self._contract),
            ticks=self._counts["ticks"], windows=self._win, dropped_busy=self._counts["dropped_busy"],
            grid=grid, outside_frames=tracker.outside_frames, clock_resets=self._counts["clock_resets"],
            advantage_stats=tracker.stream_stats(), advantages=tracker.advantages, episodes=tracker.episodes,
            errors=self._counts["errors"])
        msg = diagnostic_array(snap)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._out.diagnostics.publish(msg)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args if args is not None else sys.argv)
    node = ValueEstimatorNode()
    # Two threads serve inputs and timers while a third may wait in configure; a fourth for spare.
    executor = NodeExecutor(num_threads=4)  # rclpy's, without its spin while callbacks wait for a thread
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
                now = time.monotonic()
                failures = [t for t in failures if now - t < 60.0] + [now]
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
