# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The node's settings checked against a deploy bundle, without a ROS graph: the bundle's data contract
applies unless a parameter is set, and mismatches fail with the fix named."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("ove_ros.msg")  # the ROS layer must be importable (built interfaces)

from ove_ros.bundle import BundleMetadata  # noqa: E402
from ove_ros.ros import contract, params  # noqa: E402


class Parameters:
    """The declared parameters' defaults plus ``overrides``, readable like a node's."""

    def __init__(self, **overrides):
        self.values = {p.name: p.default for p in params.PARAMS}
        self.values.update({"checkpoint": "/bundles/pick", "camera_topics": ["head/image"], **overrides})

    def get_parameter(self, name: str):
        return SimpleNamespace(value=self.values[name])


def settings(**overrides) -> params.Settings:
    return params.read(Parameters(**overrides))


def meta(**kw) -> BundleMetadata:
    base = dict(camera_names=["head"], joint_names=["j0", "j1"], state_low=[0.0, 0.0], state_high=[1.0, 1.0],
                task_normalizers={"pick": 40.0, "place": 30.0}, advantage_thresholds={"pick": 0.01},
                n_step=50, fps=10.0, tolerance_periods=1.5)
    base.update(kw)
    return BundleMetadata(**base)


def test_the_bundle_contract_applies_when_no_parameter_is_set():
    warnings = []
    s, where = contract.resolve(settings(), meta(), warnings.append)
    assert (s.fps, s.n_step, s.tolerance_periods) == (10.0, 50, 1.5)
    assert s.joint_names == ("j0", "j1") and s.task == "pick"  # the bundle's joints and first task
    assert contract.contract_text(where) == ("fps from bundle, n_step from bundle, "
                                             "tolerance_periods from bundle")
    assert warnings == []


def test_parameters_override_the_contract_and_a_changed_n_step_warns():
    warnings = []
    s, where = contract.resolve(settings(**{"sync.fps": 15.0, "n_step": 20, "sync.tolerance_periods": 2.0,
                                            "task": "place"}), meta(), warnings.append)
    assert (s.fps, s.n_step, s.tolerance_periods, s.task) == (15.0, 20, 2.0, "place")
    assert where == {"fps": "parameter sync.fps", "n_step": "parameter n_step",
                     "tolerance_periods": "parameter"}
    assert len(warnings) == 1 and "n_step=20 overrides the bundle's 50" in warnings[0]


@pytest.mark.parametrize("overrides, bundle, message", [
    ({"camera_topics": ["a", "b"]}, {}, "camera_topics lists 2 topic(s)"),
    ({"joint_names": ["j0"]}, {}, "joint_names has 1 names but the model takes 2 joints"),
    ({}, {"fps": 0.0}, "set sync.fps to the fps of the dataset"),
    ({"bootstrap_tolerance": 5, "n_step": 5}, {}, "bootstrap_tolerance=5 must be smaller than n_step=5"),
    ({}, {"task_normalizers": {}}, "no task: set the 'task' parameter"),
])
def test_mismatches_with_the_bundle_name_the_fix(overrides, bundle, message):
    with pytest.raises(params.ConfigError) as info:
        contract.resolve(settings(**overrides), meta(**bundle), lambda text: None)
    assert message in str(info.value)
