# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's input side: the camera, joint-state and episode-event subscriptions, their callbacks, and the
input watchdog's warnings.

A callback checks its message and offers it to the frame grid (``TickPipeline.apply``); it never waits for
the model. Each subscription has its own mutually exclusive callback group (``inputs.own_group``, which says
why); the grid's lock orders the streams among each other. A camera whose transport is "auto" is subscribed
once the ROS graph shows its publisher's type; the watchdog's timer retries until then. Problems with an
input are counted per input and logged throttled per input and kind, naming the resolved topic.

The decisions (QoS, transport, stamp checks, hints) live in ``inputs``, the watchdog's rules in
``watchdog``; this module applies them to the ROS graph.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from builtin_interfaces.msg import Time
from rclpy.event_handler import SubscriptionEventCallbacks
from sensor_msgs.msg import CompressedImage, Image, JointState

from ove_ros.msg import EpisodeEvent
from ove_ros.ros import conversions as conv
from ove_ros.ros import watchdog
from ove_ros.ros.callback_gate import CallbackGate, gated
from ove_ros.ros.conversions import ConversionError
from ove_ros.ros.diagnostics import InputStats, Throttle, Window
from ove_ros.ros.diagnostics_report import InputSnapshot
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
from ove_ros.ros.tick_pipeline import TickPipeline

# An event stamped this much before the newest input is taken for unstamped (a wrong clock), in nanoseconds.
EVENT_MAX_LAG_NS = 10 * 1_000_000_000
OUTCOMES = {EpisodeEvent.OUTCOME_SUCCESS: True, EpisodeEvent.OUTCOME_FAILURE: False}


def event_stamp(stamp_ns: int, newest_ns: int | None) -> tuple[int | None, bool]:
    """Where an episode event goes on the sensors' clock, and whether its own stamp was unusable.

    An unstamped event, or one far older than the newest input, happens now: at the newest input's stamp
    (None before any input: the event cannot be placed)."""
    if stamp_ns == 0 or (newest_ns is not None and newest_ns - stamp_ns > EVENT_MAX_LAG_NS):
        return newest_ns, True
    return stamp_ns, False


class InputCallbacks:
    """Subscriptions and callbacks of one configuration's inputs, made at configure, subscribed while active.

    ``stats`` holds each input's counters for the diagnostics and the watchdog. ``settings`` and ``active``
    are read when needed (settings change at run time); ``event_task`` hears the task of a START event that
    differs from the task parameter."""

    def __init__(self, node, *, settings: Callable[[], Any], cameras: list[str], joint_index: conv.JointIndex,
                 ticks: TickPipeline, counts: dict, callback_window: Window, throttle: Throttle,
                 active: Callable[[], bool], event_task: Callable[[str], None], gate: CallbackGate):
        s = settings()
        self._gate = gate  # the callbacks run only while the node's configuration exists
        self._node = node
        self._settings = settings
        self._cameras = cameras
        self._joint_index = joint_index
        self._ticks = ticks
        self._counts = counts
        self._callback_window = callback_window
        self._throttle = throttle
        self._active = active
        self._event_task = event_task
        self.stats: dict[str, InputStats] = {
            cam: InputStats(topic, s.camera_transports[i])
            for i, (cam, topic) in enumerate(zip(cameras, s.camera_topics, strict=True))}
        self.stats[JOINTS] = InputStats(s.joint_states_topic, "joint_states")
        self._subs: dict[str, object] = {}
        self._waiting_type: dict[str, str] = {}  # camera -> topic whose message type is not known yet
        self._activated_at = time.monotonic()

    # ------------------------------------------------------------------------------------ subscriptions

    def subscribe(self) -> None:
        """At activation: silence counts from now, and every input is subscribed (cameras once known)."""
        s = self._settings()
        watchdog.rearm(self.stats.values())
        self._activated_at = time.monotonic()
        node = self._node
        self._waiting_type = {cam: topic for cam, topic in zip(self._cameras, s.camera_topics, strict=True)}
        self._subscribe_cameras()
        self._subs[JOINTS] = node.create_subscription(
            JointState, s.joint_states_topic, self._on_joints, input_qos(s), callback_group=own_group(),
            event_callbacks=self._events(JOINTS))
        self._subs["events"] = node.create_subscription(
            EpisodeEvent, "episode_events", self._on_episode_event, event_qos(s), callback_group=own_group())

    def unsubscribe(self) -> None:
        for sub in self._subs.values():
            self._node.destroy_subscription(sub)
        self._subs, self._waiting_type = {}, {}

    def _subscribe_cameras(self) -> None:
        """Subscribe each camera whose transport is configured or known from the ROS graph."""
        node, s = self._node, self._settings()
        graph = None
        for cam, topic in list(self._waiting_type.items()):
            st = self.stats[cam]
            configured = s.camera_transports[self._cameras.index(cam)]
            types = []
            if configured == "auto":
                if graph is None:
                    graph = dict(node.get_topic_names_and_types())
                types = graph.get(node.resolve_topic_name(topic), [])
            transport = camera_transport(configured, topic, types)
            if transport is None:
                continue  # no publisher yet: retried by the input watchdog
            msg_type = CompressedImage if transport == "compressed" else Image
            self._subs[cam] = node.create_subscription(
                msg_type, topic, partial(self._on_camera, stream=cam), input_qos(s),
                callback_group=own_group(), event_callbacks=self._events(cam))
            st.kind = transport
            del self._waiting_type[cam]
            node.get_logger().info(f"camera {cam} <- {node.resolve_topic_name(topic)} ({msg_type.__name__})")

    def _events(self, stream: str) -> SubscriptionEventCallbacks:
        def incompatible_qos(info, stream=stream):
            self.problem(stream, "qos", "a publisher's QoS is incompatible (policy "
                         f"{info.last_policy_kind}); set input_qos.reliability to match it")

        def incompatible_type(info, stream=stream):
            self.problem(stream, "type", "a publisher uses another message type; check "
                         "camera_transports (raw = sensor_msgs/Image, compressed = CompressedImage)")

        return SubscriptionEventCallbacks(incompatible_qos=incompatible_qos,
                                          incompatible_type=incompatible_type)

    # ---------------------------------------------------------------------------------------- callbacks

    @gated
    def _on_camera(self, msg, stream: str) -> None:
        start = time.perf_counter()
        if self._received(stream):
            try:
                conv.check_frame(msg)
                check_stamp(msg.header.stamp)
            except ConversionError as exc:
                return self.reject(stream, exc)
            self._offer(stream, msg.header.stamp, msg, start)

    @gated
    def _on_joints(self, msg: JointState) -> None:
        start = time.perf_counter()
        if self._received(JOINTS):
            try:
                check_stamp(msg.header.stamp)
                state = self._joint_index.vector(msg)
            except ConversionError as exc:
                return self.reject(JOINTS, exc)
            self._offer(JOINTS, msg.header.stamp, state, start)

    @gated
    def _on_episode_event(self, msg: EpisodeEvent) -> None:
        node, ticks = self._node, self._ticks
        with ticks.lock:
            newest = ticks.grid.newest_ns
        stamp, unusable = event_stamp(conv.stamp_to_ns(msg.header.stamp), newest)
        if unusable:
            self._throttle(node.get_logger().warning, "event-stamp",
                           "EpisodeEvent without a usable header.stamp: placed at the newest input's stamp; "
                           "stamp events with the sensor time of the first/last observation")
            if stamp is None:
                return self._throttle(node.get_logger().warning, "event-early",
                                      "EpisodeEvent before any input: ignored")
        if msg.event == EpisodeEvent.START:
            task = msg.task or ticks.task()
            if msg.task:
                self._event_task(msg.task)
            ticks.apply(lambda grid: grid.start(stamp, task, "START event"))
        elif msg.event == EpisodeEvent.END:
            ticks.apply(lambda grid: grid.end(stamp, OUTCOMES.get(msg.outcome), "END event"))
        else:
            self._throttle(node.get_logger().warning, "event",
                           f"ignoring EpisodeEvent with event={msg.event}")

    def _received(self, stream: str) -> bool:
        st = self.stats[stream]
        st.received += 1
        st.last_wall = time.monotonic()
        return self._active()

    def _offer(self, stream: str, stamp: Time, payload, start: float) -> None:
        node = self._node
        t = conv.stamp_to_sec(stamp)
        now = node.get_clock().now().nanoseconds * 1e-9
        max_age = self._settings().max_age
        if max_age > 0 and now - t > max_age:
            self.problem(stream, "stale", f"message is {now - t:.3f} s old (> sync.max_age="
                         f"{max_age}); if the publisher's clock differs from this node's "
                         "(use_sim_time?), fix the clocks or set sync.max_age to 0")

        def add(grid):
            jumps = grid.stats.clock_jumps
            items = grid.add(stream, conv.stamp_to_ns(stamp), (stamp, payload))
            if grid.stats.clock_jumps != jumps:
                self._counts["clock_resets"] += 1
                node.get_logger().warning("time went back on an input: the episode ends without an outcome "
                                          "and a new one starts when every input delivers again")
            return items

        self._ticks.apply(add, start)
        self._callback_window.add(time.perf_counter() - start)

    # ----------------------------------------------------------------------------------------- problems

    def reject(self, stream: str, exc: Exception) -> None:
        """A message that cannot be used: counted, and logged with the reason."""
        st = self.stats[stream]
        st.rejected += 1
        self.problem(stream, f"reject:{reject_kind(exc)}", f"message dropped: {exc}")

    @gated
    def problem(self, stream: str, kind: str, problem: str) -> None:
        """Count and log (throttled per input and kind) a problem with one input."""
        st = self.stats[stream]
        st.last_error = problem
        st.problems += 1
        self._throttle(self._node.get_logger().warning, f"{kind}:{stream}",
                       f"{self._node.resolve_topic_name(st.topic)}: {problem}")

    def note_shape(self, cam: str, shape: tuple[int, int], model_size: int) -> None:
        """A decoded frame's (height, width): logged once, and a problem when it changes."""
        st = self.stats[cam]
        if st.shape is None:
            st.shape = shape
            self._node.get_logger().info(
                f"camera {cam}: {shape[1]}x{shape[0]} frames, resized to {model_size}x{model_size} by the "
                "model's preprocessing (as in training)")
        elif st.shape != shape:
            self.problem(cam, "size", f"frame size changed from {st.shape[1]}x{st.shape[0]} to "
                         f"{shape[1]}x{shape[0]}; frames are still resized for the model")

    def snapshots(self, now: float) -> list[InputSnapshot]:
        """Each input for the diagnostics at ``now`` (``time.monotonic()``), with the problems since the
        previous call."""
        found = []
        for st in self.stats.values():
            new_problems = st.problems - st.problems_reported
            st.problems_reported = st.problems
            found.append(InputSnapshot(
                topic=st.topic, resolved=self._node.resolve_topic_name(st.topic), kind=st.kind,
                received=st.received, rejected=st.rejected, last_error=st.last_error,
                silent_s=(now - st.last_wall) if st.last_wall is not None else math.nan,
                timed_out=st.timed_out, new_problems=new_problems))
        return found

    # ----------------------------------------------------------------------------------------- watchdog

    def watch(self) -> None:
        """The watchdog's round (timer thread): subscribe cameras whose type is known now, and warn about
        inputs silent for longer than input_timeout, with the likely cause."""
        if self._waiting_type:
            self._subscribe_cameras()
        node, s = self._node, self._settings()
        for found in watchdog.check(self.stats, time.monotonic(), self._activated_at, s.input_timeout):
            st = self.stats[found.stream]
            topic = node.resolve_topic_name(st.topic)
            if not found.timed_out:
                node.get_logger().info(f"{topic} delivers again")
                continue
            hint = timeout_hint(found.stream in self._waiting_type, st.received,
                                partial(node.count_publishers, topic), s.reliability, s.depth)
            self._throttle(node.get_logger().warning, f"timeout:{found.stream}",
                           f"no message on {topic} for {found.silent_s:.1f} s "
                           f"(input_timeout={s.input_timeout}): {hint}")

    def all_silent(self) -> bool:
        """Every input has been silent for input_timeout (a pending END then closes with what it has)."""
        return watchdog.all_silent(self.stats.values(), time.monotonic(), self._settings().input_timeout)
