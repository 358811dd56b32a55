# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Ensemble bundles: checkpoints of several training seeds -> one bundle valued as the mean of their
distributions, by the model interface, the engine and the CLI alike; members that differ are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ove_ros.bundle import BundleError, BundleMetadata, ensemble_members, save_bundle
from ove_ros.engine import EngineConfig, InferenceEngine
from ove_ros.ensemble import ValueEnsemble, members_of
from ove_ros.model import OpenValueEstimator, ValueModelConfig, load_bundle
from ove_ros.training.convert import convert, main
from ove_ros.training.modeling import load_value_model, model_from_checkpoint

from dataset_fixtures import (  # noqa: F401
    learnable_dataset,
    run_batch,
    synthetic_dataset,
    tiny_config,
    trained_run,
    trained_run_seed1,
)


@pytest.fixture(scope="module")
def ensemble_bundle(trained_run, trained_run_seed1, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("ensemble") / "bundle"
    return convert(trained_run["result"].checkpoint, out, members=[trained_run_seed1["result"].checkpoint])


def test_ensemble_bundle_values_the_mean_of_its_members_distributions(
        ensemble_bundle, trained_run, trained_run_seed1):  # noqa: F811
    model, md = load_bundle(ensemble_bundle)
    assert isinstance(model, ValueEnsemble) and len(members_of(model)) == 2
    assert ensemble_members(ensemble_bundle) == 2
    singles = [model_from_checkpoint(r["result"].checkpoint)[0] for r in (trained_run, trained_run_seed1)]
    batch, _ = run_batch(trained_run, 8)
    with torch.no_grad():
        mixed = model.predict(batch)
        probs = [m.predict(batch)["probs"] for m in singles]
    assert not torch.allclose(probs[0], probs[1], atol=1e-4)  # two seeds: two different models
    torch.testing.assert_close(mixed["probs"], (probs[0] + probs[1]) / 2, rtol=0, atol=1e-6)
    values = [m.get_expected_value(torch.log(p)) for m, p in zip(singles, probs, strict=True)]
    torch.testing.assert_close(mixed["value"], (values[0] + values[1]) / 2, rtol=0, atol=1e-6)
    # What the members share is the model's: the statistics, joint names and the members' records.
    assert md.joint_names == model.joint_names == singles[0].joint_names
    assert [m["seed"] for m in md.training["members"]] == [0, 1]
    assert json.loads((ensemble_bundle / "config.json").read_text())["ensemble_members"] == 2
    loaded = load_value_model(ensemble_bundle)  # what evaluation and advantage labelling load
    assert isinstance(loaded.model, ValueEnsemble) and loaded.source == "bundle"


def test_engine_runs_an_ensemble_bundle_like_the_model(ensemble_bundle):
    model, _ = load_bundle(ensemble_bundle)
    engine = InferenceEngine.from_bundle(ensemble_bundle, EngineConfig(device="cpu", num_threads=1))
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    state = np.array([0.1, -0.2, 0.3, 0.0])
    out = engine.infer([image], state, "pick the bottle")
    batch = {"observation.images.cam_high": torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255,
             "observation.state": torch.as_tensor(state[None]), "task": ["pick the bottle"]}
    with torch.no_grad():  # each member on its own, then the mean of their distributions
        probs = torch.stack([m.predict(batch)["probs"][0] for m in members_of(model)]).mean(0)
    np.testing.assert_allclose(out.probs, probs.numpy(), atol=1e-6)
    assert abs(out.value - float((probs * model.bin_centers).sum())) < 1e-5


def test_convert_cli_writes_an_ensemble_and_refuses_members_of_other_data(
        trained_run, trained_run_seed1, tmp_path):  # noqa: F811
    first, second = trained_run["result"].checkpoint, trained_run_seed1["result"].checkpoint
    main([f"checkpoint={first}", f"members=[{second}]", f"output={tmp_path / 'cli'}"])
    assert ensemble_members(tmp_path / "cli") == 2
    # A member trained on another split of the episodes does not mean the same values.
    from ove_ros.training.train import train

    cfg = tiny_config(tmp_path / "other", trained_run["dataset"], run_name="other_split", **{
        "training.steps": 2, "training.warmup_steps": 1, "training.val_every": 0, "training.save_every": 2,
        "data.batch_size": 4, "data.val_episodes": [2, 3]})
    other = train(cfg).checkpoint
    with pytest.raises(ValueError, match="train_episodes") as err:
        convert(first, tmp_path / "mixed", members=[other])
    assert "only in their training seed" in str(err.value) and not (tmp_path / "mixed").exists()
    with pytest.raises(SystemExit, match="train_episodes"):
        main([f"checkpoint={first}", f"members=[{other}]", f"output={tmp_path / 'mixed'}"])


def _tiny(seed, **config):
    torch.manual_seed(seed)
    model = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=1, state_dim=3, **config)).eval()
    model.set_state_stats([-1.0, 0.0, -2.0], [1.0, 1.0, 2.0], ["a", "b", "c"])
    return model


def test_members_must_agree_on_all_but_their_weights():
    ValueEnsemble([_tiny(0), _tiny(1)])
    with pytest.raises(ValueError, match="at least 2 members"):
        ValueEnsemble([_tiny(0)])
    other_stats = _tiny(1)
    other_stats.set_state_stats([-1.0, 0.0, -3.0], [1.0, 1.0, 2.0], ["a", "b", "c"])
    with pytest.raises(ValueError, match="joint statistics"):
        ValueEnsemble([_tiny(0), other_stats])
    with pytest.raises(ValueError, match=r"model config differs .*state_bins"):
        ValueEnsemble([_tiny(0), _tiny(1, state_bins=16)])
    renamed = _tiny(1)
    renamed.joint_names = ["a", "b", "x"]
    with pytest.raises(ValueError, match="joint names"):
        ValueEnsemble([_tiny(0), renamed])
    prior = {"bin_frames": 1, "tasks": {"t": {"mean": [-0.5, -0.4], "std": [0.1, 0.1]}}}
    with pytest.raises(ValueError, match="frame-index prior"):
        ValueEnsemble([_tiny(0, value_prior=prior), _tiny(1, value_prior=prior)])


def test_a_damaged_ensemble_bundle_is_refused_with_the_file_named(tmp_path):
    ensemble = ValueEnsemble([_tiny(0), _tiny(1)])
    path = save_bundle(tmp_path / "b", ensemble, BundleMetadata.from_model(ensemble))
    model, _ = load_bundle(path)
    assert isinstance(model, ValueEnsemble)
    config = path / "config.json"
    doc = json.loads(config.read_text())
    for bad in (1, 0, "2", True):
        config.write_text(json.dumps({**doc, "ensemble_members": bad}))
        with pytest.raises(BundleError, match="ensemble_members must be an integer >= 2"):
            load_bundle(path)
    config.write_text(json.dumps({**doc, "ensemble_members": 3}))  # weights of two members only
    with pytest.raises(BundleError, match=r"missing tensors \['members\.2\."):
        load_bundle(path)
    config.write_text(json.dumps({k: v for k, v in doc.items() if k != "ensemble_members"}))
    with pytest.raises(BundleError, match="unexpected tensors"):
        load_bundle(path)  # read as one model, the members' weights do not fit
