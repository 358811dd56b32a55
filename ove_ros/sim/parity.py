# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Live node vs training code, frame by frame: the runtime side of the parity checks.

The node's published values and advantages are matched to the dataset frame they claim (episode, frame index)
and compared with offline ones; an advantage whose horizon the node shortened (bootstrap from a neighbour, or
an episode's end) is compared with the offline advantage of that horizon from the offline values. ``replay``
plays recordings into a running node and collects what it publishes. The offline side (bags converted and
labelled by the training code) is ``ove_ros.main_job.parity``, so this module needs no training package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ove_ros.values import RewardConfig, episode_rewards, window_advantage

TOLERANCE = 1e-3
QUIET_S = 10.0  # seconds without output after a replayed bag: its episode produced nothing more


@dataclass
class LiveEpisode:
    """What the node published for one episode: values by frame index, and its advantage records."""

    values: dict[int, float] = field(default_factory=dict)
    advantages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class OfflineEpisode:
    values: np.ndarray
    advantages: np.ndarray
    success: bool
    scale: float


def advantage_fields(msg) -> dict[str, Any]:
    return {"tick": int(msg.tick), "n_step": int(msg.n_step), "advantage": float(msg.advantage),
            "terminal": bool(msg.terminal), "truncated": bool(msg.truncated)}


def compare(live: dict[str, LiveEpisode], offline: dict[str, OfflineEpisode], n_step: int,
            reward: RewardConfig) -> dict[str, Any]:
    """Per-frame agreement of values and advantages (each advantage against its own horizon)."""
    dv, da, flips, per_episode = [], [], 0, {}
    frames = valued = shifted = 0
    for name, off in offline.items():
        run = live.get(name, LiveEpisode())
        count = len(off.values)
        frames += count
        rewards = episode_rewards(count, off.success, reward) / off.scale
        ep_dv = [abs(v - off.values[t]) for t, v in run.values.items() if t < count]
        ep_da = []
        for rec in run.advantages:
            t, n = rec["tick"], rec["n_step"]
            if t >= count or t + n > count:
                continue
            if n == n_step or rec["terminal"]:
                expected = float(off.advantages[t])
            else:
                shifted += 1
                nxt = 0.0 if t + n >= count else float(off.values[t + n])
                expected = window_advantage(list(rewards[t:t + n]), float(off.values[t]), nxt)[0]
            ep_da.append(abs(rec["advantage"] - expected))
            flips += int((rec["advantage"] > 0) != (expected > 0))
        valued += len(ep_dv)
        dv += ep_dv
        da += ep_da
        per_episode[name] = {"frames": count, "valued": len(ep_dv), "advantages": len(ep_da),
                             "max_value_diff": max(ep_dv, default=None),
                             "max_advantage_diff": max(ep_da, default=None)}
    return {
        "frames": frames, "valued": valued, "not_valued": frames - valued,
        "value_max_abs_diff": max(dv, default=None),
        "value_mean_abs_diff": float(np.mean(dv)) if dv else None,
        "advantages": len(da), "advantage_max_abs_diff": max(da, default=None),
        "advantage_mean_abs_diff": float(np.mean(da)) if da else None,
        "advantages_over_tolerance": int(sum(d > TOLERANCE for d in da)), "sign_flips": flips,
        "advantages_with_shortened_horizon": shifted, "tolerance": TOLERANCE,
        "ok": bool(dv and da and max(dv) <= TOLERANCE and max(da) <= TOLERANCE),
        "episodes": per_episode,
    }


class _Listener:
    """Records the node's outputs in this process, episode by episode."""

    def __init__(self, node_name: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile

        from ove_ros.msg import Advantage, ValueEstimate

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("parity_listener", context=self.context)
        self.current = LiveEpisode()
        self.serials: list[int] = []
        self.value_serial: dict[int, int] = {}
        self.lock = threading.Lock()
        qos = QoSProfile(depth=1000)
        self.node.create_subscription(ValueEstimate, f"/{node_name}/value", self._value, qos)
        self.node.create_subscription(Advantage, f"/{node_name}/advantage", self._advantage, qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _value(self, msg) -> None:
        if msg.in_episode:
            with self.lock:
                self.serials.append(int(msg.episode))
                self.current.values[int(msg.tick)] = float(msg.value)
                self.value_serial[int(msg.tick)] = int(msg.episode)

    def _advantage(self, msg) -> None:
        with self.lock:
            self.current.advantages.append({**advantage_fields(msg), "episode": int(msg.episode)})

    def take(self) -> LiveEpisode:
        """The outputs since the last take, of the episode most of its values belong to (the serial guards
        against a previous episode's late records)."""
        with self.lock:
            out, self.current = self.current, LiveEpisode()
            serials, self.serials = self.serials, []
            by_tick, self.value_serial = self.value_serial, {}
        closed = [a["episode"] for a in out.advantages if a["terminal"]]
        if closed or serials:
            # The episode the END closed (its terminal records), else the one most values belong to.
            pool = closed or serials
            serial = max(set(pool), key=pool.count)
            out.values = {t: v for t, v in out.values.items() if by_tick.get(t) == serial}
            out.advantages = [a for a in out.advantages if a["episode"] == serial]
        return out

    def count(self) -> int:
        with self.lock:
            return len(self.current.values) + len(self.current.advantages)

    def ended(self) -> bool:
        with self.lock:
            return any(a["terminal"] for a in self.current.advantages)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(5)


def replay(bags: Sequence[Path], topics: Sequence[str], node_name: str, env: dict[str, str], log: Path,
           rate: float, timeout: float = 300.0) -> dict[str, LiveEpisode]:
    """Play each bag into a running node (``rate`` 0: as fast as possible); its outputs by bag name.

    Each bag holds one START..END episode: the node's terminal advantage (the END's flush) marks its end.
    """
    listener = _Listener(node_name)
    out: dict[str, LiveEpisode] = {}
    try:
        for bag in bags:
            listener.take()
            with open(log, "a") as handle:
                player = subprocess.run(
                    [sys.executable, "-m", "ove_ros.sim.bag_player", str(bag), f"rate={rate}",
                     f"topics={json.dumps(list(topics))}"],
                    env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout)
            if player.returncode != 0:
                raise RuntimeError(f"playing {bag} failed (exit {player.returncode}); see {log}")
            # The END's flush (terminal records) marks the end; an episode with nothing to flush shows none,
            # so a quiet spell after the last delivered message ends the wait too.
            deadline = time.monotonic() + timeout
            quiet, seen = time.monotonic(), -1
            while not listener.ended() and time.monotonic() - quiet < QUIET_S:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the node published no episode end for {bag} within {timeout} s")
                count = listener.count()
                if count != seen:
                    quiet, seen = time.monotonic(), count
                time.sleep(0.05)
            count = -1
            while count != listener.count():  # the flush is one burst: let it settle
                count = listener.count()
                time.sleep(0.2)
            out[Path(bag).name] = listener.take()
    finally:
        listener.close()
    return out
