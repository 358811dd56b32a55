# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The gate between a lifecycle node's callbacks and the state that cleanup frees (no ROS needed)."""

import threading

from ove_ros.ros.callback_gate import CallbackGate, gated

WAIT = 30.0


class Owner:
    def __init__(self):
        self._gate = CallbackGate()
        self.calls = []

    @gated
    def callback(self, value):
        self.calls.append(value)
        return value * 2


def test_a_closed_gate_runs_nothing_and_an_open_one_runs_and_returns():
    owner = Owner()
    assert owner.callback(1) is None and owner.calls == []
    owner._gate.open()
    assert owner.callback(2) == 4 and owner.calls == [2]
    assert owner._gate.close(WAIT)
    assert owner.callback(3) is None and owner.calls == [2]


def test_close_waits_for_the_callbacks_in_flight_and_refuses_new_ones():
    gate = CallbackGate()
    gate.open()
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow():
        entered.set()
        release.wait(WAIT)
        finished.set()

    runner = threading.Thread(target=gate.run, args=(slow,))
    runner.start()
    assert entered.wait(WAIT)
    assert not gate.close(timeout=0.05)  # still running: close reports it
    assert not gate.is_open
    late = []
    assert gate.run(late.append, "late") is None and late == []  # a callback arriving now does nothing

    closer_result = []
    closer = threading.Thread(target=lambda: closer_result.append(gate.close(WAIT)))
    closer.start()
    release.set()
    closer.join(WAIT)
    runner.join(WAIT)
    assert finished.is_set() and closer_result == [True]


def test_a_failing_callback_leaves_the_gate_closable():
    gate = CallbackGate()
    gate.open()
    try:
        gate.run(lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    assert gate.close(timeout=1.0)
