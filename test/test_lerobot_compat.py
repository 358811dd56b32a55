# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The LeRobot adapter: the version check at import, and the image-embedding switch."""

import subprocess
import sys

import pytest

from conftest import REPO_ROOT, ros_env


def test_unknown_or_missing_lerobot_is_refused_with_what_to_do():
    from ove_ros.training.lerobot_compat import KNOWN_VERSIONS, LeRobotVersionError, check_version

    check_version(KNOWN_VERSIONS[0])
    expected = r"lerobot 0\.9\.1 is installed.*against lerobot 0\.4\.4.*'lerobot==0\.4\.4'.*KNOWN_VERSIONS"
    with pytest.raises(LeRobotVersionError, match=expected):
        check_version("0.9.1")
    with pytest.raises(LeRobotVersionError, match=r"LeRobot is not installed.*ove_ros\[train\]"):
        check_version(None)


def test_importing_the_adapter_with_another_lerobot_release_fails():
    # A fresh interpreter where the package metadata reports another release: the import itself must fail.
    code = (
        "import importlib.metadata as m\n"
        "real = m.version\n"
        "m.version = lambda name: '0.5.0' if name == 'lerobot' else real(name)\n"
        "import ove_ros.training.lerobot_compat\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=ros_env(), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode != 0
    assert "LeRobotVersionError: lerobot 0.5.0 is installed" in done.stderr


def test_image_embedding_is_skipped_only_without_image_columns():
    import lerobot.datasets.lerobot_dataset as lerobot_dataset

    from ove_ros.training.lerobot_compat import images_not_embedded

    original = lerobot_dataset.embed_images

    class Dataset:
        def __init__(self, dtype: str):
            self.features = {"observation.images.front": {"dtype": dtype}, "reward": {"dtype": "float32"}}

    table = object()
    with images_not_embedded(Dataset("video")):
        assert lerobot_dataset.embed_images(table) is table  # nothing to embed: the pass is skipped
    assert lerobot_dataset.embed_images is original
    with images_not_embedded(Dataset("image")):
        assert lerobot_dataset.embed_images is original  # image columns are still embedded
    with pytest.raises(RuntimeError), images_not_embedded(Dataset("video")):
        raise RuntimeError("save_episode failed")
    assert lerobot_dataset.embed_images is original  # restored on errors too
