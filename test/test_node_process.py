# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The value_estimator node as a process over real DDS, fed by test/fake_robot.py.

One node and one fake robot serve the whole module (a process start costs seconds here); the tests run in
file order and each one waits for what it needs instead of sleeping. A probe node in this process records
the outputs. Further processes check the lifecycle (autostart false) and the start-up errors.

Waits are on events (a message, a service answer, a process exit) with limits far above what they take on an
idle machine, so a loaded machine only makes them slower. Checks that something does NOT happen wait for
the fake robot to publish a number of frames the node would have reacted to, and then judge by stamps.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run scripts/setup.sh and source setup.env")
cv2 = pytest.importorskip("cv2")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter, parameter_value_to_python  # noqa: E402
from rclpy.parameter_client import AsyncParameterClient  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32, Float64, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from ove_ros.child_process import stop_child  # noqa: E402
from ove_ros.msg import Advantage, EpisodeEvent, ValueEstimate  # noqa: E402
from ove_ros.overlay import bar_rect  # noqa: E402
from ove_ros.ros.conversions import image_to_rgb  # noqa: E402
from ove_ros.ros.worker import Worker  # noqa: E402
from ove_ros.values import RewardConfig, episode_rewards, window_advantage  # noqa: E402

from conftest import REPO_ROOT, installed_executable, ros_env  # noqa: E402

N_STEP = 5
FPS = 30.0  # the frame grid: the fake robot's cameras publish at 30 Hz too
TOLERANCE = 1.5 / FPS  # the bundle's default tolerance_periods, in seconds
SCALES = {"pick": 60.0, "place": 80.0}
THRESHOLDS = {"pick": -0.01}  # "place" falls back to the node's advantage_threshold parameter (0.0)
CAMERA_TOPICS = ["cam0/image_raw", "cam1/image_raw/compressed", "cam2/image_raw"]
START_TIMEOUT = 180.0  # a process start imports torch; slow on a loaded 2-core machine
WAIT = 120.0  # any other event; only reached when something is broken
QUIET_FRAMES = 30  # camera frame sets the robot publishes while a test checks that the node stays quiet
WARN = b"\x01"  # diagnostic_msgs/DiagnosticStatus.WARN


# ------------------------------------------------------------------------------------------- helpers


def make_bundle(path: Path, cameras: int = 3) -> Path:
    import torch

    from ove_ros.bundle import BundleMetadata, save_bundle
    from ove_ros.model import OpenValueEstimator, ValueModelConfig

    torch.manual_seed(0)
    model = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=cameras, state_dim=6))
    meta = BundleMetadata.from_model(model, task_normalizers=SCALES, default_scale=50.0,
                                     advantage_thresholds=THRESHOLDS, n_step=N_STEP, fps=FPS)
    return save_bundle(path, model, meta)


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    handle = open(log, "w")  # noqa: SIM115 - closed by stop()
    proc = subprocess.Popen(cmd, env=ros_env(), stdout=handle, stderr=subprocess.STDOUT, cwd=str(log.parent))
    proc.log_handle = handle
    return proc


def stop(proc: subprocess.Popen) -> int:
    """Stop the process (SIGINT first, see ove_ros.child_process) and close its log."""
    code = stop_child(proc, grace=15.0)
    proc.log_handle.close()
    return code


def node_cmd(bundle: Path, *extra: str) -> list[str]:
    # The shipped parameters file first (it must load), then the test's overrides.
    return [sys.executable, str(installed_executable("value_estimator")), "--ros-args",
            "--params-file", str(REPO_ROOT / "config" / "value_estimator.yaml"),
            "-p", f"checkpoint:={bundle}", "-p", f"camera_topics:=[{', '.join(CAMERA_TOPICS)}]",
            "-p", f"n_step:={N_STEP}", "-p", "task:=pick", "-p", "num_threads:=1",
            "-p", "input_timeout:=1.0", "-p", "diagnostics_period:=0.5",
            # The default max_age warns about inputs a loaded machine delivers late, and the time-jump test
            # moves stamps back: judge inputs by their stamps only.
            "-p", "sync.max_age:=0.0", *extra]


def robot_cmd(stamp_log: Path) -> list[str]:
    return [sys.executable, str(REPO_ROOT / "test" / "fake_robot.py"), "--cameras", "3", "--width", "64",
            "--height", "48", "--camera-rate", "30", "--joint-rate", "100", "--transports",
            "raw,compressed,raw", "--stamp-log", str(stamp_log)]


def wait_until(condition: Callable[[], object], timeout: float = WAIT, what: str = "condition",
               procs: tuple[subprocess.Popen, ...] = ()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"process exited with {p.returncode} while waiting for {what}\n"
                                     f"{log_tail(p)}")
        time.sleep(0.05)
    tails = "".join(f"\n--- {' '.join(map(str, p.args[1:2]))}:\n{log_tail(p)}" for p in procs)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{tails}")


def log_tail(proc: subprocess.Popen, chars: int = 3000) -> str:
    """The end of a process's log (started by ``start``), for a failure message."""
    handle = getattr(proc, "log_handle", None)
    if handle is None:
        return ""
    return Path(handle.name).read_text(errors="replace")[-chars:]


def key(stamp) -> tuple[int, int]:
    return stamp.sec, stamp.nanosec


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def camera_frames(stamp_log: Path) -> int:
    """How many camera frame sets the fake robot has published so far."""
    if not stamp_log.exists():
        return 0
    return sum(1 for line in stamp_log.read_text().splitlines() if line.startswith("camera "))


def wait_for_robot_frames(robot: subprocess.Popen, count: int = QUIET_FRAMES) -> None:
    """Wait until the robot has published ``count`` more camera frame sets: input the node would have
    turned into values if it were publishing."""
    start_count = camera_frames(robot.stamp_log)
    wait_until(lambda: camera_frames(robot.stamp_log) >= start_count + count, WAIT,
               f"{count} more frames from the fake robot", (robot,))


class Probe:
    """A node in the test process that records the estimator's outputs and sends it commands."""

    def __init__(self, target: str = "value_estimator"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("probe", context=self.context)
        self.values: list[ValueEstimate] = []
        self.advantages: list[Advantage] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.overlays: list[Image] = []
        self.scalars: list[float] = []
        self.latencies: list[float] = []
        self.markers: list[Marker] = []
        ns = f"/{target}"
        deep = QoSProfile(depth=200)
        self.node.create_subscription(ValueEstimate, f"{ns}/value", self.values.append, deep)
        self.node.create_subscription(Advantage, f"{ns}/advantage", self.advantages.append, deep)
        self.node.create_subscription(Float32, f"{ns}/value_scalar", lambda m: self.scalars.append(m.data),
                                      deep)
        self.node.create_subscription(Float64, f"{ns}/latency", lambda m: self.latencies.append(m.data),
                                      deep)
        self.node.create_subscription(Marker, f"{ns}/marker", self.markers.append, deep)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)
        self.events = self.node.create_publisher(EpisodeEvent, "episode_events", 10)
        self.commands = self.node.create_publisher(String, "fake_robot/command", 10)
        self.reset_client = self.node.create_client(Trigger, f"{ns}/reset")
        self.get_state = self.node.create_client(GetState, f"{ns}/get_state")
        self.change_state = self.node.create_client(ChangeState, f"{ns}/change_state")
        self.params = AsyncParameterClient(self.node, target)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def subscribe_overlay(self, target: str = "value_estimator") -> None:
        self.node.create_subscription(Image, f"/{target}/overlay", self.overlays.append, 10)

    def call(self, client, request, timeout: float = WAIT):
        wait_until(client.service_is_ready, timeout, f"service {client.srv_name}")
        return self.result(client.call_async(request), timeout)

    def set_parameters(self, parameters: list[Parameter]):
        return self.repeat(lambda: self.params.set_parameters(parameters))

    def repeat(self, send: Callable[[], Future], timeout: float = WAIT, attempt: float = 10.0):
        """``send()`` until one of its futures is answered (see call_idempotent); for requests that may be
        repeated, such as setting a parameter to a value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.result(send(), min(attempt, max(0.1, deadline - time.monotonic())))
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise

    def call_idempotent(self, client, request, timeout: float = WAIT):
        """Call a service whose request can be repeated, sending it again when no answer comes.

        A client is "ready" once the server has matched its requests; the server may not have matched the
        client's response reader yet, and rmw_fastrtps then drops the response ("failed to send response
        (timeout): client will not receive response"). A fresh server's first answers can be lost that way."""
        wait_until(client.service_is_ready, timeout, f"service {client.srv_name}")
        return self.repeat(lambda: client.call_async(request), timeout)

    def lifecycle_state(self) -> str:
        return self.call_idempotent(self.get_state, GetState.Request(), START_TIMEOUT).current_state.label

    def transition(self, tid: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=tid))
        return self.call(self.change_state, request, START_TIMEOUT).success

    def prime_change_state(self) -> None:
        """Get a first change_state answer through (see call_idempotent) with a transition that is invalid
        from "unconfigured": it is refused without effect, so it may be sent until answered."""
        invalid = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_DEACTIVATE))
        assert not self.call_idempotent(self.change_state, invalid, START_TIMEOUT).success

    @staticmethod
    def result(future: Future, timeout: float = WAIT):
        wait_until(future.done, timeout, "a service response")
        return future.result()

    def set_task(self, task: str) -> None:
        wait_until(lambda: self.params.services_are_ready(), WAIT, "parameter services")
        response = self.set_parameters([Parameter("task", value=task)])
        assert response.results[0].successful, response.results[0].reason

    def get_param(self, name: str):
        return parameter_value_to_python(self.repeat(lambda: self.params.get_parameters([name])).values[0])

    def episode_event(self, event: int, outcome: int = EpisodeEvent.OUTCOME_UNKNOWN, task: str = "") -> None:
        self.events.publish(EpisodeEvent(event=event, outcome=outcome, task=task))

    def robot(self, command: str) -> None:
        self.commands.publish(String(data=command))

    def status(self, name_part: str):
        """The newest diagnostics status whose name contains ``name_part`` (None before the first)."""
        for array in reversed(self.diagnostics):
            for st in array.status:
                if name_part in st.name:
                    return st
        return None

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(5)


def values_of(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def _starts(values: list[ValueEstimate], index: int) -> list[int]:
    """Positions after ``index`` where an episode begins (its first valued frame, which need not be frame 0:
    the busy model may have skipped it)."""
    return [k for k in range(max(index, 1), len(values))
            if values[k].in_episode and values[k].episode != values[k - 1].episode]


def episode_started(values: list[ValueEstimate], index: int) -> bool:
    return bool(_starts(values, index))


def _run_from(values: list[ValueEstimate], index: int) -> tuple[list[ValueEstimate], bool]:
    """The first episode's frames (increasing frame indices, gaps allowed) begun after ``values[index]``,
    and whether something followed it (a new episode or a frame outside any episode)."""
    i = _starts(values, index)[0]
    run = [values[i]]
    for v in values[i + 1:]:
        if v.episode != run[0].episode:
            return run, True
        run.append(v)
    return run, False


def episode_after(values: list[ValueEstimate], index: int) -> list[ValueEstimate]:
    return _run_from(values, index)[0]


def episode_closed(values: list[ValueEstimate], index: int) -> bool:
    """True once the episode started after ``index`` is followed by another frame (the episode ended)."""
    return _run_from(values, index)[1]


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("bundle") / "tiny3")


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    """The fake robot: 3 cameras (raw, jpeg, raw) 64x48 at 30 Hz, joint states at 100 Hz."""
    logs = tmp_path_factory.mktemp("robot")
    proc = start(robot_cmd(logs / "stamps.txt"), logs / "robot.log")
    proc.stamp_log = logs / "stamps.txt"
    try:
        yield proc
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def system(bundle, robot, tmp_path_factory):
    """The node (autostart) and the probe; torn down whatever happens."""
    logs = tmp_path_factory.mktemp("node")
    node = start(node_cmd(bundle), logs / "node.log")
    probe = None
    try:
        probe = Probe()
        probe.subscribe_overlay()
        wait_until(lambda: len(probe.values) >= 3, START_TIMEOUT, "the first values", (node, robot))
        yield {"node": node, "robot": robot, "probe": probe, "stamp_log": robot.stamp_log}
    finally:
        if probe is not None:
            probe.close()
        stop(node)


# ------------------------------------------------------------------------------------------- tests


def test_worker_keeps_only_the_latest_tick_and_orders_control_jobs():
    done, order, gate = [], [], threading.Event()

    def handle(tick):
        if tick == "block":
            gate.wait(WAIT)
        done.append(tick)
        order.append(("tick", tick))

    worker = Worker(handle, on_error=lambda exc: order.append(("error", exc)))
    worker.start()
    try:
        assert worker.submit_tick("block") is False
        wait_until(lambda: worker.busy, WAIT, "the worker to start the first tick")
        assert worker.submit_tick("a") is False
        assert worker.submit_tick("b") is True  # replaced "a" while the worker was busy
        control = worker.submit(lambda: order.append(("control", None)) or 42)
        assert worker.submit_tick("c") is False
        gate.set()
        assert control.result(WAIT) == 42
        wait_until(lambda: "c" in done, WAIT, "tick c")
        # "b" was observed before the control job, "c" after it; "a" was dropped.
        assert order == [("tick", "block"), ("tick", "b"), ("control", None), ("tick", "c")]
        failing = worker.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failing.result(WAIT)
    finally:
        gate.set()
        assert worker.stop(WAIT)



def test_lifecycle_without_autostart(bundle, robot, tmp_path):
    node = start(node_cmd(bundle, "-p", "autostart:=false", "-r", "__node:=managed_estimator"),
                 tmp_path / "node.log")
    probe = Probe("managed_estimator")
    try:
        state, transition = probe.lifecycle_state, probe.transition
        assert state() == "unconfigured"
        probe.prime_change_state()
        assert state() == "unconfigured"

        # configure waits for the model to load (and for torch to import: seconds); get_state is answered
        # meanwhile, from the transition state. (A get_state answer may also predate the configure request:
        # the two services are served concurrently, so ask until the transition state shows.)
        configure = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))
        pending = probe.change_state.call_async(configure)
        seen = []
        while not pending.done() and "configuring" not in seen:
            seen.append(state())
        assert "configuring" in seen, f"get_state answered {seen} while configure ran"
        assert probe.result(pending, START_TIMEOUT).success
        assert state() == "inactive"
        wait_for_robot_frames(robot)
        assert probe.values == []  # inactive: nothing published
        assert transition(Transition.TRANSITION_ACTIVATE) and state() == "active"
        wait_until(lambda: len(probe.values) >= 3, WAIT, "values after activate", (node,))
        assert transition(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
        deactivated = time.time()  # the robot stamps with this clock
        wait_for_robot_frames(robot)
        # Values still in flight may arrive now, but none for an input stamped after the deactivation.
        late = [seconds(v.header.stamp) - deactivated for v in probe.values
                if seconds(v.header.stamp) > deactivated]
        assert not late, f"values for inputs stamped {late} s after deactivate"
        assert transition(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
        # A damaged bundle makes configure fail (the node stays up, unconfigured) and says why.
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "config.json").write_text("{ not json")
        wait_until(lambda: probe.params.services_are_ready(), WAIT, "parameter services", (node,))
        probe.set_parameters([Parameter("checkpoint", value=str(broken))])
        assert not transition(Transition.TRANSITION_CONFIGURE)
        assert state() == "unconfigured" and node.poll() is None
    finally:
        probe.close()
        rc = stop(node)
    log = (tmp_path / "node.log").read_text()
    assert re.search(r"broken/config\.json.*not valid JSON", log), log[-2000:]
    assert rc == 0, log[-2000:]


def test_the_node_survives_repeated_deactivation_and_cleanup_while_inputs_flow(bundle, robot, tmp_path):
    """Deactivate and cleanup destroy subscriptions and timers on an executor thread while other threads
    collect entities for the next wait or still run a callback taken before: rclpy raised InvalidHandle out
    of spin, and a diagnostics or input callback could read state cleanup had freed; either killed the node
    (seen in full CI runs on a loaded 2-core machine, not on an idle one). Twelve cycles, with diagnostics
    every 50 ms, give those races many chances; the lifecycle test above gives them one."""
    node = start(node_cmd(bundle, "-p", "autostart:=false", "-p", "diagnostics_period:=0.05",
                          "-r", "__node:=cycled_estimator"), tmp_path / "node.log")
    probe = Probe("cycled_estimator")
    try:
        state, transition = probe.lifecycle_state, probe.transition
        assert state() == "unconfigured"
        probe.prime_change_state()
        wait_for_robot_frames(robot)
        for cycle in range(12):
            assert transition(Transition.TRANSITION_CONFIGURE), f"cycle {cycle}"
            seen = len(probe.values)
            assert transition(Transition.TRANSITION_ACTIVATE), f"cycle {cycle}"
            wait_until(lambda seen=seen: len(probe.values) > seen, WAIT, "values after activate", (node,))
            assert transition(Transition.TRANSITION_DEACTIVATE), f"cycle {cycle}"
            assert node.poll() is None and state() == "inactive", f"cycle {cycle}"
            assert transition(Transition.TRANSITION_CLEANUP), f"cycle {cycle}"  # frees the model and state
            assert node.poll() is None and state() == "unconfigured", f"cycle {cycle}"
        wait_until(lambda: probe.params.services_are_ready(), WAIT, "parameter services", (node,))
        assert node.poll() is None
    finally:
        probe.close()
        rc = stop(node)
    log = (tmp_path / "node.log").read_text()
    assert "Traceback" not in log and "callback failed" not in log and rc == 0, log[-3000:]


def test_bad_configuration_exits_with_a_helpful_message(bundle, tmp_path):
    # (A damaged bundle is checked by the lifecycle test, through configure.) Each message is printed
    # once, as the reason the node exits, and names what to do.
    cases = {
        "no_checkpoint": ([sys.executable, str(installed_executable("value_estimator"))],
                          r"no checkpoint: set the .checkpoint. parameter "
                          r".*`python -m ove_ros\.training\.convert`"),
        "camera_count": (node_cmd(bundle, "-p", "camera_topics:=[cam0/image_raw, cam1/image_raw]"),
                         r"camera_topics lists 2 topic.*3 camera"),
        "missing_bundle": (node_cmd(tmp_path / "no_such_bundle"),
                           r"no_such_bundle does not exist; pass a bundle directory written by "
                           r"`python -m ove_ros\.training\.convert`"),
    }
    procs = {name: start(cmd, tmp_path / f"{name}.log") for name, (cmd, _) in cases.items()}
    try:
        for proc in procs.values():
            proc.wait(START_TIMEOUT)
    finally:
        for proc in procs.values():
            stop(proc)
    for name, (_, pattern) in cases.items():
        log = (tmp_path / f"{name}.log").read_text()
        assert procs[name].returncode not in (0, None), f"{name}: exit code {procs[name].returncode}\n{log}"
        lines = [line for line in log.splitlines() if re.search(pattern, line)]
        assert len(lines) == 1, f"{name}: {pattern!r} should be printed once:\n{log}"
        assert lines[0].startswith("[FATAL]") and lines[0].endswith("; exiting"), lines[0]
        others = log.replace(lines[0], "")
        assert not re.search(r"\[(ERROR|FATAL)\]", others), f"{name}: another error:\n{log}"
        assert "\x1b[" not in log, f"{name}: colour codes in a piped log"


# ------------------------------------------------------------------- one node serving the tests below


def test_values_carry_the_synced_input_stamps(system):
    probe = system["probe"]
    wait_until(lambda: len(probe.values) >= 20, WAIT, "20 values")
    values = list(probe.values[:20])
    published: dict[str, set[tuple[int, int]]] = {"camera": set(), "joints": set()}
    for line in system["stamp_log"].read_text().splitlines():
        kind, sec, nsec = line.split()
        published[kind].add((int(sec), int(nsec)))
    cameras = sorted(published["camera"])
    for v in values:
        stamp = key(v.header.stamp)
        # A frame sits on the grid and holds camera messages at most the tolerance older than its time.
        t = stamp[0] + stamp[1] * 1e-9
        assert any(t - TOLERANCE - 1e-9 <= c[0] + c[1] * 1e-9 <= t for c in cameras), f"tick {v.tick}"
        assert 0.0 <= v.input_skew <= TOLERANCE + 1e-6
        assert v.header.frame_id == "base_link" and v.task == "pick"
        assert -1.0 <= v.value <= 0.0 and v.std >= 0.0 and 0.0 <= v.entropy <= math.log(201) + 1e-4
        assert (v.num_bins, v.v_min, v.v_max) == (201, -1.0, 0.0)
        assert len(v.probabilities) == 201 and abs(sum(v.probabilities) - 1.0) < 1e-4
        mean = float(np.dot(np.asarray(v.probabilities, np.float64), np.linspace(-1.0, 0.0, 201)))
        assert abs(mean - v.value) < 1e-4
        assert v.inference_latency > 0.0
    stamps = [v.header.stamp.sec + v.header.stamp.nanosec * 1e-9 for v in probe.values]
    assert all(b > a for a, b in zip(stamps, stamps[1:], strict=False)), "value stamps must increase"
    # The plot-friendly topics follow the values.
    wait_until(lambda: len(probe.scalars) >= 5 and len(probe.latencies) >= 5 and probe.markers, WAIT,
               "value_scalar, latency and marker messages")
    assert set(probe.scalars[:5]) <= {v.value for v in probe.values}
    assert all(x > 0.0 for x in probe.latencies)
    marker = probe.markers[-1]
    assert marker.type == Marker.TEXT_VIEW_FACING and marker.text.startswith("V ")


def run_episode(probe: Probe, ticks: int, end: Callable[[], None]) -> tuple[list[ValueEstimate], list]:
    """START an episode, let ``ticks`` values pass, call ``end``; return its values and advantages."""
    index = len(probe.values)
    probe.episode_event(EpisodeEvent.START, task="pick")
    wait_until(lambda: episode_started(probe.values, index), WAIT, "the episode start")
    wait_until(lambda: len(episode_after(probe.values, index)) >= ticks, WAIT, f"{ticks} ticks")
    end()
    wait_until(lambda: episode_closed(probe.values, index), WAIT, "the episode end")
    episode = episode_after(probe.values, index)
    stamps = {key(v.header.stamp) for v in episode}
    wait_all_advantages(probe)
    return episode, [a for a in probe.advantages if key(a.header.stamp) in stamps]


def wait_all_advantages(probe: Probe) -> None:
    """Until every advantage the node counted (diagnostics, sent after the flush) has arrived here."""
    n_diag = len(probe.diagnostics)

    def arrived():
        newer = [d for d in probe.diagnostics[n_diag + 1:]
                 for st in d.status if st.name.endswith("estimator")]
        if not newer:
            return False
        status = next(st for st in newer[-1].status if st.name.endswith("estimator"))
        return len(probe.advantages) >= int(values_of(status)["advantages"])

    wait_until(arrived, WAIT, "every advantage the node published")


def check_against_offline(episode, advantages, success, scale: float, threshold: float) -> None:
    """Every advantage equals the offline n-step advantage of its frame (frame indices; gaps allowed)."""
    by_frame = {v.tick: v for v in episode}
    ends = {a.tick + a.n_step for a in advantages if a.terminal}
    assert len(ends) <= 1, f"terminal records disagree on the episode length: {ends}"
    frames = ends.pop() if ends else max(by_frame) + 1
    rewards = episode_rewards(frames, success, RewardConfig()) / scale
    ticks = [a.tick for a in advantages]
    assert ticks == sorted(set(ticks)) and set(ticks) <= set(by_frame)
    for a in advantages:
        t = a.tick
        assert key(a.header.stamp) == key(by_frame[t].header.stamp) and a.task == "pick"
        assert a.value == by_frame[t].value
        if a.terminal:
            expected_next = 0.0
        else:
            assert t + a.n_step in by_frame, f"frame {t}: bootstrap frame {t + a.n_step} was not valued"
            expected_next = by_frame[t + a.n_step].value
            assert a.n_step == N_STEP or a.truncated
        assert a.value_next == expected_next
        offline = window_advantage(list(rewards[t:t + a.n_step]), float(by_frame[t].value), expected_next)[0]
        assert a.advantage == np.float32(offline), f"frame {t}: {a.advantage} != {offline}"
        assert a.positive == (offline > threshold) and a.threshold == np.float32(threshold)
    # Without drops (the usual case for this tiny model) every frame but a truncated episode's last has one.
    if sorted(by_frame) == list(range(len(by_frame))):
        expected = list(range(frames)) if success is not None else list(range(max(by_frame)))
        assert ticks == expected


def test_advantages_lag_n_ticks_and_match_offline(system):
    probe = system["probe"]
    episode, advantages = run_episode(
        probe, 12, lambda: probe.episode_event(EpisodeEvent.END, EpisodeEvent.OUTCOME_SUCCESS))
    assert len(episode) >= 12
    assert sum(a.terminal for a in advantages) <= N_STEP
    check_against_offline(episode, advantages, True, SCALES["pick"], THRESHOLDS["pick"])


def test_reset_service_flushes_with_unknown_outcome(system):
    probe = system["probe"]
    responses = []

    def reset():
        responses.append(probe.call(probe.reset_client, Trigger.Request()))

    episode, advantages = run_episode(probe, 8, reset)
    assert responses[0].success and "truncated" in responses[0].message
    # No outcome: the horizons stop at the last valued frame and bootstrap from it; nothing is scored as a
    # success. Which frames the busy model valued varies; the rule is checked for those it valued.
    last = episode[-1].tick
    valued = {v.tick for v in episode}
    assert not any(a.terminal for a in advantages)
    truncated = sorted(a.tick for a in advantages if a.truncated)
    assert truncated == sorted(t for t in valued if last - N_STEP < t < last)
    check_against_offline(episode, advantages, None, SCALES["pick"], THRESHOLDS["pick"])


def test_task_change_starts_a_new_episode(system):
    probe = system["probe"]
    index = len(probe.values)
    probe.set_task("place")
    wait_until(lambda: any(v.task == "place" for v in probe.values[index:]), WAIT, "values for 'place'")
    first = next(k for k in range(index, len(probe.values)) if probe.values[k].task == "place")
    assert first in _starts(probe.values, first - 1)  # the new task's frames start a new episode
    wait_until(lambda: any(a.task == "place" for a in probe.advantages), WAIT, "an advantage for 'place'")
    adv = next(a for a in probe.advantages if a.task == "place")
    # "place" is not in the bundle's thresholds: the node's advantage_threshold (0.0) labels it, with the
    # task's own scale.
    assert adv.threshold == 0.0 and adv.n_step == N_STEP and not adv.terminal
    assert adv.reward_sum == np.float32(math.fsum([-1.0 / SCALES["place"]] * N_STEP))
    # The "pick" episode was cut without an outcome: none of its records is terminal (its pending frames
    # were flushed as truncated, however many the busy model valued).
    pick_before = [a for a in probe.advantages if a.task == "pick"]
    assert pick_before and not any(a.terminal for a in pick_before if a.episode == pick_before[-1].episode)
    # An EpisodeEvent START with a task switches back and updates the parameter.
    index = len(probe.values)
    probe.episode_event(EpisodeEvent.START, task="pick")
    wait_until(lambda: any(v.task == "pick" for v in probe.values[index:]), WAIT, "values for 'pick' again")
    assert probe.get_param("task") == "pick"


def test_time_going_back_truncates_the_episode_and_restarts(system):
    probe = system["probe"]
    index = len(probe.values)
    wait_until(lambda: len(probe.values) >= index + N_STEP + 3, WAIT, "some frames before the jump")
    jump_at = len(probe.values)
    # A bag loop / simulator reset in miniature. The node counts a step back of more than one tolerance
    # (50 ms here) as a jump; 2 s stays one even when the loaded robot stalls between two messages (at
    # -0.3 s a stall of a quarter second hid the jump on every stream, and the restart never came).
    probe.robot("offset -2.0")
    try:
        wait_until(lambda: episode_started(probe.values, jump_at), WAIT, "the restart",
                   (system["node"], system["robot"]))
    except AssertionError as exc:  # say whether values kept coming (a jump not seen) or stopped
        after = probe.values[jump_at:]
        last = f"; the last in episode {after[-1].episode}, frame {after[-1].tick}" if after else ""
        raise AssertionError(f"{exc}\n{len(after)} values after the jump{last}") from None
    finally:
        probe.robot("offset 0")  # forward again: a jump forward, no restart
    restart = _starts(probe.values, jump_at)[0]
    start = max([k for k in _starts(probe.values, 0) if k < restart] or [0])
    run = probe.values[start:restart]
    assert len(run) > N_STEP
    wait_all_advantages(probe)
    by_stamp = {key(a.header.stamp): a for a in probe.advantages}
    records = [by_stamp[key(v.header.stamp)] for v in run if key(v.header.stamp) in by_stamp]
    # The cut episode's pending frames were flushed as truncated, bootstrapped from its last valued frame
    # (never scored as a success, never dropped); the last valued frame itself has no horizon left. Which
    # frames the busy model valued varies; the rule is checked for the frames it did value.
    last = run[-1].tick
    valued = {v.tick for v in run}
    assert not any(r.terminal for r in records) and key(run[-1].header.stamp) not in by_stamp
    pending = sorted(t for t in valued if last - N_STEP < t < last)
    truncated = sorted(r.tick for r in records if r.truncated)
    assert truncated == [t for t in pending if t + N_STEP > last]
    assert all(r.tick + r.n_step == last for r in records if r.truncated)

    def clock_resets() -> int:
        status = probe.status("value estimator")
        return int(values_of(status)["clock_resets"]) if status is not None else 0

    wait_until(lambda: clock_resets() >= 1, WAIT, "clock_resets in the diagnostics")


FAULTS = [
    # (command, undo, input name in diagnostics, text expected in its status)
    ("encoding 0 bayer_rggb8", "encoding 0", "/cam0/image_raw", "unsupported image encoding"),
    ("size 2 40 30", "size 2", "/cam2/image_raw", "frame size changed"),
    ("drop_joint joint_3", "drop_joint", "/joint_states", "joint_3"),
    ("nan 1", "nan 0", "/joint_states", "non-finite"),
    ("pause 2", "resume 2", "/cam2/image_raw", "no message for more than"),
]


@pytest.mark.parametrize("command, undo, topic, needle", FAULTS, ids=[f[0].split()[0] for f in FAULTS])
def test_bad_input_is_reported_and_the_node_keeps_going(system, command, undo, topic, needle):
    probe = system["probe"]
    n_diag = len(probe.diagnostics)
    probe.robot(command)
    try:
        def reported():
            for array in probe.diagnostics[n_diag:]:
                for st in array.status:
                    if st.name.endswith(f"input {topic}") and st.level == WARN and needle in st.message:
                        return array, st
            return None

        array, st = wait_until(reported, WAIT, f"a warning for {topic} containing {needle!r}")
    finally:
        probe.robot(undo)
    # The node's summary status names the input while the problem lasts.
    main = next(m for m in array.status if m.name.endswith("value estimator"))
    assert main.level == WARN and topic.lstrip("/") in main.message
    if "no message" not in needle:
        assert needle in values_of(st)["last_error"]
    index = len(probe.values)
    wait_until(lambda: len(probe.values) >= index + 5, WAIT, "values after the fault was undone",
               (system["node"],))
    assert system["node"].poll() is None


def test_diagnostics_report_rate_latency_and_counters(system):
    probe = system["probe"]
    wait_until(lambda: probe.status("value estimator") is not None, WAIT, "diagnostics")
    main = values_of(probe.status("value estimator"))
    assert main["state"] == "active" and main["device"] == "cpu" and main["model"].endswith("tiny3")
    assert int(main["ticks"]) > 0 and float(main["rate_hz"]) >= 0.0
    for name in ("latency_model_p50_ms", "latency_model_p99_ms", "latency_e2e_p50_ms", "overhead_p50_ms",
                 "overhead_p99_ms", "decode_p50_ms", "publish_p50_ms", "callback_mean_ms"):
        assert math.isfinite(float(main[name])) and float(main[name]) >= 0.0, name
    for name in ("dropped_ticks", "sync_misses", "rejected_inputs", "advantages", "episodes", "errors"):
        assert int(main[name]) >= 0, name
    assert int(main["rejected_inputs"]) > 0  # the bad-input tests above
    assert int(main["errors"]) == 0, main["last_error"]
    for topic in ("/cam0/image_raw", "/cam1/image_raw/compressed", "/cam2/image_raw", "/joint_states"):
        st = probe.status(f"input {topic}")
        assert st is not None, topic
        counts = values_of(st)
        assert int(counts["received"]) > 0, topic
    assert values_of(probe.status("input /cam1/image_raw/compressed"))["type"] == "compressed"


def test_overlay_shows_the_value_bar(system, output_dir):
    probe = system["probe"]
    wait_until(lambda: len(probe.overlays) >= 2, WAIT, "overlay images")
    msg = probe.overlays[-1]
    assert msg.encoding == "rgb8" and (msg.height, msg.width) == (48, 64)
    assert msg.header.frame_id == "cam0_optical_frame"
    rgb = image_to_rgb(msg)
    cv2.imwrite(str(output_dir / "overlay.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    big = cv2.resize(rgb, (64 * 6, 48 * 6), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(output_dir / "overlay_x6.png"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
    decoded = cv2.imread(str(output_dir / "overlay.png"))
    assert decoded is not None and decoded.shape == (48, 64, 3)
    value = next(v.value for v in probe.values if key(v.header.stamp) == key(msg.header.stamp))
    x0, y0, x1, y1 = bar_rect(48, 64)
    column = rgb[y0:y1, (x0 + x1) // 2].astype(int)
    filled = int((column.max(axis=1) > 150).sum())
    assert abs(filled - (value + 1.0) * (y1 - y0)) <= 1.5, (filled, value)
