# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Files from elsewhere (a shared run, a downloaded bundle, a config) cannot run code when they are read.

Every loader gets a planted pickle payload whose unpickling would create a marker file (or a YAML document
with a Python-object tag that would do the same); the test checks that the load is refused and the marker
never appears. One test shows that the payload is live: unpickled the unsafe way, it does create its marker.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ove_ros.bundle import BundleError
from ove_ros.model import OpenValueEstimator, load_bundle
from ove_ros.training import checkpoint as ckpt
from ove_ros.training.config import ConfigError, load_config

from dataset_fixtures import TINY_YAML, learnable_dataset, synthetic_dataset, trained_run  # noqa: F401


class Payload:
    """Unpickling calls ``open(marker, "w")``: a file appears where none should."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def payload_bytes(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"step": 1, "optimizer": Payload(marker)}, buf)
    return buf.getvalue()


def yaml_payload(marker: Path) -> str:
    return f"project: !!python/object/apply:builtins.open ['{marker}', 'w']\n"


def test_the_payload_is_live(tmp_path):
    marker = tmp_path / "marker"
    file = tmp_path / "state.pt"
    file.write_bytes(payload_bytes(marker))
    torch.load(file, weights_only=False)
    assert marker.exists()  # so the refusals below are real refusals


def _legacy_checkpoint(run: dict, root: Path, marker: Path) -> Path:
    """An older-layout run (checkpoints/step_<N>/) whose pickled training state carries the payload."""
    src = run["result"].checkpoint
    step = ckpt.checkpoint_step(src)
    legacy = root / "ove_ros" / "old" / "checkpoints" / f"step_{step:09d}"
    legacy.mkdir(parents=True)
    shutil.copyfile(src, legacy / ckpt.MODEL_FILE)
    shutil.copyfile(ckpt.ema_file(src), legacy / ckpt.EMA_FILE)
    (legacy / ckpt.META_FILE).write_text(json.dumps(ckpt.read_meta(src)))
    (legacy / ckpt.STATE_FILE).write_bytes(payload_bytes(marker))
    (legacy.parent / ckpt.LAST_POINTER).write_text(legacy.name + "\n")
    return legacy


def test_resuming_an_older_pickled_checkpoint_needs_the_trust_option(trained_run, tmp_path):  # noqa: F811
    from ove_ros.training.train import train

    marker = tmp_path / "marker"
    legacy = _legacy_checkpoint(trained_run, tmp_path, marker)
    cfg = trained_run["cfg"]
    cfg = load_config(
        TINY_YAML,
        [f"output_root={tmp_path}", "run_name=old", f"data.root={cfg.data.root}", "data.num_workers=0",
         f"data.cache_dir={tmp_path / 'cache'}", "wandb.mode=disabled", "training.resume=true",
         "training.steps=40", "data.val_episodes=[0,1]", "data.batch_size=8"],
    )
    with pytest.raises(ckpt.UntrustedCheckpointError, match="trust_pickled_checkpoint=true"):
        train(cfg)
    assert not marker.exists()
    with pytest.raises(ckpt.UntrustedCheckpointError):
        ckpt.load_training_state(legacy)
    assert not marker.exists()
    # Its weights are safetensors: they load without the option (for model.init_from, convert, evaluate).
    weights, used_ema = ckpt.load_weights(legacy)
    assert used_ema and weights and not marker.exists()
    # With the option the file is unpickled (and the payload runs: the option means what it says).
    ckpt.load_training_state(legacy, trust_pickle=True)
    assert marker.exists()


def test_training_state_is_read_without_unpickling(trained_run, tmp_path):  # noqa: F811
    run_dir = tmp_path / "run"
    shutil.copytree(trained_run["result"].run_dir, run_dir)
    path = run_dir / trained_run["result"].checkpoint.name
    state = ckpt.state_dir(path)
    assert sorted(p.name for p in state.iterdir()) == sorted(
        [ckpt.STATE_EMA_FILE, ckpt.STATE_TENSORS, ckpt.STATE_JSON]
    )
    assert ckpt.load_training_state(path)["step"] == 30
    marker = tmp_path / "marker"
    (state / ckpt.STATE_TENSORS).write_bytes(payload_bytes(marker))
    with pytest.raises(ckpt.IncompleteFileError, match=ckpt.STATE_TENSORS):
        ckpt.load_training_state(path)
    assert not marker.exists()


def test_weights_files_that_are_pickles_are_refused(trained_run, tmp_path):  # noqa: F811
    from ove_ros.training.convert import convert
    from ove_ros.training.modeling import load_value_model

    marker = tmp_path / "marker"
    fake = tmp_path / "checkpoint_5.safetensors"
    fake.write_bytes(payload_bytes(marker))
    for load in (
        lambda: OpenValueEstimator.from_pretrained(fake),
        lambda: load_value_model(fake),
        lambda: convert(fake, tmp_path / "bundle"),
    ):
        with pytest.raises(ckpt.IncompleteFileError, match="checkpoint_5.safetensors"):
            load()
    assert not marker.exists()

    bundle = convert(trained_run["result"].checkpoint, tmp_path / "good_bundle")
    (bundle / "model.safetensors").write_bytes(payload_bytes(marker))
    (bundle / "pytorch_model.bin").write_bytes(payload_bytes(marker))  # never looked at
    with pytest.raises(BundleError, match="model.safetensors"):
        load_bundle(bundle)
    assert not marker.exists()


def test_pretrained_backbone_pickles_are_refused(tmp_path):
    """model.pretrained_vision: transformers reads a pickled ``pytorch_model.bin`` only as plain tensors."""
    from transformers import SiglipVisionConfig

    from ove_ros.backbones.siglip import SiglipTower

    marker = tmp_path / "marker"
    vision = tmp_path / "siglip"
    SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       image_size=32, patch_size=16).save_pretrained(vision)
    (vision / "pytorch_model.bin").write_bytes(payload_bytes(marker))
    with pytest.raises(Exception):  # noqa: B017 -- transformers' own refusal; what matters is the marker
        SiglipTower.from_checkpoint(vision, "eager")
    assert not marker.exists()


def test_yaml_files_cannot_build_python_objects(tmp_path):
    from ove_ros.training.bag_config import ConfigError as BagConfigError
    from ove_ros.training.bag_config import load_config as load_bag_config
    from ove_ros.training.sweep import load_spec

    marker = tmp_path / "marker"
    config = tmp_path / "config.yaml"
    config.write_text(yaml_payload(marker))
    with pytest.raises(ConfigError):
        load_config(config, require_run_name=False)
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        f"method: random\nparameters:\n  training.learning_rate: !!python/object/apply:builtins.open "
        f"['{marker}', 'w']\n"
    )
    with pytest.raises(Exception):  # noqa: B017 -- yaml's ConstructorError
        load_spec(spec)
    bag = tmp_path / "bag.yaml"
    bag.write_text(f"fps: 30\ntask: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    with pytest.raises(BagConfigError):
        load_bag_config(bag)
    assert not marker.exists()


def test_recording_metadata_cannot_build_python_objects(tmp_path):
    from rosbags.rosbag2 import Reader

    marker = tmp_path / "marker"
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text(
        f"rosbag2_bagfile_information: !!python/object/apply:builtins.open ['{marker}', 'w']\n"
    )
    with pytest.raises(Exception):  # noqa: B017 -- rosbags' ReaderError
        Reader(bag).open()
    assert not marker.exists()


def test_cached_targets_cannot_hold_pickled_objects(tmp_path):
    from ove_ros.training.dataset import ValueTargets

    marker = tmp_path / "marker"
    path = tmp_path / "targets.npz"
    with open(path, "wb") as fh:
        np.savez(fh, meta=np.array([Payload(marker)], dtype=object), rows=np.zeros(2))  # a pickle inside
    with pytest.raises(ValueError, match="allow_pickle"):
        ValueTargets.load(path)
    assert not marker.exists()
