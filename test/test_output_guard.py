# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""No command replaces anything but its own kind of output: never a user folder, an input or its parent."""

from __future__ import annotations

import subprocess
import sys

import pytest
from test_bag_to_lerobot import CAMS, make_config

from ove_ros.output_guard import OutputRefused, check_output, is_bundle, is_lerobot_dataset
from ove_ros.training.bag_to_lerobot import ConversionError, convert_bags
from ove_ros.training.config import ConfigError
from ove_ros.training.convert import convert
from ove_ros.training.evaluate import checked_output_dir

from bag_fixtures import BagSpec, storage_file, write_bag
from dataset_fixtures import learnable_dataset, synthetic_dataset, trained_run  # noqa: F401


def _user_folder(path):
    path.mkdir(parents=True)
    (path / "thesis.tex").write_text("years of work")
    return path


def _dataset_like(path):
    (path / "meta").mkdir(parents=True)
    (path / "meta" / "info.json").write_text("{}")
    return path


# ------------------------------------------------------------------------------------------------ the rule


def test_rule_allows_new_empty_and_own_kind(tmp_path):
    assert check_output(tmp_path / "new", kind="x", recognise=is_lerobot_dataset) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output(tmp_path / "empty", kind="x", recognise=is_lerobot_dataset)
    check_output(_dataset_like(tmp_path / "ds"), kind="x", recognise=is_lerobot_dataset)


@pytest.mark.parametrize("overwrite", [True, False])
def test_rule_refuses_foreign_folders_files_and_inputs(tmp_path, overwrite):
    folder = _user_folder(tmp_path / "mine")
    with pytest.raises(OutputRefused, match="exists" if not overwrite else "not a LeRobot dataset"):
        check_output(folder, kind="LeRobot dataset", recognise=is_lerobot_dataset, overwrite=overwrite)
    file = tmp_path / "notes.txt"
    file.write_text("x")
    with pytest.raises(OutputRefused, match="exists" if not overwrite else "not a folder"):
        check_output(file, kind="LeRobot dataset", recognise=is_lerobot_dataset, overwrite=overwrite)
    source = _dataset_like(tmp_path / "data" / "source")
    for out, word in ((source, "is the input"), (tmp_path / "data", "contains the input")):
        with pytest.raises(OutputRefused, match=word):
            check_output(out, kind="x", recognise=is_lerobot_dataset, inputs=[source], overwrite=overwrite)
    # A dataset is recognised, but not when it is the input itself.
    with pytest.raises(OutputRefused, match="is the input"):
        check_output(
            tmp_path / "data" / ".." / "data" / "source",
            kind="x",
            recognise=is_lerobot_dataset,
            inputs=[source],
        )
    assert (folder / "thesis.tex").exists() and file.exists()


def test_bundle_recognition_needs_the_format_version(tmp_path):
    other = tmp_path / "web"
    other.mkdir()
    (other / "config.json").write_text('{"port": 80}')
    assert not is_bundle(other)
    (other / "config.json").write_text('{"format_version": 1, "model": {}}')
    assert is_bundle(other)


# ---------------------------------------------------------------------------------------- bag conversion


def _bag(tmp_path):
    return write_bag(tmp_path / "rec", BagSpec(cameras=CAMS[:1], action_topic=None, duration_s=1.0), "mcap")


def test_bag_conversion_refuses_a_user_folder_even_with_overwrite(tmp_path):
    bag = _bag(tmp_path)
    folder = _user_folder(tmp_path / "out")
    config = make_config("video.use_videos=false", cameras=CAMS[:1], action=False)
    with pytest.raises(ConversionError, match="holds files that are not a LeRobot dataset"):
        convert_bags([bag], folder, "test/x", config, outcome="success", overwrite=True)
    assert (folder / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("where", ["input", "parent"])
def test_bag_conversion_never_replaces_its_input_cli(tmp_path, where):
    bag = _bag(tmp_path)
    recording = storage_file(bag)
    before = recording.read_bytes()
    output = bag if where == "input" else tmp_path
    config = tmp_path.parent / f"{tmp_path.name}-conv.yaml"
    cam = CAMS[0]
    config.write_text(
        f"fps: 10\ntask: pick\ncameras: [{{name: {cam.name}, topic: {cam.topic}}}]\n"
        "state: {topic: /joint_states, joints: [j1]}\nprogress: false\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ove_ros.training.bag_to_lerobot",
            "--config",
            str(config),
            "--bags",
            str(bag),
            "--output",
            str(output),
            "--repo-id",
            "test/x",
            "--outcome",
            "success",
            "--overwrite",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 2, proc.stderr
    assert "the input" in proc.stderr and "Traceback" not in proc.stderr
    assert recording.read_bytes() == before


# ------------------------------------------------------------------------------- bundle, advantage, eval


def test_convert_refuses_a_bundle_path_that_holds_the_checkpoint(trained_run):  # noqa: F811
    checkpoint = trained_run["result"].checkpoint
    run_dir = checkpoint.parent.parent
    from ove_ros.bundle import BundleError

    with pytest.raises(BundleError, match="contains the input"):
        convert(checkpoint, run_dir)
    assert checkpoint.exists()


def test_convert_refuses_a_user_folder(trained_run, tmp_path):  # noqa: F811
    from ove_ros.bundle import BundleError

    folder = _user_folder(tmp_path / "docs")
    with pytest.raises(BundleError, match="not a bundle"):
        convert(trained_run["result"].checkpoint, folder)
    assert (folder / "thesis.tex").exists()


def test_evaluation_folder_rule(tmp_path):
    source = _dataset_like(tmp_path / "ds")
    with pytest.raises(ConfigError, match="not a evaluation folder|not an evaluation folder|holds files"):
        checked_output_dir(_user_folder(tmp_path / "mine"), [source])
    with pytest.raises(ConfigError, match="contains the input"):
        checked_output_dir(tmp_path, [source])
    earlier = tmp_path / "eval"
    earlier.mkdir()
    (earlier / "metrics.json").write_text("{}")
    assert checked_output_dir(earlier, [source]) == earlier


def test_advantage_refuses_its_source_and_user_folders(trained_run, tmp_path):  # noqa: F811
    from ove_ros.training.advantage import check_labelled_output

    source = trained_run["dataset"]
    with pytest.raises(ConfigError, match="is the input"):
        check_labelled_output(source, [source], overwrite=True)
    with pytest.raises(ConfigError, match="contains the input"):
        check_labelled_output(source.parent, [source], overwrite=True)
    folder = _user_folder(tmp_path / "mine")
    with pytest.raises(ConfigError, match="advantage.overwrite=true"):
        check_labelled_output(folder, [source], overwrite=False)
    with pytest.raises(ConfigError, match="not a LeRobot dataset"):
        check_labelled_output(folder, [source], overwrite=True)
    assert (folder / "thesis.tex").exists()
