# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""The node's executor against rclpy's stock MultiThreadedExecutor, under the node's kind of load.

    python benchmarks/bench_executor.py [seconds=6] [rate_hz=40] [streams=3] [work_ms=4] [repeats=2] [hogs=1]

One process, like the node: ``streams`` subscriptions (one mutually exclusive group each, as the node's
cameras and joints) whose callbacks spend ``work_ms`` of Python time each, a "model" thread that
alternates Python work and sleeps (the inference worker), and a publisher thread sending 64x64 RGB images
on every stream at ``rate_hz`` with the wall time in the header. Per executor: the process CPU time, the
callbacks run, the delay from publishing to the callback (median, p99, max), how many pool submissions each
callback cost, and the model thread's rounds (what the spin leaves it). ``hogs`` busy processes run
beside it, as the simulator and the recorder do in a demo run. Writes ``benchmarks/results/executor.json``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine_info import basic  # noqa: E402
from ove_ros import typed_cli  # noqa: E402
from ove_ros.training.checkpoint import atomic_write_text  # noqa: E402
from ove_ros.typed_config import setting  # noqa: E402


@dataclass
class Settings:
    """Load and length of each run (``key=value``)."""

    seconds: float = setting(6.0, "Publishing time per run.", gt=0)
    rate_hz: float = setting(40.0, "Messages per second on each stream.", gt=0)
    streams: int = setting(3, "Subscriptions (cameras + joints).", ge=1)
    work_ms: float = setting(4.0, "Python time each callback spends.", ge=0)
    threads: int = setting(4, "Executor threads (the node's).", ge=1)
    repeats: int = setting(2, "Runs per executor, alternating.", ge=1)
    hogs: int = setting(1, "Busy processes beside it (the simulator and recorder of a demo run).", ge=0)
    output: str = setting(str(REPO / "benchmarks" / "results" / "executor.json"), "Result JSON.")


def _spin_python(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def run_once(kind: str, s: Settings) -> dict:
    import rclpy
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from ove_ros.ros.executor import NodeExecutor, track_submissions

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("executor_bench", context=context)
    executor = (NodeExecutor if kind == "node" else MultiThreadedExecutor)(num_threads=s.threads,
                                                                           context=context)
    pool = track_submissions(executor)  # counts the stock executor's submissions too
    delays: list[float] = []
    lock = threading.Lock()

    def callback(msg: Image) -> None:
        delay = time.time() - (msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        _spin_python(s.work_ms * 1e-3)
        with lock:
            delays.append(delay)

    qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    pubs = []
    for i in range(s.streams):
        group = MutuallyExclusiveCallbackGroup()
        node.create_subscription(Image, f"stream{i}", callback, qos, callback_group=group)
        pubs.append(node.create_publisher(Image, f"stream{i}", qos))
    stop = threading.Event()
    rounds = [0]

    def model() -> None:  # the inference worker: Python work, then a wait for the next frame
        while not stop.is_set():
            _spin_python(0.003)
            time.sleep(0.002)
            rounds[0] += 1

    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    worker = threading.Thread(target=model, daemon=True)
    msg = Image(height=64, width=64, encoding="rgb8", step=192, data=bytes(64 * 64 * 3))
    spinner.start()
    time.sleep(0.5)  # discovery within the process
    worker.start()
    cpu0, wall0, sent = time.process_time(), time.perf_counter(), 0
    next_t = wall0
    while time.perf_counter() - wall0 < s.seconds:
        now = time.time()
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
        for pub in pubs:
            pub.publish(msg)
            sent += 1
        next_t += 1.0 / s.rate_hz
        time.sleep(max(0.0, next_t - time.perf_counter()))
    deadline = time.perf_counter() + 30.0
    while len(delays) < sent and time.perf_counter() < deadline:
        time.sleep(0.05)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    stop.set()
    executor.shutdown(timeout_sec=5.0)
    node.destroy_node()
    rclpy.try_shutdown(context=context)
    spinner.join(10.0)
    worker.join(10.0)
    d = sorted(delays)
    return {
        "executor": kind, "sent": sent, "callbacks": len(d), "wall_s": wall,
        "cpu_per_wall": cpu / wall,
        "delay_ms_median": 1e3 * statistics.median(d) if d else None,
        "delay_ms_p99": 1e3 * d[int(0.99 * (len(d) - 1))] if d else None,
        "delay_ms_max": 1e3 * d[-1] if d else None,
        "submissions_per_callback": pool.submitted / max(len(d), 1),
        "model_rounds_per_s": rounds[0] / wall,
    }


def main(argv: list[str] | None = None) -> int:
    s = typed_cli.parse_or_exit(Settings, argv, "usage: python benchmarks/bench_executor.py [key=value ...]",
                                __doc__.split("\n\n")[0])
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(s.hogs)]
    try:
        runs = _runs(s)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    out = Path(s.output)
    doc = {"machine": basic(), "settings": vars(s), "runs": runs}
    atomic_write_text(out, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def _runs(s: Settings) -> list[dict]:
    runs = []
    for _ in range(s.repeats):
        for kind in ("stock", "node"):
            row = run_once(kind, s)
            runs.append(row)
            print(f"{kind:5s}: {row['callbacks']}/{row['sent']} callbacks, CPU "
                  f"{100 * row['cpu_per_wall']:.0f} % of a core, "
                  f"delay median {row['delay_ms_median']:.1f} ms "
                  f"p99 {row['delay_ms_p99']:.1f} ms max {row['delay_ms_max']:.1f} ms, "
                  f"{row['submissions_per_callback']:.1f} submissions per callback, "
                  f"model thread {row['model_rounds_per_s']:.0f} rounds/s", flush=True)
    return runs


if __name__ == "__main__":
    sys.exit(main())
