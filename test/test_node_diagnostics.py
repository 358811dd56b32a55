# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's /diagnostics content from a counters snapshot, without a ROS graph: levels, summary line,
per-input statuses and every key monitoring reads."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

pytest.importorskip("ove_ros.msg")  # the ROS layer must be importable (built interfaces)

from ove_ros.frame_grid import GridStats  # noqa: E402
from ove_ros.ros.diagnostics import ERROR, OK, WARN, Window  # noqa: E402
from ove_ros.ros.diagnostics_report import (  # noqa: E402
    WINDOWS,
    DiagnosticsSnapshot,
    InputSnapshot,
    diagnostic_array,
)
from ove_ros.streaming import StreamStats  # noqa: E402

# The node status's keys, in order: dashboards and the process tests read them by name.
KEYS = [
    "state", "device", "model", "task", "episode_frames", "fps", "n_step", "contract", "ticks", "rate_hz",
    "latency_model_p50_ms", "latency_model_p99_ms", "latency_e2e_p50_ms", "latency_e2e_p99_ms",
    "latency_wait_p50_ms", "latency_wait_p99_ms", "overhead_p50_ms", "overhead_p99_ms", "overhead_mean_ms",
    "decode_p50_ms", "publish_p50_ms", "callback_p50_ms", "callback_mean_ms", "dropped_ticks",
    "grid_frames", "grid_ticks_missing_input", "grid_ticks_decided_by_max_age", "out_of_order_inputs",
    "late_starts", "late_ends", "frames_taken_back_by_end", "frames_outside_episodes", "sync_misses",
    "clock_resets", "advantages_bootstrap_shifted", "advantages_bootstrap_missing", "advantages_truncated",
    "advantages_unpublished_tail", "rejected_inputs", "advantages", "episodes", "errors", "last_error",
]
INPUT_KEYS = ["type", "received", "synced", "rejected", "last_error", "silent_s"]


def camera(**kw) -> InputSnapshot:
    base = dict(topic="camera/image", resolved="/robot/camera/image", kind="raw", received=120, rejected=0,
                last_error="", silent_s=0.05, timed_out=False, new_problems=0)
    base.update(kw)
    return InputSnapshot(**base)


def snapshot(**kw) -> DiagnosticsSnapshot:
    windows = {k: Window() for k in WINDOWS}
    for x in (0.010, 0.020, 0.030):
        windows["model"].add(x)
    windows["overhead"].add(0.002)
    base = dict(
        node="/robot/value_estimator", hardware="cpu", active=True,
        inputs=[camera(), camera(topic="joint_states", resolved="/robot/joint_states", kind="joint_states",
                                 received=300, rejected=2)],
        input_timeout=1.0, error_recent=False, last_error="", rate_hz=2.5, checkpoint="/bundles/pick",
        task="pick", episode_frames=17, fps=10.0, n_step=50, contract="fps from bundle, n_step from bundle",
        ticks=40, windows=windows, dropped_busy=3,
        grid=GridStats(kept=41, dropped_missing=4, forced=1, out_of_order=2, late_starts=1, late_ends=0,
                       retracted=5),
        outside_frames=6, clock_resets=1,
        advantage_stats=StreamStats(published=9, shifted=2, missing=1, truncated=3, unpublished_tail=7),
        advantages=9, episodes=2, errors=0)
    base.update(kw)
    return DiagnosticsSnapshot(**base)


def values(status) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def level(status) -> int:
    return status.level[0] if isinstance(status.level, bytes) else int(status.level)


def test_node_status_first_with_every_key_in_order():
    array = diagnostic_array(snapshot())
    node = array.status[0]
    assert node.name == "/robot/value_estimator: value estimator" and node.hardware_id == "cpu"
    assert [kv.key for kv in node.values] == KEYS
    v = values(node)
    assert v["state"] == "active" and v["model"] == "/bundles/pick" and v["task"] == "pick"
    assert v["latency_model_p50_ms"] == "20" and v["overhead_mean_ms"] == "2"
    assert v["latency_e2e_p50_ms"] == "nan"  # no samples yet
    assert v["grid_frames"] == "41" and v["sync_misses"] == v["grid_ticks_missing_input"] == "4"
    assert v["frames_taken_back_by_end"] == "5" and v["frames_outside_episodes"] == "6"
    assert v["advantages_truncated"] == "3" and v["advantages_unpublished_tail"] == "7"
    assert v["rejected_inputs"] == "2" and v["dropped_ticks"] == "3"
    assert level(node) == OK and node.message == "ok, 2.5 ticks/s"


def test_one_status_per_input_named_by_its_full_topic():
    array = diagnostic_array(snapshot(inputs=[camera(silent_s=math.nan, received=0)]))
    assert len(array.status) == 2
    inp = array.status[1]
    assert inp.name == "/robot/value_estimator: input /robot/camera/image"
    assert [kv.key for kv in inp.values] == INPUT_KEYS
    assert values(inp) == {"type": "raw", "received": "0", "synced": "41", "rejected": "0", "last_error": "",
                           "silent_s": "nan"}
    assert level(inp) == OK and inp.message == "ok"


def test_a_silent_or_troubled_input_warns_and_names_itself_in_the_summary():
    array = diagnostic_array(snapshot(inputs=[
        camera(timed_out=True),
        camera(topic="joint_states", resolved="/robot/joint_states", new_problems=2,
               last_error="message dropped: header.stamp is 0")]))
    node, cam, joints = array.status
    assert level(cam) == WARN and cam.message == "no message for more than 1.0 s"
    assert level(joints) == WARN
    assert joints.message == "2 problem(s), last: message dropped: header.stamp is 0"
    assert level(node) == WARN
    assert node.message == ("camera/image: no message for more than 1.0 s; joint_states: 2 problem(s), "
                            "last: message dropped: header.stamp is 0")


def test_old_problems_do_not_warn_again():
    array = diagnostic_array(snapshot(inputs=[camera(new_problems=0, last_error="an old problem")]))
    assert level(array.status[1]) == OK and level(array.status[0]) == OK


def test_a_recent_tick_failure_is_an_error_and_inactive_says_so():
    failed = snapshot(error_recent=True, last_error="RuntimeError: boom", errors=1)
    node = diagnostic_array(failed).status[0]
    assert level(node) == ERROR and node.message == "tick failed: RuntimeError: boom"
    assert values(node)["errors"] == "1" and values(node)["last_error"] == "RuntimeError: boom"
    node = diagnostic_array(replace(failed, active=False)).status[0]
    assert level(node) == ERROR and node.message == "inactive" and values(node)["state"] == "inactive"
