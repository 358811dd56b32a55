# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Deploy bundle: exact round trip, atomic overwrite, and a named error for each kind of damage."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from ove_ros.bundle import BundleError, BundleMetadata, read_bundle_config, save_bundle
from ove_ros.model import OpenValueEstimator, ValueModelConfig, load_bundle

JOINTS = ["shoulder", "elbow", "wrist", "grip"]


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "observation.images": torch.rand(2, 2, 3, 32, 32, generator=g),
        "observation.state": torch.randn(2, 4, generator=g),
        "task": ["stack the blocks", "wipe the table"],
    }


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=2, state_dim=4)).eval()
    m.set_state_stats([-1.0, -2.0, -3.0, 0.0], [1.0, 2.0, 3.0, 0.04], JOINTS)
    return m


@pytest.fixture(scope="module")
def metadata(model):
    return BundleMetadata.from_model(
        model,
        task_normalizers={"stack the blocks": 120.0, "wipe the table": 80.0},
        default_scale=120.0,
        advantage_thresholds={"stack the blocks": -0.01},
        n_step=25,
        training={"steps": 10, "ema": True},
    )


@pytest.fixture(scope="module")
def bundle(model, metadata, tmp_path_factory):
    return save_bundle(tmp_path_factory.mktemp("b") / "bundle", model, metadata)


@pytest.fixture
def copy(bundle, tmp_path):
    """A private copy of the bundle to damage."""
    return shutil.copytree(bundle, tmp_path / "copy")


def test_round_trip_gives_identical_logits_and_metadata(model, metadata, bundle):
    loaded, md = load_bundle(bundle)
    batch = make_batch()
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), model(batch), rtol=0, atol=0)
    assert md == BundleMetadata.from_dict(metadata.to_dict())
    assert md.scale_for("wipe the table") == 80.0 and md.scale_for("unknown task") == 120.0
    assert loaded.joint_names == JOINTS and not loaded.training
    cfg, md2 = read_bundle_config(bundle)
    assert cfg == model.config and md2 == md
    assert sorted(p.name for p in bundle.iterdir()) == ["config.json", "model.safetensors", "tokenizer"]


def test_load_with_dtype_and_from_pretrained(model, bundle):
    half = OpenValueEstimator.from_pretrained(bundle, dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and half.state_low.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(half(make_batch()), model(make_batch()), atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="unknown dtype"):
        load_bundle(bundle, dtype="int3")


def test_overwrite_is_clean_and_refuses_foreign_directories(model, metadata, tmp_path):
    target = tmp_path / "out"
    model.save_pretrained(target, metadata)
    first = (target / "model.safetensors").read_bytes()
    other = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=2, state_dim=4))
    other.set_state_stats(model.state_low.tolist(), model.state_high.tolist(), JOINTS)
    save_bundle(target, other, metadata)
    assert (target / "model.safetensors").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or old directories left
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"x")
    with pytest.raises(BundleError, match="holds files that are not a bundle"):
        save_bundle(foreign, model, metadata)
    assert (foreign / "cat.jpg").exists()


def test_save_rejects_metadata_of_another_model(model, metadata, tmp_path):
    bad = BundleMetadata.from_dict({**metadata.to_dict(), "state_high": [9.0] * 4})
    with pytest.raises(ValueError, match="state_high differs"):
        save_bundle(tmp_path / "x", model, bad)
    bad_cams = BundleMetadata.from_dict({**metadata.to_dict(), "camera_names": ["a"]})
    with pytest.raises(ValueError, match="camera_names"):
        save_bundle(tmp_path / "x", model, bad_cams)
    assert not (tmp_path / "x").exists()


def _edit_config(root, fn):
    doc = json.loads((root / "config.json").read_text())
    fn(doc)
    (root / "config.json").write_text(json.dumps(doc))


def _edit_weights(root, fn):
    tensors = load_file(str(root / "model.safetensors"))
    fn(tensors)
    save_file(tensors, str(root / "model.safetensors"))


def test_missing_pieces(copy, tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        load_bundle(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="is not a directory"):
        load_bundle(tmp_path / "file")
    shutil.rmtree(copy / "tokenizer")
    with pytest.raises(BundleError, match="tokenizer: missing tokenizer directory"):
        load_bundle(copy)
    (copy / "config.json").unlink()
    with pytest.raises(BundleError, match=r"config\.json: missing"):
        load_bundle(copy)


def test_missing_weights_file(copy):
    (copy / "model.safetensors").unlink()
    with pytest.raises(BundleError, match=r"model\.safetensors: missing"):
        load_bundle(copy)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_weights(copy, damage):
    path = copy / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x07" * 64)
    with pytest.raises(BundleError, match=r"model\.safetensors: corrupt or truncated"):
        load_bundle(copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.pop("head.0.weight"), r"missing tensors \['head.0.weight'\]"),
        (lambda t: t.update({"extra.weight": torch.zeros(2)}), r"unexpected tensors \['extra.weight'\]"),
        (lambda t: t.update(state_low=torch.zeros(5)), r"mis-shaped tensors \['state_low: file \(5,\)"),
        (lambda t: t.update(state_low=torch.full((4,), -7.0)), "state_low differs"),
    ],
)
def test_weights_that_do_not_match_the_config(copy, edit, message):
    _edit_weights(copy, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)


def test_bad_json_and_unknown_version(copy):
    (copy / "config.json").write_text('{"format_version": 1, "model": ')
    with pytest.raises(BundleError, match=r"config\.json: not valid JSON"):
        load_bundle(copy)
    (copy / "config.json").write_text(json.dumps({"format_version": 7, "model": {}, "metadata": {}}))
    with pytest.raises(BundleError, match="unknown format_version 7"):
        load_bundle(copy)
    (copy / "config.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match="expected a JSON object"):
        load_bundle(copy)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["metadata"].update(joint_names=["a", "b", "c"]), "state_low has 4 .* for 3 joint"),
        (lambda d: d["metadata"].update(joint_names=list("abc"), state_low=[0] * 3, state_high=[1] * 3),
         "lists 3 joint_names but the model has state_dim=4"),
        (lambda d: d["metadata"].update(camera_names=["x", "y"]), "camera_names"),
        (lambda d: d["metadata"].update(reward={"step_penalty": -1}), "invalid 'metadata'.*step_penalty"),
        (lambda d: d["metadata"].update(colour="red"), r"unknown keys \['colour'\]"),
        (lambda d: d["model"].update(head_depth=-1), "invalid 'model' section.*head_depth=-1"),
        (lambda d: d["model"]["text"].update(vocab_size=10), "tokenizer has 345 tokens"),
        (lambda d: d.pop("metadata"), "missing or non-object 'metadata'"),
    ],
)
def test_inconsistent_config(copy, edit, message):
    _edit_config(copy, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)


def test_shape_mismatch_from_config_edit(copy):
    _edit_config(copy, lambda d: d["model"].update(head_hidden=32))
    expected = r"mis-shaped tensors.*head\.0\.weight: file \(64, 64\) vs config \(32, 64\)"
    with pytest.raises(BundleError, match=expected):
        load_bundle(copy)
