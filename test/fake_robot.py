# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A fake robot for the node tests and the soak benchmark: cameras + joint states stamped from one clock.

    python test/fake_robot.py --cameras 3 --width 64 --height 48 --camera-rate 30 --joint-rate 100 \
        --transports raw,compressed,raw --joints 6

Camera i publishes on ``cam<i>/image_raw`` (sensor_msgs/Image, rgb8) or ``cam<i>/image_raw/compressed``
(CompressedImage, jpeg); all cameras of one frame carry the same stamp. Joint states (``joint_<k>``) go to
``joint_states``. Faults are switched on and off at run time with std_msgs/String on ``fake_robot/command``:

    pause <i> | resume <i>          stop / restart camera i
    encoding <i> <enc> | encoding <i>   claim a wrong encoding for camera i (rgb8 bytes) / back to normal
    size <i> <w> <h> | size <i>      publish camera i (raw) at another size / back to normal
    nan <0|1>                        joint_0 becomes NaN
    drop_joint <name> | drop_joint   leave a joint out of JointState / back to normal
    offset <seconds>                 add this to every stamp from now on (negative: time goes back)

With ``--stamp-log FILE`` every published stamp is written as ``camera|joints <sec> <nanosec>``, so a test
can check the node's output stamps against the complete list (a best-effort subscriber may miss some).
"""

from __future__ import annotations

import argparse
import math
import sys
from functools import lru_cache

import cv2
import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import String

FRAMES = 30  # distinct frames per camera, cycled


def make_frames(index: int, width: int, height: int) -> list[np.ndarray]:
    """A moving square over a per-camera colour gradient, so images differ over time and between cameras."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    base = np.zeros((height, width, 3), np.uint8)
    base[..., 0] = (x + 40 * index) % 256
    base[..., 1] = y
    base[..., 2] = 90 + 50 * index
    frames = []
    side = max(4, min(width, height) // 4)
    for k in range(FRAMES):
        frame = base.copy()
        cx = int((width - side) * (0.5 + 0.5 * math.sin(2 * math.pi * k / FRAMES)))
        cy = (height - side) // 2
        frame[cy:cy + side, cx:cx + side] = (255, 255, 255)
        frames.append(frame)
    return frames


class FakeRobot(Node):
    def __init__(self, args: argparse.Namespace):
        super().__init__("fake_robot")
        self.args = args
        transports = args.transports.split(",") if args.transports else ["raw"]
        if len(transports) == 1:
            transports *= args.cameras
        self.cameras = []
        for i, transport in enumerate(transports[: args.cameras]):
            frames = make_frames(i, args.width, args.height)
            if transport == "compressed":
                payloads = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1].tobytes()
                            for f in frames]
                pub = self.create_publisher(CompressedImage, f"cam{i}/image_raw/compressed",
                                            qos_profile_sensor_data)
            else:
                payloads = [f.tobytes() for f in frames]
                pub = self.create_publisher(Image, f"cam{i}/image_raw", qos_profile_sensor_data)
            self.cameras.append({"pub": pub, "transport": transport, "payloads": payloads, "paused": False,
                                 "encoding": None, "size": None})
        self.joint_names = [f"joint_{k}" for k in range(args.joints)]
        self.joint_pub = self.create_publisher(JointState, "joint_states", QoSProfile(depth=10))
        self.nan = False
        self.drop_joint = ""
        self.offset = Duration()
        self.frame = 0
        self.stamp_log = open(args.stamp_log, "w", buffering=1) if args.stamp_log else None
        self.create_subscription(String, "fake_robot/command", self.on_command, 10)
        self.create_timer(1.0 / args.camera_rate, self.publish_cameras)
        self.create_timer(1.0 / args.joint_rate, self.publish_joints)

    def on_command(self, msg: String) -> None:
        words = msg.data.split()
        if not words:
            return
        cmd, rest = words[0], words[1:]
        if cmd in ("pause", "resume"):
            self.cameras[int(rest[0])]["paused"] = cmd == "pause"
        elif cmd == "encoding":
            self.cameras[int(rest[0])]["encoding"] = rest[1] if len(rest) > 1 else None
        elif cmd == "size":
            self.cameras[int(rest[0])]["size"] = (int(rest[1]), int(rest[2])) if len(rest) > 2 else None
        elif cmd == "nan":
            self.nan = rest[0] == "1"
        elif cmd == "offset":
            self.offset = Duration(nanoseconds=int(float(rest[0]) * 1e9))
        elif cmd == "drop_joint":
            self.drop_joint = rest[0] if rest else ""
        else:
            self.get_logger().warning(f"unknown command {msg.data!r}")
            return
        self.get_logger().info(f"command: {msg.data}")

    def publish_cameras(self) -> None:
        stamp = (self.get_clock().now() + self.offset).to_msg()
        k = self.frame % FRAMES
        self.frame += 1
        self.log_stamp("camera", stamp)
        for i, cam in enumerate(self.cameras):
            if cam["paused"]:
                continue
            if cam["transport"] == "compressed":
                msg = CompressedImage(format="jpeg", data=cam["payloads"][k])
            elif cam["size"] is not None:
                w, h = cam["size"]
                msg = Image(height=h, width=w, step=w * 3, encoding=cam["encoding"] or "rgb8",
                            data=resized_frame(i, w, h, k))
            else:
                msg = Image(height=self.args.height, width=self.args.width, step=self.args.width * 3,
                            encoding=cam["encoding"] or "rgb8", data=cam["payloads"][k])
            msg.header.stamp = stamp
            msg.header.frame_id = f"cam{i}_optical_frame"
            cam["pub"].publish(msg)

    def publish_joints(self) -> None:
        now = self.get_clock().now() + self.offset
        t = now.nanoseconds * 1e-9
        names, positions = [], []
        for k, name in enumerate(self.joint_names):
            if name != self.drop_joint:
                names.append(name)
                positions.append(0.5 * math.sin(t + k))
        if self.nan and positions:
            positions[0] = math.nan
        msg = JointState(name=names, position=positions)
        msg.header.stamp = now.to_msg()
        self.log_stamp("joints", msg.header.stamp)
        self.joint_pub.publish(msg)

    def log_stamp(self, kind: str, stamp) -> None:
        if self.stamp_log is not None:
            self.stamp_log.write(f"{kind} {stamp.sec} {stamp.nanosec}\n")


@lru_cache(maxsize=64)
def resized_frame(index: int, width: int, height: int, k: int) -> bytes:
    return make_frames(index, width, height)[k].tobytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--camera-rate", type=float, default=30.0)
    parser.add_argument("--joint-rate", type=float, default=100.0)
    parser.add_argument("--joints", type=int, default=6)
    parser.add_argument("--transports", default="raw", help="raw|compressed, one for all or one per camera")
    parser.add_argument("--stamp-log", default="", help="write every published stamp to this file")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=[sys.argv[0], *ros_args])
    node = FakeRobot(args)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        if rclpy.ok():
            raise  # a real error; otherwise a callback raced the signal-triggered shutdown
    finally:
        if node.stamp_log is not None:
            node.stamp_log.close()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
