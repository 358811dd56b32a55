# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The training loop: it learns, it checkpoints, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from ove_ros.training import checkpoint as ckpt
from ove_ros.training.config import ConfigError
from ove_ros.training.ema import EMA
from ove_ros.training.sampler import ResumableBatchSampler, global_batch
from ove_ros.training.train import lr_lambda, train

from dataset_fixtures import learnable_dataset, log_records, synthetic_dataset, tiny_config  # noqa: F401


@pytest.fixture
def make_config(tmp_path, learnable_dataset):  # noqa: F811
    """``make_config(run_name, {key: value}, ...)``: the tiny config of a run on the learnable dataset."""

    def make(run_name, *settings, **keys):
        merged = {k: v for part in settings for k, v in part.items()}
        return tiny_config(tmp_path, learnable_dataset, run_name=run_name, **merged, **keys)

    return make


def test_short_run_lowers_the_loss_and_raises_explained_variance(make_config):
    cfg = make_config(
        "learn",
        {
            "training.steps": 48,
            "training.warmup_steps": 4,
            "training.learning_rate": 3e-3,
            "training.val_every": 8,
            "training.save_every": 48,
            "training.ema_decay": 0.8,
            "training.target_encoding": "hl_gauss",
            "data.batch_size": 12,
            "data.val_episodes": [0, 1],  # one success, one failure: the targets vary
        },
    )
    result = train(cfg)
    assert result.step == 48 and result.checkpoint is not None and ckpt.is_checkpoint(result.checkpoint)
    val = log_records(result.run_dir, "val")
    assert [r["step"] for r in val] == [8, 16, 24, 32, 40, 48]
    assert val[-1]["loss"] < val[0]["loss"]
    assert val[-1]["ev"] > val[0]["ev"] + 0.2
    assert val[-1]["ev"] > 0.4
    train_loss = [r["loss"] for r in log_records(result.run_dir, "train")]
    assert np.mean(train_loss[-8:]) < np.mean(train_loss[:8])
    assert result.val_metrics["per_task"]["pick the bottle"]["count"] == val[-1]["count"]
    for key in ("loss", "mae", "rmse", "ev"):
        assert math.isfinite(result.val_metrics[key])
    assert (result.run_dir / "config.yaml").is_file()


def test_resumed_run_matches_an_uninterrupted_run(make_config):
    common = {
        "training.steps": 8,
        "training.warmup_steps": 2,
        "training.learning_rate": 2e-3,
        "training.val_every": 0,
        "training.save_every": 2,
        "training.keep_last": 2,
        "training.ema_decay": 0.9,
        "training.gradient_accumulation_steps": 2,
        "data.batch_size": 5,
    }
    full = train(make_config("full", common))
    # Same run stopped after 3 steps (between checkpoints: it saves at its stop), then resumed twice.
    part = train(make_config("part", common, {"training.max_steps_this_run": 3}))
    assert part.step == 3
    with pytest.raises(ConfigError, match="training.resume=true"):
        train(make_config("part", common))
    mid = train(make_config("part", common, {"training.resume": True, "training.max_steps_this_run": 2}))
    assert mid.step == 5
    done = train(make_config("part", common, {"training.resume": True}))
    assert done.step == 8

    a, b = full.checkpoint, done.checkpoint
    for use_ema in (False, True):
        (wa, ema_a), (wb, ema_b) = ckpt.load_weights(a, use_ema), ckpt.load_weights(b, use_ema)
        assert ema_a == ema_b == use_ema and wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), f"{k} (ema={use_ema}) differs after resume"
    sa, sb = ckpt.load_training_state(a), ckpt.load_training_state(b)
    assert sa["scheduler"] == sb["scheduler"] and sa["data"] == sb["data"]
    assert torch.equal(sa["rng"][0]["torch"], sb["rng"][0]["torch"])  # dropout etc. would continue alike
    for pa, pb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values(), strict=True):
        assert torch.equal(pa["exp_avg"], pb["exp_avg"])
    # Same losses step by step, and the metrics log has one record per step.
    la = [(r["step"], r["loss"]) for r in log_records(full.run_dir, "train")]
    lb = [(r["step"], r["loss"]) for r in log_records(done.run_dir, "train")]
    assert la == lb and [s for s, _ in la] == list(range(1, 9))
    # keep_last=2: only the newest two checkpoints (and their state) stay; checkpoint_ema is the newest EMA.
    names = [p.name for p in ckpt.list_checkpoints(full.run_dir)]
    assert names == ["checkpoint_6.safetensors", "checkpoint_8.safetensors"]
    assert sorted(p.name for p in full.run_dir.glob("checkpoint_*_state")) == [
        "checkpoint_6_state", "checkpoint_8_state"
    ]
    assert ckpt.latest_checkpoint(full.run_dir) == a == full.run_dir / "checkpoint_8.safetensors"
    latest_ema, used = ckpt.load_weights(full.run_dir / ckpt.EMA_LATEST)
    assert used and all(torch.equal(latest_ema[k], wa[k]) for k in wa)
    assert not list(full.run_dir.glob(".*"))  # no temp leftovers


def test_resume_from_names_a_checkpoint(make_config):
    common = {
        "training.steps": 4,
        "training.warmup_steps": 0,
        "training.val_every": 0,
        "training.save_every": 2,
        "training.ema_decay": 0.0,
        "data.batch_size": 4,
    }
    first = train(make_config("r", common, {"training.max_steps_this_run": 2}))
    resumed = train(make_config("r", common, resume_from=str(first.checkpoint)))
    assert resumed.step == 4
    assert not ckpt.ema_file(resumed.checkpoint).exists()  # EMA off
    assert not (resumed.run_dir / ckpt.EMA_LATEST).exists()
    assert ckpt.read_meta(resumed.checkpoint)["step"] == 4


def test_sampler_order_is_a_function_of_the_batch_number():
    n, bs = 10, 4
    s = ResumableBatchSampler(n, bs, seed=1)
    it = iter(s)
    first = [next(it) for _ in range(6)]
    resumed = iter(ResumableBatchSampler(n, bs, seed=1, start_batch=3))
    assert [next(resumed) for _ in range(3)] == first[3:]
    stream = np.concatenate([global_batch(n, bs, 1, b) for b in range(5)])  # 20 samples = 2 epochs
    assert sorted(stream[:10].tolist()) == list(range(10)) and sorted(stream[10:].tolist()) == list(range(10))
    r0 = ResumableBatchSampler(n, 2, seed=1, rank=0, world_size=2).batch_indices(0)
    r1 = ResumableBatchSampler(n, 2, seed=1, rank=1, world_size=2).batch_indices(0)
    assert r0 + r1 == global_batch(n, 4, 1, 0).tolist()
    assert ResumableBatchSampler(n, bs, seed=2).batch_indices(0) != first[0]


def test_learning_rate_warms_up_then_decays_to_the_floor():
    f = lr_lambda(steps=100, warmup=10, min_ratio=0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(55) == pytest.approx(0.55)
    assert f(100) == pytest.approx(0.1) and f(200) == pytest.approx(0.1)
    assert all(f(s) >= f(s + 1) for s in range(10, 100))


def test_ema_tracks_weights_and_swaps_back():
    model = torch.nn.Linear(3, 2)
    ema = EMA(model, decay=0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.num_updates = 100  # past the warm-up: decay 0.5
    ema.update(model)
    np.testing.assert_allclose(ema.shadow["weight"], before["weight"] + 0.5, rtol=1e-6)
    current = model.weight.detach().clone()
    with ema.swapped_into(model):
        assert torch.allclose(model.weight, before["weight"] + 0.5)
    assert torch.equal(model.weight, current)
    assert torch.allclose(ema.state_dict_for(model)["weight"], before["weight"] + 0.5)


def test_frozen_vision_and_gradient_checkpointing(make_config):
    cfg = make_config(
        "frozen",
        {
            "training.steps": 2,
            "training.warmup_steps": 0,
            "training.val_every": 0,
            "training.save_every": 1,
            "training.keep_last": 0,
            "training.freeze_vision": True,
            "training.gradient_checkpointing": True,
            "training.ema_decay": 0.0,
            "data.batch_size": 4,
        },
    )
    result = train(cfg)
    first, second = (ckpt.load_state_dict(p) for p in ckpt.list_checkpoints(result.run_dir))
    vision = [k for k in first if k.startswith("vision.")]
    assert vision and all(torch.equal(first[k], second[k]) for k in vision)
    assert not torch.equal(first["head.0.weight"], second["head.0.weight"])


def test_failed_checkpoint_write_leaves_nothing_behind(tmp_path, monkeypatch):
    payload = ckpt.CheckpointPayload(
        step=3, model_state={"w": torch.ones(2)}, ema_state=None, training_state={"step": 3}, meta={}
    )
    good = ckpt.save_checkpoint(tmp_path, payload)
    umask = os.umask(0)
    os.umask(umask)
    state = ckpt.state_dir(good)
    assert state.stat().st_mode & 0o777 == 0o777 & ~umask  # not the private mode of a temp directory
    assert good.stat().st_mode & 0o777 == 0o666 & ~umask

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken)
    payload.step = 4
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, payload)
    assert ckpt.list_checkpoints(tmp_path) == [good] and ckpt.latest_checkpoint(tmp_path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name, ckpt.state_dir(good).name]


def test_consistency_loss_is_zero_when_the_value_moves_as_the_return_does():
    from ove_ros.training.metrics import consistency_loss

    target, later = torch.tensor([-0.5, -0.3, -0.9]), torch.tensor([-0.4, -0.2, -0.95])
    shared_error = torch.tensor([0.1, -0.2, 0.05])
    pred = (target + shared_error).requires_grad_()
    valid = torch.tensor([True, True, True])
    first = pred.detach()
    assert float(consistency_loss(first, target, later + shared_error, later, valid)) == pytest.approx(0.0)
    # A later value off by 0.2 more than the earlier one costs 0.2**2 on that pair, averaged over the valid.
    bumped = later + shared_error + torch.tensor([0.0, 0.2, 0.0])
    assert float(consistency_loss(first, target, bumped, later, valid)) == pytest.approx(0.04 / 3)
    assert float(consistency_loss(first, target, bumped, later, torch.tensor([True, False, True]))) == 0.0
    none = consistency_loss(pred, target, bumped, later, torch.tensor([False, False, False]))
    none.backward()  # no pair: zero, and still part of the graph
    assert float(none) == 0.0 and pred.grad is not None


def test_consistency_term_pairs_each_frame_with_a_later_one_and_trains(make_config):
    from ove_ros.training.train import prepare_data

    common = {"training.steps": 6, "training.warmup_steps": 1, "training.val_every": 0,
              "training.save_every": 6, "training.ema_decay": 0.0, "data.batch_size": 6}
    cfg = make_config("consistency", common,
                      {"training.consistency_weight": 20.0, "training.consistency_gap": 3})
    data = prepare_data(cfg)
    frames = data.frames(data.train_episodes, 32, pair_gap=3)
    lengths = {int(e): int((frames.episode_index == e).sum()) for e in np.unique(frames.episode_index)}
    for i in range(len(frames)):
        item = frames[i]
        episode, frame = item["episode_index"], item["frame_index"]
        if frame + 3 < lengths[episode]:
            assert bool(item["pair_valid"]) and item["pair"]["episode_index"] == episode
            assert item["pair"]["frame_index"] == frame + 3
            assert float(item["target"]) <= float(item["pair"]["target"])  # the return rises toward the end
        else:  # no frame 3 later: paired with itself, masked out
            assert not bool(item["pair_valid"]) and item["pair"]["frame_index"] == frame
    result = train(cfg)
    losses = [r["loss"] for r in log_records(result.run_dir, "train")]
    assert result.step == 6 and all(math.isfinite(x) for x in losses)
    # Same weights and first batch without the term: the first step's loss is the cross-entropy alone.
    plain = train(make_config("plain", common))
    assert losses[0] > log_records(plain.run_dir, "train")[0]["loss"]
