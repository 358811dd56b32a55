# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The anchored head: a frame-index prior fitted on the training episodes, corrected by the head, carried
by checkpoints and bundles, and applied the same way in training, evaluation and the live engine."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from ove_ros.bundle import BundleError, read_bundle_config
from ove_ros.engine import EngineConfig, InferenceEngine
from ove_ros.model import OpenValueEstimator, ValueModelConfig, load_bundle
from ove_ros.training.baselines import FrameSet, frame_index_mean
from ove_ros.training.checkpoint import checkpoint_step, list_checkpoints
from ove_ros.training.convert import convert
from ove_ros.training.modeling import load_value_model, model_config_from
from ove_ros.value_prior import fit_value_prior

from dataset_fixtures import plan, synthetic_dataset, tiny_config  # noqa: F401

SPEC = {"num_episodes": 6, "min_length": 5, "max_length": 14, "failure_every": 0, "image_size": 32, "seed": 8}
REQUEST = "{value_prior: {bin_frames: 1}}"
BIN = 1.0 / 200  # the width of one of the 201 bins on [-1, 0]


@pytest.fixture(scope="module")
def anchored_run(synthetic_dataset, tmp_path_factory):  # noqa: F811
    """Two steps of a tiny anchored run whose held-out episode is the longest; validated at step 0."""
    from ove_ros.training.train import prepare_data, train

    lengths = [n for n, _, _ in plan(**SPEC)]
    longest = int(np.argmax(lengths))
    out = tmp_path_factory.mktemp("anchored")
    cfg = tiny_config(out, synthetic_dataset(**SPEC), run_name="anchored", **{
        "data.val_episodes": [longest], "model.overrides": REQUEST, "training.steps": 2,
        "training.warmup_steps": 1, "training.val_every": 1, "training.save_every": 1,
        "training.keep_last": 10, "data.batch_size": 4, "training.ema_decay": 0.0,
    })
    result = train(cfg)
    return {"cfg": cfg, "result": result, "data": prepare_data(cfg), "lengths": lengths, "longest": longest}


def _frames(data, episodes):
    t = data.targets
    mask = t.episode_mask(episodes)
    return FrameSet(episode=t.episode_index[mask], frame=t.frame_index[mask], task=t.frame_tasks(mask),
                    state=np.zeros((int(mask.sum()), 1)), target=t.values[mask])


def _batch(data, episodes):
    frames = data.frames(episodes, 32)
    return default_collate([frames[i] for i in range(len(frames))])


def test_the_prior_is_fitted_on_the_training_episodes_only(anchored_run):
    data, lengths, longest = anchored_run["data"], anchored_run["lengths"], anchored_run["longest"]
    ckpts = list_checkpoints(anchored_run["result"].run_dir)
    assert [checkpoint_step(c) for c in ckpts] == [0, 1, 2]  # step 0 (the prior alone) is kept for selection
    loaded = load_value_model(ckpts[-1])
    table = loaded.model.config.value_prior
    (task,) = table["tasks"]
    train = _frames(data, data.train_episodes)
    mean = np.asarray(table["tasks"][task]["mean"])
    assert mean.size == max(n for i, n in enumerate(lengths) if i != longest) < lengths[longest]
    want = fit_value_prior(list(train.task), train.frame, train.target, 1, BIN)
    assert table == want
    everything = _frames(data, list(range(len(lengths))))
    assert table != fit_value_prior(list(everything.task), everything.frame, everything.target, 1, BIN)
    assert loaded.meta["config"]["model"]["overrides"]["value_prior"] == {"bin_frames": 1}


def test_step_zero_predicts_the_frame_index_baseline(anchored_run):
    data = anchored_run["data"]
    step0 = list_checkpoints(anchored_run["result"].run_dir)[0]
    model = load_value_model(step0, use_ema=False).model
    held_out = [anchored_run["longest"]]
    baseline = frame_index_mean(_frames(data, data.train_episodes), _frames(data, held_out))
    with torch.no_grad():
        value = model.get_expected_value(model(_batch(data, held_out))).double().numpy()
    np.testing.assert_allclose(value, baseline, atol=BIN)  # clamped past the longest training episode too
    assert np.ptp(value) > 5 * BIN  # and the prediction moves with the frame index
    log = (anchored_run["result"].run_dir / "metrics.jsonl").read_text()
    records = [json.loads(x) for x in log.splitlines()]
    assert [r["step"] for r in records if r.get("split") == "val"][0] == 0


@pytest.mark.parametrize("device_preprocess", [False, True])
def test_bundle_and_engine_apply_the_prior_like_training(anchored_run, tmp_path, device_preprocess):
    ckpt = anchored_run["result"].checkpoint
    bundle = convert(ckpt, tmp_path / "bundle", use_ema=False)
    trained = load_value_model(ckpt, use_ema=False).model
    model, md = load_bundle(bundle)
    assert model.config.value_prior == trained.config.value_prior is not None
    assert read_bundle_config(bundle)[0].value_prior == trained.config.value_prior
    engine = InferenceEngine(copy.deepcopy(model), md, EngineConfig(device="cpu", resize="float",
                                                                    device_preprocess=device_preprocess))
    data = anchored_run["data"]
    task = data.targets.frame_tasks()[0]
    frame = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    state = (data.state_low + data.state_high) / 2
    with pytest.raises(ValueError, match="frame_index"):
        engine.infer([frame], state, task)
    fi = [0, 4, 500]
    live = [engine.infer([frame], state, task, f).value for f in fi]
    pixels = (torch.from_numpy(frame).permute(2, 0, 1).float() / 255)[None, None]
    batch = {
        "observation.images": pixels.repeat(3, 1, 1, 1, 1),
        "observation.state": torch.as_tensor(np.stack([state] * 3)),
        "task": [task] * 3,
        "frame_index": torch.tensor(fi),
    }
    with torch.no_grad():
        ref = trained.get_expected_value(trained(batch)).numpy()
        ids, mask = trained.tokenize(batch["task"], batch["observation.state"])
        head = trained.forward_tensors(trained.gather_images(batch), ids, mask)
        head_only = trained.get_expected_value(head).numpy()
    np.testing.assert_allclose(live, ref, atol=1e-5)
    assert abs(ref[0] - ref[2]) > 10 * BIN and not np.allclose(ref, head_only, atol=BIN)
    many = engine.infer_batch(np.stack([[frame]] * 3), np.stack([state] * 3), [task] * 3, fi)
    np.testing.assert_allclose([o.value for o in many], ref, atol=1e-5)


def _table(**change):
    spec = {"bin_frames": 2, "tasks": {"pick it": {"mean": [-0.9, -0.5, -0.1], "std": [0.1, 0.1, 0.05]}}}
    spec.update(change)
    return spec


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_table(bin_frames=0), "bin_frames must be an int >= 1"),
        (_table(extra=1), r"keys \['bin_frames', 'extra', 'tasks'\]"),
        (_table(tasks={}), "tasks must be a non-empty mapping"),
        (_table(tasks={"pick it": {"mean": [-0.5, -0.2], "std": [0.1]}}), "one length"),
        (_table(tasks={"pick it": {"mean": [-0.5, 0.3], "std": [0.1, 0.1]}}), "outside the value support"),
        (_table(tasks={"pick it": {"mean": [-0.5, float("nan")], "std": [0.1, 0.1]}}), "NaN or infinite"),
        (_table(tasks={"pick it": {"mean": [-0.5], "std": [0.0]}}), "std must be > 0"),
        (_table(tasks={"pick it": {"mean": ["a"], "std": [0.1]}}), "lists of numbers"),
        (_table(tasks={" pick  it": {"mean": [-0.5], "std": [0.1]}}), "not a cleaned task text"),
        ({"bin_frames": 5}, "request without fitted tables"),
    ],
)
def test_bad_prior_tables_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        ValueModelConfig.tiny(num_cameras=1, state_dim=3, value_prior=bad)


def test_a_bad_table_in_a_bundle_is_refused_on_load(anchored_run, tmp_path):
    bundle = convert(anchored_run["result"].checkpoint, tmp_path / "bundle")
    doc = json.loads((bundle / "config.json").read_text())
    (task,) = doc["model"]["value_prior"]["tasks"]
    doc["model"]["value_prior"]["tasks"][task]["std"][0] = -1.0
    (bundle / "config.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="invalid 'model' section: value_prior: task .* std must be > 0"):
        load_bundle(bundle)


def test_a_prior_request_needs_training_data(synthetic_dataset, tmp_path):  # noqa: F811
    bad = "{value_prior: {bin_frames: 0}}"
    cfg = tiny_config(tmp_path, synthetic_dataset(**SPEC), **{"model.overrides": bad})
    with pytest.raises(ValueError, match="bin_frames must be an int >= 1"):
        model_config_from(cfg, ["cam_high"], 4)
    cfg = tiny_config(tmp_path, synthetic_dataset(**SPEC), **{"model.overrides": REQUEST})
    with pytest.raises(ValueError, match="fitted on the training episodes at training start"):
        model_config_from(cfg, ["cam_high"], 4)


def test_an_unknown_task_gets_no_prior_and_one_warning(caplog):
    table = _table()
    torch.manual_seed(0)
    model = OpenValueEstimator(ValueModelConfig.tiny(num_cameras=1, state_dim=3, value_prior=table)).eval()
    assert torch.count_nonzero(model.head[-1].weight) == 0  # the head starts as no correction
    batch = {
        "observation.images": torch.rand(4, 1, 3, 32, 32),
        "observation.state": torch.zeros(4, 3),
        "task": ["pick  it", "pick it", "open it", "open it"],
        "frame_index": torch.tensor([0, 5, 0, 5]),
    }
    with caplog.at_level(logging.WARNING), torch.no_grad():
        value = model.get_expected_value(model(batch)).numpy()
    np.testing.assert_allclose(value, [-0.9, -0.1, -0.5, -0.5], atol=1e-4)  # frame 5 -> bin 2; unknown: flat
    assert sum("not in the value prior" in r.message for r in caplog.records) == 1
    with pytest.raises(ValueError, match="frame_index"):
        model({k: v for k, v in batch.items() if k != "frame_index"})


def test_the_fit_per_time_bin_and_the_spread_floor():
    tasks = ["t"] * 8
    frames = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    targets = np.array([-0.8, -0.6, -0.4, -0.2, -0.6, -0.4, -0.2, -0.2])
    spec = fit_value_prior(tasks, frames, targets, 2, BIN)
    np.testing.assert_allclose(spec["tasks"]["t"]["mean"], [-0.6, -0.25])
    want = [np.std([-0.8, -0.6, -0.6, -0.4]), np.std([-0.4, -0.2, -0.2, -0.2])]
    np.testing.assert_allclose(spec["tasks"]["t"]["std"], want, atol=1e-6)
    flat = fit_value_prior(["t"] * 2, np.array([0, 0]), np.array([-0.5, -0.5]), 1, BIN)
    assert flat["tasks"]["t"]["std"] == [BIN]


def test_offline_evaluation_and_advantage_labelling_see_the_prior(anchored_run, tmp_path):
    from ove_ros.training.advantage import predict_values
    from ove_ros.training.config import config_from_dict
    from ove_ros.training.evaluate import evaluate

    step0 = list_checkpoints(anchored_run["result"].run_dir)[0]
    data = anchored_run["cfg"].to_dict()
    data["run_name"] = None
    data["evaluate"].update(checkpoint=str(step0), split="val", plot_episodes=0, video_episodes=0,
                            output_dir=str(tmp_path / "eval"))
    evaluate(config_from_dict(data))
    report = json.loads((tmp_path / "eval" / "value_quality.json").read_text())
    assert report["model"]["mae"] == pytest.approx(report["baselines"]["frame_index_mean"]["mae"], abs=BIN)
    model = load_value_model(step0).model
    held_out = [anchored_run["longest"]]
    frames = anchored_run["data"].frames(held_out, 32)
    baseline = frame_index_mean(_frames(anchored_run["data"], anchored_run["data"].train_episodes),
                                _frames(anchored_run["data"], held_out))
    np.testing.assert_allclose(predict_values(model, frames, batch_size=4), baseline, atol=BIN)
