# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoint files under the run directory, resuming from a file, and what happens when files are cut
short."""

from __future__ import annotations

import logging

import pytest
import torch

from ove_ros.model import OpenValueEstimator
from ove_ros.training import checkpoint as ckpt
from ove_ros.training.config import ConfigError
from ove_ros.training.train import main, train

from dataset_fixtures import TINY_YAML, learnable_dataset, synthetic_dataset, tiny_config  # noqa: F401

SHORT = {
    "training.warmup_steps": 0,
    "training.val_every": 0,
    "training.save_every": 1,
    "training.keep_last": 5,
    "training.ema_decay": 0.9,
    "data.batch_size": 4,
}


@pytest.fixture
def make_config(tmp_path, learnable_dataset):  # noqa: F811
    def make(run_name, **keys):
        return tiny_config(tmp_path, learnable_dataset, run_name=run_name, **{**SHORT, **keys})

    return make


def cut_short(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_checkpoint_files_sit_in_the_run_directory(make_config, tmp_path):
    result = train(make_config("layout", **{"training.steps": 2}))
    run = result.run_dir
    assert run == tmp_path / "ove_ros" / "layout"
    assert result.checkpoint == run / "checkpoint_2.safetensors"
    names = [p.name for p in ckpt.list_checkpoints(run)]
    assert names == ["checkpoint_1.safetensors", "checkpoint_2.safetensors"]
    assert (run / ckpt.EMA_LATEST).is_file() and (run / "tokenizer").is_dir()
    assert not list(run.rglob("*.pt")) and not (run / ckpt.LEGACY_DIR).exists()
    # checkpoint_ema.safetensors is the EMA of the newest step and loads as a model on its own.
    meta = ckpt.read_meta(run / ckpt.EMA_LATEST)
    assert meta["step"] == 2 and meta["weights"] == "ema"
    model = OpenValueEstimator.from_pretrained(run / ckpt.EMA_LATEST, device="cpu")
    ema, used = ckpt.load_weights(result.checkpoint, use_ema=True)
    assert used and all(torch.equal(model.state_dict()[k], v) for k, v in ema.items())
    raw_model = OpenValueEstimator.from_pretrained(result.checkpoint)
    raw, _ = ckpt.load_weights(result.checkpoint, use_ema=False)
    assert all(torch.equal(raw_model.state_dict()[k], v) for k, v in raw.items())
    assert raw_model.joint_names == model.joint_names and model.joint_names


def test_resume_from_a_checkpoint_file_on_the_command_line(make_config, tmp_path, learnable_dataset, capsys):  # noqa: F811
    first = train(make_config("cli", **{"training.steps": 2}))
    args = [
        f"config={TINY_YAML}", "run_name=cli", f"output_root={tmp_path}", f"data.root={learnable_dataset}",
        f"data.cache_dir={tmp_path / 'cache'}", "data.num_workers=0", "wandb.mode=disabled",
        "training.num_threads=1", *(f"{k}={v}" for k, v in SHORT.items()),
        f"training.resume_from={first.run_dir / 'checkpoint_1.safetensors'}", "training.num_steps=3",
    ]
    main(args)
    out = capsys.readouterr().out
    assert '"step": 3' in out and "checkpoint_3.safetensors" in out
    assert ckpt.read_meta(first.run_dir / "checkpoint_3.safetensors")["step"] == 3
    # The EMA file resumes the step it belongs to.
    assert ckpt.resumable(first.run_dir / ckpt.EMA_LATEST) == first.run_dir / "checkpoint_3.safetensors"


def test_a_file_cut_short_is_named_and_resume_falls_back(make_config, caplog):
    result = train(make_config("cut", **{"training.steps": 3}))
    run = result.run_dir
    newest = run / "checkpoint_3.safetensors"
    cut_short(newest)
    for load in (
        lambda: ckpt.load_weights(newest, use_ema=False),
        lambda: OpenValueEstimator.from_pretrained(newest),
    ):
        with pytest.raises(ckpt.IncompleteFileError, match=r"checkpoint_3\.safetensors is incomplete"):
            load()
    # The EMA of step 2 is cut short too: resuming skips both and goes on from step 1.
    cut_short(ckpt.ema_file(run / "checkpoint_2.safetensors"), keep=0.9)
    with caplog.at_level(logging.WARNING, logger="ove_ros.training.train"):
        resumed = train(make_config("cut", **{"training.steps": 4, "training.resume": True}))
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "checkpoint_3.safetensors" in warnings and "incomplete" in warnings
    assert "checkpoint_2.safetensors" in warnings and "ema.safetensors" in warnings
    assert resumed.step == 4
    assert ckpt.load_training_state(resumed.checkpoint)["step"] == 4
    # Asking for the cut file by name also falls back (to the newest intact checkpoint before it).
    cut_short(run / "checkpoint_4.safetensors")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ove_ros.training.train"):
        again = train(make_config(
            "cut", **{"training.steps": 5, "training.resume_from": str(run / "checkpoint_4.safetensors")}
        ))
    assert again.step == 5 and "checkpoint_4.safetensors is incomplete" in caplog.text


def test_resume_at_or_past_the_requested_steps_says_so(make_config, tmp_path, learnable_dataset):  # noqa: F811
    done = train(make_config("full", **{"training.steps": 2}))
    same = train(make_config("full", **{"training.steps": 2, "training.resume": True}))
    assert same.step == 2 and same.checkpoint == done.checkpoint  # not None: the run's last checkpoint
    with pytest.raises(ConfigError, match=r"step 2, past training.steps=1: there is nothing to train"):
        train(make_config("full", **{"training.steps": 1, "training.resume": True}))
    args = [
        f"config={TINY_YAML}", "run_name=full", f"output_root={tmp_path}", f"data.root={learnable_dataset}",
        "data.num_workers=0", "wandb.mode=disabled", "training.resume=true", "training.num_steps=1",
    ]
    with pytest.raises(SystemExit) as exc:
        main(args)
    message = str(exc.value.code)
    assert message.startswith("error: ") and "nothing to train" in message and "\n" not in message


def test_older_checkpoint_directories_still_load(make_config, tmp_path):
    """checkpoints/step_<N>/ and the checkpoints/last pointer of earlier runs (weights only, no pickle
    read)."""
    import json
    import shutil

    from ove_ros.training.convert import main as convert_main

    result = train(make_config("old", **{"training.steps": 1}))
    legacy = tmp_path / "ove_ros" / "legacy" / ckpt.LEGACY_DIR / "step_000000001"
    legacy.mkdir(parents=True)
    shutil.copyfile(result.checkpoint, legacy / ckpt.MODEL_FILE)
    shutil.copyfile(ckpt.ema_file(result.checkpoint), legacy / ckpt.EMA_FILE)
    (legacy / ckpt.META_FILE).write_text(json.dumps(ckpt.read_meta(result.checkpoint)))
    (legacy.parent / ckpt.LAST_POINTER).write_text(legacy.name + "\n")
    assert ckpt.resolve_checkpoint(legacy.parent / ckpt.LAST_POINTER) == legacy
    assert ckpt.resolve_checkpoint(legacy.parent.parent) == legacy
    convert_main(["--checkpoint", str(legacy.parent / ckpt.LAST_POINTER), "--output", str(tmp_path / "b")])
    assert (tmp_path / "b" / "model.safetensors").is_file()
