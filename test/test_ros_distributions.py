# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Which ROS 2 distributions the package runs on, and that the README says so.

The node uses rclpy APIs that Humble lacks. This lists them, checks that the installed rclpy (Kilted here;
Jazzy or Kilted on a robot) offers each, and that the README's install section names only distributions
that have them. When a new API is used from a newer release, add it here and the README follows.
"""

from __future__ import annotations

import inspect
import re

import pytest

from conftest import REPO_ROOT

README = REPO_ROOT / "README.md"
ROS_SOURCES = sorted((REPO_ROOT / "ove_ros" / "ros").glob("*.py"))
# ROS 2 releases in order; SUPPORTED are the ones the README names for robots.
RELEASES = ("Humble", "Iron", "Jazzy", "Kilted")
SUPPORTED = ("Jazzy", "Kilted")
# Text in ove_ros/ros/*.py -> (the release that added it, how to check the installed rclpy has it).
NEWER_APIS = {
    "rclpy.event_handler": ("Iron", "module"),  # Humble: rclpy.qos_event
    "incompatible_type=": ("Iron", "event"),  # the subscription's incompatible-type event
    "add_post_set_parameters_callback": ("Iron", "node"),
}


def used_apis() -> dict[str, str]:
    text = "\n".join(p.read_text() for p in ROS_SOURCES)
    return {api: release for api, (release, _) in NEWER_APIS.items() if api in text}


def robot_section() -> tuple[str, str]:
    """The README's install section for robots: its heading and its text."""
    text = README.read_text()
    match = re.search(r"^## For robot users[^\n]*\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "README.md lacks its '## For robot users' section"
    heading = match.group(0).splitlines()[0]
    return heading, match.group(1)


def test_the_readme_names_only_distributions_with_the_apis_the_node_uses():
    used = used_apis()
    assert used, "no newer API found: if the node runs on Humble now, say so in the README and here"
    oldest = max(RELEASES.index(release) for release in used.values())
    heading, body = robot_section()
    named = [r for r in RELEASES if r in heading]
    assert named == list(SUPPORTED), f"{heading!r} should name {SUPPORTED}"
    for release in named:
        assert RELEASES.index(release) >= oldest, f"{release} lacks {[a for a, r in used.items()]}"
    # The section says why older releases do not work, naming each API.
    for api in used:
        assert api.rstrip("=") in body, f"the README's robot section should name {api.rstrip('=')}"


def test_the_installed_rclpy_has_each_api():
    pytest.importorskip("rclpy", reason="rclpy missing: run scripts/setup.sh and source setup.env")
    import importlib

    from rclpy.node import Node

    for api, (_, kind) in NEWER_APIS.items():
        if kind == "module":
            importlib.import_module(api)
        elif kind == "event":
            from rclpy.event_handler import SubscriptionEventCallbacks

            assert api.rstrip("=") in inspect.signature(SubscriptionEventCallbacks).parameters, api
        else:
            assert callable(getattr(Node, api, None)), api
