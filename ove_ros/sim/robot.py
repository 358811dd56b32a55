# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``sim_robot``: MetaWorld episodes published as a ROS 2 robot (cameras, joint states, episode events).

    ros2 run ove_ros sim_robot --ros-args --params-file config/sim_robot.yaml -p episodes:=6

Per frame, all on one stamp derived from simulated time: ``camera/<camera>/image_raw`` (sensor_msgs/Image,
rgb8) for each camera and ``joint_states`` (sensor_msgs/JointState). Per episode: ``episode_events``
(ove_ros/EpisodeEvent) START before the first frame and END after the last, with the task and the outcome the
environment reports. Frames go out at ``rate_hz`` of wall time (0: as fast as the simulation runs); stamps
advance by the simulation period (12.5 ms), so bags and datasets do not depend on the machine's speed.
"""

from __future__ import annotations

import sys
import threading
import time

import rclpy
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState

from ove_ros.msg import EpisodeEvent
from ove_ros.ros.conversions import rgb_to_image
from ove_ros.sim.episodes import TASKS, SimConfig, SimWorld, episode_id

NS = 1_000_000_000
EPISODE_GAP_NS = NS  # simulated time between two episodes, so their stamps never overlap

_SIM = SimConfig()
PARAMS = (
    ("tasks", list(_SIM.tasks), "MetaWorld tasks, cycled episode by episode."),
    ("cameras", list(_SIM.cameras), "MetaWorld cameras, each on camera/<name>/image_raw."),
    ("image_size", _SIM.image_size, "Square image size in pixels."),
    ("max_steps", _SIM.max_steps, "Frames per episode at most; an episode also ends at the first success."),
    ("fail_fraction", _SIM.fail_fraction, "Probability that an episode gets a fatal mistake."),
    ("noise_std_max", _SIM.noise_std_max, "Per-episode action noise std is drawn from [0, noise_std_max]."),
    ("speed_min", _SIM.speed_min, "Per-episode speed factor is drawn from [speed_min, 1]."),
    ("max_pauses", _SIM.max_pauses, "Short outcome-neutral stops (2-5 frames) per episode, at most."),
    ("position_range", _SIM.position_range,
     "Object/goal randomization as a fraction of MetaWorld's ranges (1 = MetaWorld's own)."),
    ("episodes", 0, "Episodes to run; 0 runs forever."),
    ("first_seed", 0, "Seed of the first episode; episode i uses first_seed + i."),
    ("seeds", [-1], "Explicit seed per episode (tasks still cycle); [-1] uses first_seed + i."),
    ("rate_hz", 20.0, "Frames per second of wall time; 0 publishes as fast as the simulation runs."),
    ("event_gap", 0.1, "Wall seconds between an episode event and the neighbouring frames."),
    ("wait_for_subscribers", 0, "Before the first episode, wait until every camera, joint and event topic "
     "has this many subscribers (e.g. a recorder and the value estimator)."),
    ("startup_timeout", 60.0, "Seconds to wait for subscribers before giving up with an error."),
    ("stamp_origin", "now", "now: the simulated clock starts at the wall time of the start; zero: at 1 s "
     "(reproducible stamps; a zero stamp means 'unset' to ROS tools)."),
    ("frame_id", "world", "header.frame_id of the images and joint states."),
    ("exit_when_done", True, "Shut down after the last episode (when episodes > 0)."),
)


class SimRobot(Node):
    """Publishes the episodes of a ``SimWorld``; ``run`` is the (blocking) simulation loop."""

    def __init__(self) -> None:
        super().__init__("sim_robot")
        for name, default, description in PARAMS:
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        p = {name: self.get_parameter(name).value for name, _, _ in PARAMS}
        self.p = p
        self.config = SimConfig(
            tasks=tuple(p["tasks"]), cameras=tuple(p["cameras"]), image_size=p["image_size"],
            max_steps=p["max_steps"], fail_fraction=p["fail_fraction"], noise_std_max=p["noise_std_max"],
            speed_min=p["speed_min"], max_pauses=p["max_pauses"], position_range=p["position_range"],
        )
        if p["stamp_origin"] not in ("now", "zero"):
            raise ValueError(f"stamp_origin must be 'now' or 'zero', got {p['stamp_origin']!r}")
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)  # recorders must not lose frames
        self.image_pubs = {
            c: self.create_publisher(Image, f"camera/{c}/image_raw", qos) for c in self.config.cameras
        }
        self.joint_pub = self.create_publisher(JointState, "joint_states", qos)
        self.event_pub = self.create_publisher(EpisodeEvent, "episode_events", QoSProfile(depth=100))
        self.world = SimWorld(self.config)
        self.world.prepare()  # no pause mid-run when a task's first episode comes up
        self.clock_ns = time.time_ns() if p["stamp_origin"] == "now" else NS
        self.step_ms: list[float] = []

    # ------------------------------------------------------------------------------------------ publishing

    @staticmethod
    def _stamp(stamp_ns: int) -> Time:
        sec, nanosec = divmod(int(stamp_ns), NS)
        return Time(sec=sec, nanosec=nanosec)

    def _publish_frame(self, frame, stamp_ns: int) -> None:
        stamp = self._stamp(stamp_ns)
        for camera, pub in self.image_pubs.items():
            pub.publish(rgb_to_image(frame.images[camera], stamp, self.p["frame_id"]))
        joints = JointState()
        joints.header.stamp = stamp
        joints.header.frame_id = self.p["frame_id"]
        joints.name = list(self.world.joint_names)
        joints.position = frame.position.tolist()
        joints.velocity = frame.velocity.tolist()
        self.joint_pub.publish(joints)

    def _publish_event(self, event: int, stamp_ns: int, task: str, seed: int, outcome: int = 0) -> None:
        msg = EpisodeEvent(
            event=event, outcome=outcome, task=TASKS[task].instruction, episode_id=episode_id(task, seed)
        )
        msg.header.stamp = self._stamp(stamp_ns)
        self.event_pub.publish(msg)

    # -------------------------------------------------------------------------------------------- running

    def wait_for_subscribers(self) -> None:
        """Block until every output has enough subscribers, so the first frames are not lost."""
        want = int(self.p["wait_for_subscribers"])
        if want <= 0:
            return
        pubs = [*self.image_pubs.values(), self.joint_pub, self.event_pub]
        deadline = time.monotonic() + float(self.p["startup_timeout"])
        while min(pub.get_subscription_count() for pub in pubs) < want:
            if time.monotonic() > deadline:
                counts = {pub.topic_name: pub.get_subscription_count() for pub in pubs}
                raise TimeoutError(f"waited {self.p['startup_timeout']} s for {want} subscriber(s): {counts}")
            time.sleep(0.05)
        time.sleep(0.3)  # discovery completes per reader; give the last ones a moment to match

    def _sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def run_episode(self, task: str, seed: int) -> bool:
        """Simulate and publish one episode; returns its outcome."""
        period = 1.0 / self.p["rate_hz"] if self.p["rate_hz"] > 0 else 0.0
        gap = float(self.p["event_gap"])
        dt_ns = int(round(self.world.dt * NS))
        start_ns = self.clock_ns
        tick = time.monotonic()
        frame = self.world.reset(task, seed)
        self.step_ms.append((time.monotonic() - tick) * 1e3)
        self._publish_event(EpisodeEvent.START, start_ns, task, seed)
        time.sleep(gap)
        next_time = time.monotonic()
        while True:
            self._publish_frame(frame, start_ns + frame.index * dt_ns)
            if self.world.done or not rclpy.ok():
                break
            next_time += period
            tick = time.monotonic()
            frame = self.world.step()
            self.step_ms.append((time.monotonic() - tick) * 1e3)
            self._sleep_until(next_time)
        end_ns = start_ns + frame.index * dt_ns
        time.sleep(gap)
        outcome = EpisodeEvent.OUTCOME_SUCCESS if frame.success else EpisodeEvent.OUTCOME_FAILURE
        self._publish_event(EpisodeEvent.END, end_ns, task, seed, outcome)
        self.clock_ns = end_ns + EPISODE_GAP_NS
        time.sleep(gap)
        self.get_logger().info(
            f"episode {episode_id(task, seed)}: {'success' if frame.success else 'failure'} after "
            f"{frame.index + 1} frames ({self.world.plan.failure or 'no fatal mistake'})"
        )
        return frame.success

    def run(self) -> None:
        """Run the configured episodes (or forever)."""
        self.wait_for_subscribers()
        count = int(self.p["episodes"])
        tasks, first = self.config.tasks, int(self.p["first_seed"])
        seeds = [int(s) for s in self.p["seeds"] if s >= 0]
        if seeds:
            count = len(seeds) if count <= 0 else min(count, len(seeds))
        index = 0
        while rclpy.ok() and (count <= 0 or index < count):
            seed = seeds[index] if seeds else first + index
            self.run_episode(tasks[index % len(tasks)], seed)
            index += 1
        if self.step_ms:
            ms = sorted(self.step_ms)
            self.get_logger().info(
                f"simulation + rendering: median {ms[len(ms) // 2]:.1f} ms/frame over {len(ms)} frames"
            )

    def destroy_node(self) -> None:
        self.world.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    executor = SingleThreadedExecutor()
    spinner = threading.Thread(target=executor.spin, daemon=True)  # parameter services while we simulate
    code = 0
    try:
        node = SimRobot()
        executor.add_node(node)
        spinner.start()
        node.run()
        if not node.p["exit_when_done"] or int(node.p["episodes"]) <= 0:
            spinner.join()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, TimeoutError, RuntimeError) as exc:
        print(f"sim_robot: {exc}", file=sys.stderr)
        code = 1
    finally:
        executor.shutdown()
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
