# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""One configuration mechanism for the command-line tools: one error type, ``--help`` generated from the
fields, checks that name the key and the allowed values, ``key=value`` overrides everywhere."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from ove_ros import typed_config
from ove_ros.typed_config import ConfigError

from conftest import dotted_keys

REPO = Path(__file__).resolve().parents[1]
BAG_YAML = REPO / "training" / "configs" / "bag_example.yaml"
TINY_YAML = REPO / "training" / "configs" / "tiny.yaml"


def _all_fields(cls):
    for f in fields(cls):
        yield cls, f
        default = f.default_factory() if callable(f.default_factory) else f.default
        if is_dataclass(default):
            yield from _all_fields(type(default))


# ---------------------------------------------------------------------------------------------------------
# One error type


def test_every_tool_raises_the_one_config_error(tmp_path, capsys):
    from ove_ros.ros import params
    from ove_ros.training import bag_config, bag_to_lerobot, config, convert

    assert config.ConfigError is bag_config.ConfigError is params.ConfigError is ConfigError
    assert issubclass(ConfigError, ValueError)  # the training tools print a ValueError without traceback
    with pytest.raises(ConfigError, match="does not exist"):
        config.load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="fpz"):
        bag_config.load_config(None, ["fpz=3"])
    with pytest.raises(ConfigError, match="dtype"):
        convert.parse_args(["checkpoint=a", "output=b", "dtype=fp8"])
    # The bag converter's own handler still catches every configuration error with its other errors.
    assert issubclass(ConfigError, bag_config.BagConversionError)
    assert issubclass(bag_to_lerobot.ConversionError, bag_config.BagConversionError)
    code = bag_to_lerobot.main([
        "--config", str(BAG_YAML), "--bags", str(tmp_path), "--output", str(tmp_path / "out"),
        "--repo-id", "local/x", "episodes.split=sometimes",
    ])
    err = capsys.readouterr().err
    assert code == 2 and "episodes.split must be one of ('auto', 'events', 'bag'), got 'sometimes'" in err


# ---------------------------------------------------------------------------------------------------------
# --help: every key with its default and description


def test_bag_config_help_lists_every_key_with_its_default():
    from ove_ros.training.bag_config import BagConversionConfig

    out = subprocess.run(
        [sys.executable, "-m", "ove_ros.training.bag_config", "--help"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    defaults = dotted_keys(OmegaConf.to_container(OmegaConf.structured(BagConversionConfig)))
    for key, default in defaults.items():
        shown = "???" if default == "???" else json.dumps(default)
        assert key in lines, key
        assert lines[key].split()[1] == shown, (key, lines[key])
    for key in ("cameras.<i>.topic", "cameras.<i>.resize", "state.joints", "action.topic"):
        assert key in lines, key
    assert 'one of "h264", "hevc", "libsvtav1"' in lines["video.vcodec"]
    assert "in [0, 63]" in lines["video.crf"]
    for cls, f in _all_fields(BagConversionConfig):
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no description"


def test_convert_help_lists_every_key_with_its_default(capsys):
    from ove_ros.training.convert import ConvertConfig, main

    main(["--help"])
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for f in fields(ConvertConfig):
        assert f.metadata["help"]
        default = f.default_factory() if f.default is MISSING else f.default
        assert lines[f.name].split()[1] == json.dumps(default), lines[f.name]
    assert "--no-ema" in out and "key=value" in out


def test_training_help_uses_the_same_field_descriptions():
    from ove_ros.training import config
    from ove_ros.training.config import Config, describe

    assert config._f is typed_config.setting  # the training config's fields are the core's settings

    rows = dict((k, (d, h)) for k, d, h in describe())
    assert rows == {k: (d, h) for k, d, h in typed_config.describe(Config)}
    assert rows["training.learning_rate"][0] == "0.0001"
    assert rows["data.repo_id"][0] == "???"


# ---------------------------------------------------------------------------------------------------------
# A bad key or value names the key and what is allowed


def test_a_bad_value_names_the_key_and_the_allowed_values():
    from ove_ros.training.bag_config import load_config
    from ove_ros.training.convert import parse_args

    allowed = r"dtype must be one of \('float32', 'bfloat16', 'float16'\), got 'fp8'"
    with pytest.raises(ConfigError, match=allowed):
        parse_args(["--checkpoint", "a", "--output", "b", "dtype=fp8"])
    with pytest.raises(ConfigError, match=r"video.crf must be in \[0, 63\], got 70"):
        load_config(BAG_YAML, ["video.crf=70"])
    with pytest.raises(ConfigError, match=r"video.gop must be >= 1, got 0"):
        load_config(BAG_YAML, ["video.gop=0"])
    from ove_ros.training import config

    allowed = r"training\.mixed_precision must be one of \('bf16', 'no'\), got 'fp16'"
    with pytest.raises(ConfigError, match=allowed):
        config.load_config(TINY_YAML, ["training.mixed_precision=fp16"], require_run_name=False)
    rows = {k: h for k, _, h in config.describe()}
    assert rows["model.preset"].endswith('(one of "tiny", "full")')
    assert rows["sweep.backend"].endswith('(one of "wandb", "optuna")')


def test_an_unknown_key_lists_the_keys_of_its_group():
    from ove_ros.training.bag_config import load_config
    from ove_ros.training.convert import parse_args

    with pytest.raises(ConfigError, match=r"video\.codec.*the keys there are: .*vcodec"):
        load_config(BAG_YAML, ["video.codec=h264"])
    with pytest.raises(ConfigError, match=r"fpz.*the keys there are: checkpoint, output, dtype, use_ema"):
        parse_args(["fpz=1"])
    with pytest.raises(ConfigError, match=r"unknown option '--bogus'.*--no-ema"):
        parse_args(["--bogus"])


# ---------------------------------------------------------------------------------------------------------
# Overrides


def test_bag_config_overrides_and_checks_come_from_the_fields():
    from ove_ros.training.bag_config import VideoConfig, load_config

    cfg = load_config(BAG_YAML, ["video.crf=20", "episodes.split=bag", "cameras.0.resize=[32,24]"])
    assert (cfg.video.crf, cfg.episodes.split, cfg.cameras[0].resize) == (20, "bag", [32, 24])
    meta = {f.name: f.metadata for f in fields(VideoConfig)}
    assert meta["crf"]["ge"] == 0 and meta["crf"]["le"] == 63 and meta["vcodec"]["choices"][0] == "h264"


def test_convert_accepts_key_value_besides_its_flags():
    from ove_ros.training.convert import ConvertConfig, convert, parse_args

    flags = parse_args(["--checkpoint", "runs/a", "--output=b", "--dtype", "bfloat16", "--no-ema",
                        "--advantage-info", "labelled"])
    keys = parse_args(["checkpoint=runs/a", "output=b", "dtype=bfloat16", "use_ema=false",
                       "advantage_info=labelled"])
    assert flags == keys == ConvertConfig("runs/a", "b", "bfloat16", False, "labelled", False)
    assert parse_args(["--checkpoint", "123", "--output", "b"]).checkpoint == "123"  # a flag's value is text
    # One source of truth: convert()'s defaults are the config's.
    import inspect

    params = inspect.signature(convert).parameters
    assert params["dtype"].default == ConvertConfig.dtype == "float32"
    assert params["use_ema"].default is ConvertConfig.use_ema is True
    with pytest.raises(ConfigError, match=r"output is required: pass output=<path> \(or --output <path>\)"):
        parse_args(["checkpoint=a"])


def test_convert_main_reports_a_bad_key_in_one_line():
    from ove_ros.training.convert import main

    with pytest.raises(SystemExit, match=r"^error: invalid convert options: dtype must be one of"):
        main(["checkpoint=a", "output=b", "dtype=fp8"])
    with pytest.raises(ConfigError, match="dtype"):  # --debug shows the error with its traceback
        main(["checkpoint=a", "output=b", "dtype=fp8", "--debug"])


def test_typed_config_imports_without_ros_or_torch():
    code = (
        "import sys, ove_ros.typed_config; "
        "assert not [m for m in ('torch', 'rclpy', 'omegaconf') if m in sys.modules], sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ---------------------------------------------------------------------------------------------------------
# The node's parameters and the reward settings use the same fields


def test_node_parameters_are_declared_from_the_settings_fields():
    from ove_ros.ros import params

    by_field = {f.metadata.get("key", f.name): f for f in fields(params.Settings)}
    assert [p.name for p in params.PARAMS] == list(by_field)
    for p in params.PARAMS:
        f = by_field[p.name]
        assert p.description == f.metadata["help"] and p.choices == f.metadata.get("choices")
        assert p.dynamic == f.metadata["dynamic"]
    assert params.BY_NAME["sync.fps"].float_range == (0.0, 1000.0)
    assert params.BY_NAME["input_qos.depth"].int_range == (1, 1000)
    rows = {k: d for k, d, _ in typed_config.describe(params.Settings)}
    assert rows["input_qos.reliability"] == '"best_effort"'
    assert rows["camera_topics"] == '["camera/image_raw"]'


def test_a_bad_node_parameter_names_the_parameter_and_the_allowed_values():
    import rclpy
    from rclpy.parameter import Parameter

    from ove_ros.ros import params

    cases = {
        "device": ("gpu", r"device must be one of \('auto', 'cpu', 'cuda'\), got 'gpu'"),
        "input_qos.reliability": ("lossy", r"input_qos\.reliability must be one of .*, got 'lossy'"),
        "camera_transports": (["raw", "h264"], r"camera_transports entries must be one of .*got \['h264'\]"),
    }
    rclpy.init()
    try:
        for i, (name, (value, pattern)) in enumerate(cases.items()):
            node = rclpy.create_node(
                f"typed_config_params_{i}",
                parameter_overrides=[Parameter("checkpoint", value="/bundle"), Parameter(name, value=value)],
            )
            try:
                params.declare(node)
                with pytest.raises(ConfigError, match=pattern):
                    params.read(node)
            finally:
                node.destroy_node()
        node = rclpy.create_node("typed_config_params_ok", parameter_overrides=[
            Parameter("checkpoint", value="/bundle"), Parameter("camera_topics", value=["a", "b"]),
        ])
        try:
            params.declare(node)
            s = params.read(node)
        finally:
            node.destroy_node()
        assert s.camera_transports == ("auto", "auto") and s.joint_names == () and s.fps == 0.0
    finally:
        rclpy.shutdown()


def test_reward_settings_are_checked_by_the_core_and_shared_with_training():
    from ove_ros.training.config import DataConfig
    from ove_ros.values import RewardConfig

    with pytest.raises(ConfigError, match=r"RewardConfig: unknown keys \['fail'\]; expected a subset"):
        RewardConfig.from_dict({"fail": 1.0})
    with pytest.raises(ConfigError, match=r"RewardConfig.step_penalty must be >= 0, got -1"):
        RewardConfig.from_dict({"step_penalty": -1})
    with pytest.raises(ConfigError, match=r"fail_penalty must be a finite number >= 0, got inf"):
        RewardConfig.from_dict({"fail_penalty": float("inf")})
    assert RewardConfig.from_dict({"precomputed_rewards": True}) == RewardConfig(precomputed_rewards=True)
    # One source of truth: the training config's reward settings take RewardConfig's defaults and help.
    reward = {f.name: f for f in fields(RewardConfig)}
    for f in fields(DataConfig):
        if f.name in ("step_penalty", "fail_penalty"):
            assert f.default == reward[f.name].default
            assert f.metadata["help"] == reward[f.name].metadata["help"]


# ---------------------------------------------------------------------------------------------------------
# The loader's other spellings, list ranges and YAML values (the core, on a small config)


@dataclasses.dataclass
class _Inner:
    rate: float = typed_config.setting(0.5, "A rate.", ge=0, lt=1)
    weights: list[float] = typed_config.setting([0.1], "Weights.", ge=0, le=1)
    extra: dict[str, Any] = typed_config.setting({}, "Free-form values.")


@dataclasses.dataclass
class _Outer:
    inner: _Inner = dataclasses.field(default_factory=_Inner, metadata={"help": "A group."})
    name: str = typed_config.setting("n", "A name.")


def _rename(key: str) -> str:
    return {"old_name": "name", "inner.speed": "inner.rate"}.get(key, key)


def test_load_renames_other_spellings_and_rejects_one_key_given_twice(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("old_name: a\ninner:\n  speed: 0.25\n  extra: {old_name: kept}\n")
    cfg = typed_config.load(_Outer, path, ["inner.extra.x=1e-5"], rename=_rename)
    assert (cfg.name, cfg.inner.rate) == ("a", 0.25)
    assert cfg.inner.extra == {"old_name": "kept", "x": 1e-5}  # free-form keys are not renamed; 1e-5 a float
    cfg = typed_config.load(_Outer, None, ["inner.speed=0.5"], data={"old_name": "b"}, rename=_rename)
    assert (cfg.name, cfg.inner.rate) == ("b", 0.5)
    path.write_text("name: a\nold_name: b\n")
    with pytest.raises(ConfigError, match=r"c\.yaml sets name twice \(as name and old_name\); keep one"):
        typed_config.load(_Outer, path, rename=_rename)
    with pytest.raises(ConfigError, match=r"the command line sets inner\.rate twice"):
        typed_config.load(_Outer, None, ["inner.rate=0.1", "inner.speed=0.2"], rename=_rename)
    with pytest.raises(ConfigError, match=r"must hold a mapping"):
        typed_config.load(_Outer, None, data="- 1\n- 2\n")


def test_ranges_of_list_entries_and_half_open_ranges_are_checked_and_described():
    cfg = _Outer(_Inner(rate=1.0, weights=[0.5, 1.5, -1.0]))
    assert typed_config.problems(cfg) == [
        "inner.rate must be in [0, 1), got 1.0",
        "inner.weights entries must be in [0, 1], got [1.5, -1.0]",
    ]
    rows = {k: h for k, _, h in typed_config.describe(_Outer)}
    assert rows["inner.rate"] == "A rate. (in [0, 1))" and rows["inner.weights"] == "Weights. (in [0, 1])"
    assert typed_config.problems(_Inner(rate=float("nan"))) == ["rate must be in [0, 1), got nan"]
