# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The open-value-estimator library's spellings, range checks when the config loads, one-line CLI errors,
and the model API's checks of image values."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest
import torch

from ove_ros.model import OpenValueEstimator, ValueModelConfig
from ove_ros.tokenizer import build_local_tokenizer
from ove_ros.training.config import Config, ConfigError, load_config, print_help

from dataset_fixtures import TINY_YAML, learnable_dataset, synthetic_dataset, trained_run  # noqa: F401

REPO_ROOT = TINY_YAML.parents[2]


def load(*overrides: str, path=TINY_YAML) -> Config:
    return load_config(path, list(overrides), require_run_name=False)


def test_reference_spellings_are_accepted():
    cfg = load(
        "training.num_steps=10000", "training.learning_rate=1e-5", "data.batch_size=32",
        "training.resume_from=./outputs/ove_ros/r/checkpoint_2000.safetensors", "eval.split=all",
        "sweep_config=s.yaml", "count=20", "sweep_id=abc", "create_only=true", "model.value_head_depth=3",
    )
    assert cfg.training.steps == 10000 and cfg.training.learning_rate == 1e-5 and cfg.data.batch_size == 32
    assert cfg.training.resume and cfg.training.resume_from.endswith("checkpoint_2000.safetensors")
    assert cfg.evaluate.split == "all" and cfg.eval is cfg.evaluate
    assert (cfg.sweep.spec, cfg.sweep.n_trials, cfg.sweep.wandb_sweep_id, cfg.sweep.create_only) == (
        "s.yaml", 20, "abc", True
    )
    assert cfg.model.value_head_depth == 3
    assert load("resume_from=/x").training.resume_from == "/x"  # the earlier top-level spelling
    names = {f.name for f in fields(Config)}
    assert {"model", "training", "data", "advantage", "evaluate", "accelerate", "wandb", "cloud"} <= names
    with pytest.raises(ConfigError, match="training.steps twice"):
        load("training.num_steps=5", "training.steps=6")


def test_sweep_parameters_and_stored_configs_may_use_the_aliases():
    from ove_ros.training.config import config_from_dict
    from ove_ros.training.sweep import trial_config

    base = load()
    trial = trial_config(base, {"training.num_steps": 12, "eval.split": "all"}, "t0")
    assert trial.training.steps == 12 and trial.evaluate.split == "all" and trial.run_name == "t0"
    stored = base.to_dict()
    del stored["training"]["resume_from"]  # a run saved before resume_from moved into the training group
    stored["resume_from"] = "/old/run/checkpoints/step_000000010"
    assert config_from_dict(stored).training.resume_from == "/old/run/checkpoints/step_000000010"


def test_reference_spellings_in_a_yaml_file(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        TINY_YAML.read_text()
        + "eval:\n  split: train\naccelerate:\n  cpu: true\nadvantage:\n  mode: mc\n  n_step: 10\n"
    )
    text = path.read_text().replace("  steps: 300", "  num_steps: 7")
    path.write_text(text)
    cfg = load(path=path)
    assert cfg.training.steps == 7 and cfg.evaluate.split == "train" and cfg.accelerate.cpu
    assert cfg.advantage.mode == "mc" and cfg.advantage.n_step == 10
    assert cfg.model.overrides == {}


def test_help_lists_the_aliases(capsys):
    print_help("ove_ros.training.train")
    out = capsys.readouterr().out
    assert "training.num_steps" in out and "= training.steps" in out
    assert "eval.<key>" in out and "sweep_config" in out and "model.value_head_depth" in out
    assert "accelerate.cpu" in out


def test_value_head_depth_sets_the_head():
    from ove_ros.training.modeling import build_model

    for depth in (0, 3):
        model = build_model(load(f"model.value_head_depth={depth}"), ["cam_high"], 4)
        assert model.config.head_depth == depth
        linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
        assert len(linears) == depth + 1


@pytest.mark.parametrize(
    "override, key",
    [
        ("training.learning_rate=-1", "training.learning_rate"),
        ("training.learning_rate=0", "training.learning_rate"),
        ("advantage.percentile=150", "advantage.percentile"),
        ("advantage.percentile=-1", "advantage.percentile"),
        ("training.num_steps=0", "training.steps"),
        ("training.weight_decay=-0.1", "training.weight_decay"),
        ("training.betas=[0.9,1.5]", "training.betas"),
        ("training.min_lr_ratio=2", "training.min_lr_ratio"),
        ("training.save_every=0", "training.save_every"),
        ("training.hl_gauss_sigma=0", "training.hl_gauss_sigma"),
        ("data.num_workers=-1", "data.num_workers"),
        ("model.preset=huge", "model.preset"),
        ("model.value_head_depth=-1", "model.value_head_depth"),
        ("count=0", "sweep.n_trials"),
        ("evaluate.video_episodes=-2", "evaluate.video_episodes"),
    ],
)
def test_out_of_range_values_stop_when_the_config_loads(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load(override)


def test_cli_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    from ove_ros.training.advantage import main as advantage_main
    from ove_ros.training.train import main as train_main

    with pytest.raises(SystemExit) as exc:
        train_main([f"config={TINY_YAML}", "run_name=x", "training.learning_rate=-1"])
    assert exc.value.code == "error: invalid configuration: training.learning_rate must be > 0, got -1.0"
    with pytest.raises(ConfigError):
        train_main([f"config={TINY_YAML}", "run_name=x", "training.learning_rate=-1", "--debug"])
    # An error after the config loaded (a missing checkpoint) is one line too.
    with pytest.raises(SystemExit) as exc:
        advantage_main([f"config={TINY_YAML}", f"advantage.checkpoint={tmp_path / 'nope'}"])
    message = str(exc.value.code)
    assert message.startswith("error: checkpoint ") and "does not exist" in message and "\n" not in message
    with pytest.raises(FileNotFoundError):
        advantage_main([f"config={TINY_YAML}", f"advantage.checkpoint={tmp_path / 'nope'}", "debug=true"])


def test_a_missing_dataset_is_one_line_from_the_real_command(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ove_ros.training.train", f"config={TINY_YAML}", "run_name=x",
         f"output_root={tmp_path}",
         f"data.root={tmp_path / 'no_dataset'}", "wandb.mode=disabled"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no_dataset" in errors[0], result.stderr
    log = tmp_path / "ove_ros" / "x" / "error.log"
    assert errors[0].endswith(f"(traceback in {log})") and "Traceback" in log.read_text()


def test_a_missing_reward_column_is_one_line(synthetic_dataset, tmp_path):  # noqa: F811
    from ove_ros.training.train import main

    dataset = synthetic_dataset(
        num_episodes=2, min_length=4, max_length=5, image_size=32, reward_style="none"
    )
    with pytest.raises(SystemExit) as exc:
        main([f"config={TINY_YAML}", "run_name=x", f"output_root={tmp_path}", f"data.root={dataset}",
              "data.num_workers=0", "wandb.mode=disabled"])
    message = str(exc.value.code)
    assert message.startswith("error: ") and "reward" in message and "\n" not in message


def test_wandb_sweeps_without_an_account_say_so_in_one_line(monkeypatch, tmp_path):
    from ove_ros.training.sweep import main

    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    spec = TINY_YAML.parent / "sweep.yaml"
    for args in (
        [f"sweep_config={spec}", "count=20"],
        [f"sweep_config={spec}", "create_only=true"],
        ["sweep_id=abc", "count=10"],
        [f"sweep_config={spec}", "project=other", "count=20"],
    ):
        with pytest.raises(SystemExit) as exc:
            main([f"config={TINY_YAML}", *args])
        message = str(exc.value.code)
        assert message.startswith("error: W&B sweeps need a W&B account: set WANDB_API_KEY"), message
        assert "\n" not in message and "--backend optuna" in message


def test_wandb_sweep_create_only_join_and_project(monkeypatch, capsys):
    """The W&B server is out of reach here: its two entry points are replaced by recorders."""
    import wandb

    from ove_ros.training.sweep import main

    calls: list[tuple] = []
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setattr(wandb, "sweep", lambda cfg, project, entity: calls.append(("sweep", project)) or "s1")
    monkeypatch.setattr(
        wandb, "agent", lambda sid, **kw: calls.append(("agent", sid, kw["count"], kw["project"]))
    )
    spec = TINY_YAML.parent / "sweep.yaml"
    main([f"config={TINY_YAML}", f"sweep_config={spec}", "create_only=true", "wandb.mode=online"])
    assert calls == [("sweep", "ove_ros")] and '"sweep_id": "s1"' in capsys.readouterr().out
    calls.clear()
    main([f"config={TINY_YAML}", "sweep_id=abc", "count=10", "wandb.mode=online"])
    assert calls == [("agent", "abc", 10, "ove_ros")]
    calls.clear()
    main([f"config={TINY_YAML}", f"sweep_config={spec}", "project=other", "count=20", "wandb.mode=online"])
    assert calls == [("sweep", "other"), ("agent", "s1", 20, "other")]


def _tiny_model() -> OpenValueEstimator:
    torch.manual_seed(0)
    config = ValueModelConfig.tiny(num_cameras=1, state_dim=2)
    return OpenValueEstimator(config, build_local_tokenizer()).eval()


def test_model_rejects_nan_and_0_255_float_images():
    model = _tiny_model()

    def batch(images):
        return {"observation.images": images, "observation.state": torch.zeros(2, 2), "task": ["t", "t"]}

    good = torch.rand(2, 1, 3, 32, 32)
    with torch.no_grad():
        ref = model(batch(good))
        as_uint8 = model(batch((good * 255).round().to(torch.uint8)))
    assert torch.isfinite(ref).all() and torch.isfinite(as_uint8).all()
    nan = good.clone()
    nan[0, 0, 1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model(batch(nan))
    with pytest.raises(ValueError, match=r"0\.\.255 values: divide by 255 or pass uint8"):
        model(batch(good * 255))
    with pytest.raises(ValueError, match=r"not \[0, 1\]"):
        model(batch(good - 0.5))
    with pytest.raises(ValueError, match="uint8 .* or float in \\[0, 1\\], got torch.int64"):
        model(batch((good * 255).long()))
    with pytest.raises(ValueError, match="NaN"):
        per_camera = {"observation.images.cam0": nan[:, 0], "observation.state": torch.zeros(2, 2)}
        model({**per_camera, "task": ["t", "t"]})


def test_from_pretrained_takes_a_checkpoint_file_or_a_bundle(trained_run, tmp_path):  # noqa: F811
    from ove_ros.training.convert import convert
    from ove_ros.training.modeling import model_from_checkpoint

    run_dir = trained_run["result"].run_dir
    ema_file = run_dir / "checkpoint_ema.safetensors"
    from_file = OpenValueEstimator.from_pretrained(str(ema_file), device="cpu")
    reference, _, used_ema = model_from_checkpoint(trained_run["result"].checkpoint, use_ema=True)
    bundle = OpenValueEstimator.from_pretrained(convert(ema_file, tmp_path / "bundle"), device="cpu")
    torch.manual_seed(1)
    batch = {
        "observation.images": torch.rand(3, from_file.config.num_cameras, 3, 32, 32),
        "observation.state": torch.zeros(3, from_file.config.state_dim),
        "task": ["pick the bottle"] * 3,
    }
    with torch.no_grad():
        a, b, c = (m(batch) for m in (from_file, reference, bundle))
    assert used_ema and torch.equal(a, b) and torch.allclose(a, c, atol=1e-5)
    values = from_file.get_expected_value(a)
    assert values.shape == (3,) and bool(((values >= -1) & (values <= 0)).all())


def test_advantage_takes_a_checkpoint_file_and_mc_mode(trained_run, tmp_path):  # noqa: F811
    import json

    from ove_ros.training.advantage import main

    cfg = trained_run["cfg"]
    out = tmp_path / "adv"
    main([
        f"config={TINY_YAML}", f"data.root={cfg.data.root}", f"data.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=0", f"advantage.checkpoint={trained_run['result'].checkpoint}",
        "advantage.mode=mc", f"advantage.output_root={out}", "advantage.output_repo_id=t/adv",
    ])
    info = json.loads((out / "meta" / "advantage.json").read_text())
    assert info["mode"] == "mc" and info["source"] == "checkpoint" and info["used_ema"] is True
    assert info["checkpoint"].endswith("checkpoint_30.safetensors")
