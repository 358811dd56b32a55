# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Builds the node's output messages from plain values (no publishing, no node state)."""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Duration, Time
from visualization_msgs.msg import Marker

from ove_ros.msg import Advantage, ValueEstimate
from ove_ros.overlay import value_color, value_fraction
from ove_ros.streaming import AdvantageRecord
from ove_ros.values import BinSupport


def value_msg(stamp: Time, frame_id: str, task: str, tick: int, out, bins: BinSupport, skew: float,
              with_distribution: bool) -> ValueEstimate:
    """ValueEstimate of one tick; ``out`` is the engine's ValueOutput (probs, value, std, entropy, ...)."""
    msg = ValueEstimate(task=task, tick=tick, value=float(out.value), std=float(out.std),
                        entropy=float(out.entropy), v_min=float(bins.v_min), v_max=float(bins.v_max),
                        num_bins=int(bins.num_bins), inference_latency=float(out.latency_s),
                        input_skew=float(skew))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    if with_distribution:
        probs = np.asarray(out.probs, dtype=np.float32).reshape(-1)
        msg.probabilities = array.array("f", probs.tobytes())
    return msg


def advantage_msg(rec: AdvantageRecord, stamp: Time, frame_id: str, task: str) -> Advantage:
    msg = Advantage(task=task, tick=rec.tick, n_step=rec.n_step, advantage=rec.advantage, value=rec.value,
                    value_next=rec.value_next, reward_sum=rec.reward_sum, terminal=rec.terminal,
                    truncated=rec.truncated, positive=rec.positive, threshold=rec.threshold)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def marker_msg(stamp: Time, frame_id: str, value: float, std: float, task: str, bins: BinSupport) -> Marker:
    """A text marker 1 m above ``frame_id`` showing the value; it expires after 1 s without updates."""
    m = Marker(ns="value_estimator", id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD,
               text=f"V {value:+.2f} \u00b1 {std:.2f}\n{task}", lifetime=Duration(sec=1))
    m.header.stamp = stamp
    m.header.frame_id = frame_id
    m.pose.position.z = 1.0
    m.pose.orientation.w = 1.0
    m.scale.z = 0.12
    r, g, b = value_color(value_fraction(value, bins.v_min, bins.v_max))
    m.color.r, m.color.g, m.color.b, m.color.a = r / 255.0, g / 255.0, b / 255.0, 1.0
    return m
