# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The training tools' configuration through the one typed-config mechanism: ranges declared on the fields,
one loader (typed_config.load) for the training and cloud command lines, ``--help`` from the fields."""

from __future__ import annotations

import re
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import yaml

from ove_ros import typed_config
from ove_ros.training.config import Config, ConfigError, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[1]
TINY_YAML = REPO / "training" / "configs" / "tiny.yaml"
USAGE = "usage: python -m {} config=<file.yaml> [key=value ...] [--debug]"


def load(*overrides: str, path: Path = TINY_YAML) -> Config:
    return load_config(path, list(overrides), require_run_name=False)


def _bounded_fields(cls=Config, prefix=""):
    """``(dotted key, metadata)`` of every field that declares a numeric range."""
    for f in fields(cls):
        default = f.default_factory() if callable(f.default_factory) else f.default
        if is_dataclass(default):
            yield from _bounded_fields(type(default), f"{prefix}{f.name}.")
        elif {"ge", "gt", "le", "lt"} & set(f.metadata):
            yield f"{prefix}{f.name}", f.metadata


def _outside(meta) -> float:
    """A value just outside the declared range."""
    if "gt" in meta:
        return meta["gt"] - 1 if isinstance(meta["gt"], int) else meta["gt"] - 0.5
    if "ge" in meta:
        return meta["ge"] - 1
    return meta.get("lt", meta.get("le")) + 1


# ------------------------------------------------------------------------------------------------- --help


@pytest.mark.parametrize("tool", ["train", "evaluate", "advantage", "sweep"])
def test_help_of_every_training_tool_is_the_typed_config_page(tool, capsys):
    import importlib

    module = importlib.import_module(f"ove_ros.training.{tool}")
    for flag in ("--help", "help"):
        module.main([flag])
        out = capsys.readouterr().out
        name = f"ove_ros.training.{tool}" + (" [sweep.backend=optuna|wandb]" if tool == "sweep" else "")
        page = typed_config.help_text(Config, USAGE.format(name), module.__doc__)
        assert out.startswith(page + "\n"), out[:400]
        assert "= training.steps" in out[len(page):]  # then the accepted other spellings


def test_help_of_train_lists_every_key_with_its_default_and_description(capsys):
    from ove_ros.training.train import main

    main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    for key, default, text in typed_config.describe(Config):
        row = next((line for line in lines if line.startswith(f"  {key} ")), None)
        assert row is not None, key
        assert re.search(rf"\s{re.escape(default)}\s+{re.escape(text)}$", row), row
    ema = next(line for line in lines if line.startswith("  training.ema_decay "))
    assert ema.endswith("(in [0, 1))") and " 0.999 " in ema


def test_cloud_launcher_help_lists_the_cloud_keys_once(capsys):
    from ove_ros.training.cloud.launch import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.count("\n  cloud.machine_type ") == 1 and "--dry-run" in out
    assert re.search(r"\n  cloud\.replica_count +1 +Nodes.*\(>= 1\)", out)


# ------------------------------------------------------------------------------------- ranges on the fields


def test_ema_decay_out_of_range_is_named_with_the_range_from_its_field():
    meta = next(m for k, m in _bounded_fields() if k == "training.ema_decay")
    assert (meta["ge"], meta["lt"]) == (0, 1)
    with pytest.raises(ConfigError, match=r"training\.ema_decay must be in \[0, 1\), got 1\.5$"):
        load("training.ema_decay=1.5")


def test_every_declared_range_stops_the_config_naming_key_and_range():
    bounded = dict(_bounded_fields())
    assert len(bounded) >= 30  # the hand-written checks of validate() moved onto the fields
    for key in ("training.learning_rate", "training.betas", "data.val_fraction", "advantage.percentile",
                "sweep.n_trials", "cloud.replica_count", "model.value_head_depth", "data.step_penalty"):
        assert key in bounded, key
    for key, meta in bounded.items():
        value = _outside(meta)
        given = f"[{value},0.9]" if key == "training.betas" else str(value)
        rule = re.escape(typed_config._constraint_text(meta))
        with pytest.raises(ConfigError, match=rf"{re.escape(key)}( entries)? must be {rule}, got"):
            load(f"{key}={given}")


def test_several_broken_ranges_are_reported_together():
    with pytest.raises(ConfigError) as exc:
        load("training.learning_rate=0", "advantage.n_step=0", "evaluate.video_fps=0")
    message = str(exc.value)
    for part in ("training.learning_rate must be > 0, got 0.0", "advantage.n_step must be >= 1, got 0",
                 "evaluate.video_fps must be > 0, got 0"):
        assert part in message, message


def test_checks_that_relate_fields_stay_in_validate():
    with pytest.raises(ConfigError, match=r"training\.betas must be two values in \[0, 1\), got \[0\.9\]"):
        load("training.betas=[0.9]")
    with pytest.raises(ConfigError, match="run_name 'a b' may only contain"):
        load_config(TINY_YAML, ["run_name=a b"])


# ----------------------------------------------------------------------------------------- one loader


def test_one_key_under_two_spellings_in_a_file_or_a_stored_config_is_an_error(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text(TINY_YAML.read_text() + "eval:\n  split: all\nevaluate:\n  split: train\n")
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))} sets evaluate\.split twice"):
        load(path=path)
    stored = load().to_dict()
    stored["training"]["num_steps"] = 3
    with pytest.raises(ConfigError, match=r"stored configuration sets training\.steps twice"):
        config_from_dict(stored)


def test_free_form_model_overrides_keep_their_keys_and_yaml_values(tmp_path):
    cfg = load("model.overrides.vision.image_size=48", "model.overrides.dropout=1e-5")
    assert cfg.model.overrides == {"vision": {"image_size": 48}, "dropout": 1e-5}
    again = config_from_dict(cfg.to_dict())
    assert again.model.overrides == cfg.model.overrides and again == cfg


def test_a_mapping_on_the_command_line_replaces_the_files_and_a_dotted_key_changes_one_entry(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run_name: r\nmodel:\n  overrides: {state_bins: 16, image_size: 16}\n"
                    "data:\n  repo_id: x/y\n  batch_size: 8\n")
    assert load_config(path, ["model.overrides={}"]).model.overrides == {}
    replaced = load_config(path, ["model.overrides={time_bin_frames: 10}"]).model.overrides
    assert replaced == {"time_bin_frames": 10}
    merged = load_config(path, ["model.overrides.time_bin_frames=10"]).model.overrides
    assert merged == {"state_bins": 16, "image_size": 16, "time_bin_frames": 10}
    # A group of declared keys is never replaced wholesale: the file's other values stay.
    cfg = load_config(path, ["data={num_workers: 0}"])
    assert cfg.data.num_workers == 0 and cfg.data.batch_size == 8


def test_an_unknown_key_lists_the_keys_of_its_group():
    with pytest.raises(ConfigError, match=r"training\.learning_rat.*the keys there are: .*learning_rate"):
        load("training.learning_rat=1")


# ----------------------------------------------------------------------------------------------- cloud


def test_cloud_loader_rejects_an_unknown_cloud_key_naming_it_and_the_known_ones(tmp_path):
    from ove_ros.training.cloud.config import load_cloud_cli

    with pytest.raises(ConfigError, match=r"cloud\.machine_typ\b.*the keys there are: .*machine_type"):
        load_cloud_cli([f"config={TINY_YAML}", "run_name=r", "cloud.machine_typ=a2-highgpu-1g"])
    data = yaml.safe_load(TINY_YAML.read_text())
    data["cloud"] = {"regoin": "europe-west4"}
    path = tmp_path / "cloud.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"regoin.*the keys there are: .*region"):
        load_cloud_cli([f"config={path}", "run_name=r"])


def test_cloud_loader_takes_the_training_spellings_and_ranges():
    from ove_ros.training.cloud.config import load_cloud_cli

    cli = load_cloud_cli([f"config={TINY_YAML}", "run_name=r", "training.num_steps=9", "--cloud.spot=true",
                          "--dry-run"])
    assert cli.config.training.steps == 9 and cli.cloud.spot and cli.dry_run and cli.cloud is cli.config.cloud
    with pytest.raises(ConfigError, match=r"cloud\.timeout_hours must be > 0, got 0\.0"):
        load_cloud_cli([f"config={TINY_YAML}", "run_name=r", "cloud.timeout_hours=0"])
    with pytest.raises(ConfigError, match="the command line sets training.steps twice"):
        load_cloud_cli([f"config={TINY_YAML}", "run_name=r", "training.steps=2", "training.num_steps=3"])
