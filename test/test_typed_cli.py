# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one command-line front-end (``ove_ros/typed_cli.py``) and the tools that read their argv with it: the
main job, the synthetic dataset writer, the bag player, the bag converter and the sweep's ``--backend``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ove_ros import typed_cli, typed_config
from ove_ros.typed_cli import REQUIRED
from ove_ros.typed_config import ConfigError, setting

from conftest import REPO_ROOT, ros_env


@dataclass
class Inner:
    size: int = setting(4, "Inner size.", ge=1)
    name: str = setting("x", "Inner name.")


@dataclass
class Tool:
    mode: str = setting("fast", "How.", choices=("fast", "slow"))
    target: str = setting(REQUIRED, "Required target.")
    count: int = setting(3, "How many.", ge=1)
    rate: float = setting(1.5, "Per second.", gt=0)
    names: tuple[str, ...] = setting(("a",), "Names.")
    output: Path | None = setting(None, "Where.")
    use_cache: bool = setting(True, "Cache.")
    verbose: bool = setting(False, "Talk.")
    inner: Inner = field(default_factory=Inner)
    extra: list[str] = setting([], "Passed on.")


def parse(argv, **options):
    err = io.StringIO()
    options.setdefault("positional", ["target"])
    cfg = typed_cli.parse(Tool, argv, "usage: tool", stderr=err, **options)
    return cfg, err.getvalue()


def test_key_value_with_yaml_values_and_dotted_keys():
    cfg, err = parse(["target=t", "count=7", "names=[b, 'c d']", "output=out/x", "inner.size=9",
                      "verbose=true", "rate=2"])
    assert (cfg.target, cfg.count, cfg.names, cfg.inner.size) == ("t", 7, ("b", "c d"), 9)
    assert cfg.output == Path("out/x")
    assert cfg.verbose is True and cfg.rate == 2.0 and err == ""


def test_positional_fields_fill_in_order_and_a_list_takes_the_rest():
    cfg, _ = parse(["slow", "t1", "count=2"], positional=["mode", "target"])
    assert (cfg.mode, cfg.target, cfg.count) == ("slow", "t1", 2)
    cfg, _ = parse(["t", "n1", "n2", "count=4"], positional=["target", "names"])
    assert cfg.names == ("n1", "n2") and cfg.count == 4
    with pytest.raises(ConfigError, match="unexpected argument 'two'.*count"):
        parse(["one", "two"])


def test_older_flags_map_to_keys_with_one_deprecation_line():
    cfg, err = parse(["--target", "t", "--count=5", "--names", "p", "q r", "--no-use-cache", "--verbose",
                      "--output", "null", "--inner.size", "2"])
    assert (cfg.target, cfg.count, cfg.names) == ("t", 5, ("p", "q r"))
    assert cfg.use_cache is False and cfg.verbose is True
    assert cfg.output == Path("null") and cfg.inner.size == 2  # a string flag's value stays a string
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deprecated: --target t --count=5")
    assert "write instead: target=t count=5 'names=[p,q r]' use_cache=false verbose=true" in lines[0]
    new = lines[0].split("write instead: ")[1]
    import shlex

    again, err = parse(shlex.split(new))  # the spelling it names gives the same config
    assert again == cfg and err == ""


def test_bool_flags_and_explicit_values():
    assert parse(["t", "--verbose"])[0].verbose is True
    assert parse(["t", "--verbose=false"])[0].verbose is False
    assert parse(["t", "--no-verbose"])[0].verbose is False
    assert parse(["t", "--use-cache", "--count", "2"])[0].count == 2  # a switch takes no value
    assert parse(["t", "verbose=no"])[0].verbose is False


def test_renamed_keys_and_switches():
    cfg, err = parse(["t", "--times", "4", "--fresh"], renamed={"times": "count"},
                     switches={"--fresh": "use_cache=false"})
    assert cfg.count == 4 and cfg.use_cache is False and "count=4 use_cache=false" in err
    cfg, err = parse(["t", "times=6"], renamed={"times": "count"})
    assert cfg.count == 6 and "write instead: count=6" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["t", "mode=medium"], ["mode", "fast", "slow", "medium"]),
        (["t", "count=0"], ["count", ">= 1"]),
        (["t", "rate=0"], ["rate", "> 0"]),
        (["t", "count=many"], ["count", "many"]),
        (["t", "colour=red"], ["colour", "mode, target, count"]),
        (["t", "inner.sise=2"], ["sise", "size, name"]),
        (["t", "--colour", "red"], ["--colour", "mode, target, count"]),
        (["t", "--count"], ["--count needs a value", "count=<value>"]),
        (["t", "--count", "--verbose"], ["--count needs a value"]),
        (["t", "-x"], ["'-x'"]),
        (["count=2"], ["target is required", "target=<value>", "bare argument 1"]),
        (["t", "--", "a=1"], ["'--'"]),
    ],
)
def test_errors_name_the_key_and_what_is_allowed(argv, words):
    with pytest.raises(ConfigError) as exc:
        parse(argv)
    for word in words:
        assert word in str(exc.value), (word, str(exc.value))


def test_rest_collects_unknown_keys_and_everything_after_double_dash():
    cfg, _ = parse(["t", "data.batch_size=4", "count=2", "--", "x=1", "--y", "z"], rest="extra")
    assert cfg.count == 2 and cfg.extra == ["data.batch_size=4", "x=1", "--y", "z"]


def test_rest_with_a_class_maps_its_older_flags_by_its_types():
    cfg, err = parse(["t", "--size", "3", "--name", "null", "--no-flag"], rest="extra", rest_cls=RestKeys)
    assert cfg.extra == ["size=3", 'name="null"', "flag=false"] and "size=3" in err
    with pytest.raises(ConfigError, match="unknown option '--colour'"):
        parse(["t", "--colour", "red"], rest="extra", rest_cls=RestKeys)


@dataclass
class RestKeys:
    size: int = setting(1, "Size.")
    name: str | None = setting(None, "Name.")
    flag: bool = setting(True, "Flag.")


def test_config_file_under_the_overrides(tmp_path):
    path = tmp_path / "tool.yaml"
    path.write_text("target: from_file\ncount: 8\ninner: {size: 5}\n")
    cfg, _ = parse([f"config={path}", "count=9"], config_file=True)
    assert (cfg.target, cfg.count, cfg.inner.size) == ("from_file", 9, 5)
    with pytest.raises(ConfigError, match="does not exist"):
        parse([f"config={tmp_path / 'missing.yaml'}"], config_file=True)
    with pytest.raises(ConfigError, match="config"):
        parse(["t", f"config={path}"])  # a tool without a config file has no such key


def test_help_lists_every_key_with_its_default(capsys):
    with pytest.raises(SystemExit) as exc:
        parse(["--help", "count=bad"], renamed={"times": "count"})
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: tool")
    for key, default, _ in typed_config.describe(Tool):
        line = next((x for x in out.splitlines() if x.strip().startswith(key + " ")), None)
        assert line is not None and default in line, (key, default)
    assert "--times for count" in out and "bare arguments fill, in order: target" in out


def test_legacy_flags_for_a_tool_with_its_own_loader():
    err = io.StringIO()
    out = typed_cli.legacy_flags(["config=c.yaml", "--backend", "optuna", "--debug", "--backend=wandb"],
                                 {"--backend": "sweep.backend"}, stderr=err)
    assert out == ["config=c.yaml", "sweep.backend=optuna", "--debug", "sweep.backend=wandb"]
    assert err.getvalue().count("\n") == 1 and "sweep.backend=optuna" in err.getvalue()
    with pytest.raises(ConfigError, match="--backend needs a value"):
        typed_cli.legacy_flags(["--backend"], {"--backend": "sweep.backend"})


def test_parse_or_exit_prints_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        typed_cli.parse_or_exit(Tool, ["t", "mode=medium"], "usage: tool", positional=["target"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "mode must be one of" in err


# ------------------------------------------------------------------------------------------------ the tools


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], env=ros_env(), cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=timeout)


def _lists_every_key(out: str, cls: type) -> None:
    for key, default, _ in typed_config.describe(cls):
        assert any(line.strip().startswith(key + " ") and default in line for line in out.splitlines()), key


def test_main_job_help_lists_every_key_of_both_modes():
    from ove_ros.main_job.config import DemoConfig, RealConfig

    done = _run("ove_ros.main_job", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m ove_ros.main_job")
    _lists_every_key(done.stdout, DemoConfig)
    _lists_every_key(done.stdout.split("real mode")[1], RealConfig)


def test_main_job_reads_old_and_new_spellings_alike(capsys):
    from ove_ros.main_job.cli import parse_args
    from ove_ros.main_job.config import DemoConfig, RealConfig

    old = parse_args(["--output", "o", "--cache-dir", "c", "--no-cache", "--episodes", "4", "--heldout", "2",
                      "--tasks", "reach-v3", "push-v3", "--max-steps", "30", "--train-steps", "10", "--rate",
                      "20", "training.lr=1"])
    assert "deprecated:" in capsys.readouterr().err
    new = parse_args(["output=o", "cache_dir=c", "use_cache=false", "episodes=4", "heldout=2",
                      "tasks=[reach-v3,push-v3]", "max_steps=30", "train_steps=10", "live_rate_hz=20",
                      "training.lr=1"])
    assert capsys.readouterr().err == ""
    assert old == new and isinstance(new, DemoConfig)
    assert new.output == Path("o") and new.train_overrides == ("training.lr=1",) and new.image_size == 64
    real = parse_args(["real", "--heldout", "3", "train_steps=15", "data.batch_size=2"])
    assert isinstance(real, RealConfig) and (real.heldout, real.train_steps) == (3, 15)
    assert real.train_overrides == ("data.batch_size=2",) and real.output == Path("outputs/demo_real")
    assert parse_args(["mode=real"]) == RealConfig()
    assert parse_args([]) == DemoConfig()


def test_main_job_reads_a_config_file_under_the_arguments(tmp_path):
    from ove_ros.main_job.cli import parse_args

    path = tmp_path / "demo.yaml"
    path.write_text("episodes: 5\nheldout: 4\ntasks: [push-v3]\n")
    cfg = parse_args([f"config={path}", "heldout=3", "training.lr=1"])
    assert (cfg.episodes, cfg.heldout, cfg.tasks) == (5, 3, ("push-v3",))
    assert cfg.train_overrides == ("training.lr=1",)
    path.write_text("episodes: 0\n")
    with pytest.raises(ConfigError, match="episodes must be >= 1, got 0"):
        parse_args([f"config={path}"])


def test_main_job_model_settings_reach_training_as_one_mapping(tmp_path):
    from ove_ros.main_job.cli import parse_args
    from ove_ros.main_job.config import DemoConfig
    from ove_ros.training.config import load_config

    default = DemoConfig().model_overrides
    assert parse_args([]).model_overrides == default and default["time_bin_frames"] > 0
    assert parse_args(["model_overrides={}"]).model_overrides == {}  # the preset as is
    cfg = parse_args(["model_overrides={state_bins: 16, time_bin_frames: 10}", "training.steps=7"])
    # The training config file's own model.overrides are replaced, the other training overrides still apply.
    path = tmp_path / "train.yaml"
    path.write_text("data:\n  repo_id: x/y\nmodel:\n  overrides: {image_size: 48}\n")
    trained = load_config(path, [*cfg.training_args(), *cfg.train_overrides], require_run_name=False)
    assert trained.model.overrides == {"state_bins": 16, "time_bin_frames": 10}
    assert trained.training.steps == 7
    merged = parse_args(["model_overrides.time_bin_frames=5"]).model_overrides
    assert merged == {**default, "time_bin_frames": 5}


def test_main_job_joint_noise_and_image_decoder_reach_training_and_a_user_key_wins(tmp_path):
    from ove_ros.main_job.cli import parse_args
    from ove_ros.training.config import load_config

    path = tmp_path / "train.yaml"
    path.write_text("data:\n  repo_id: x/y\ntraining:\n  augment_state: 0.5\n")

    def trained(argv):
        cfg = parse_args(argv)
        args = [*cfg.training_args(), *cfg.train_overrides]
        return load_config(path, args, require_run_name=False).training

    default = parse_args([]).state_noise
    assert default > 0
    # The main job's setting replaces the training file's, and survives other training overrides.
    assert trained(["training.learning_rate=0.001"]).augment_state == default
    assert trained(["state_noise=0"]).augment_state == 0.0
    assert trained(["state_noise=0.07"]).augment_state == 0.07
    # A training override of the same key is the user's last word.
    assert trained(["state_noise=0.07", "training.augment_state=0.01"]).augment_state == 0.01
    with pytest.raises(ConfigError, match="state_noise must be >= 0"):
        parse_args(["state_noise=-1"])
    # The image decoder's weight travels the same way.
    assert trained([]).aux_image_weight == parse_args([]).aux_image_weight == 0.0
    assert trained(["aux_image_weight=2"]).aux_image_weight == 2.0
    assert trained(["aux_image_weight=3", "training.aux_image_weight=0.5"]).aux_image_weight == 0.5
    with pytest.raises(ConfigError, match="aux_image_weight must be >= 0"):
        parse_args(["aux_image_weight=-1"])


def test_main_job_quality_profile_changes_only_its_keys():
    from dataclasses import asdict

    from ove_ros.main_job.cli import parse_args
    from ove_ros.main_job.config import REPO_ROOT, DemoConfig

    profile = REPO_ROOT / "config" / "main_job_quality.yaml"
    cfg, default = parse_args([f"config={profile}"]), DemoConfig()
    changed = {k for k, v in asdict(cfg).items() if asdict(default)[k] != v}
    assert changed == {"episodes", "train_steps", "output"}
    assert cfg.episodes >= 4 * default.episodes and cfg.train_steps >= 3 * default.train_steps
    assert cfg.output != default.output  # the default run's report is not replaced
    assert parse_args([f"config={profile}", "train_steps=5"]).train_steps == 5


def test_main_job_bad_value_is_one_line_and_exit_2():
    done = _run("ove_ros.main_job", "storage=zip")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: invalid main job options (sim mode): storage must be one of ('mcap', 'sqlite3'), got 'zip'"
    ]
    done = _run("ove_ros.main_job", "mode=fake")
    assert done.returncode == 2 and "mode must be one of ('sim', 'real')" in done.stderr
    # A training key is checked before any stage starts (no bag, dataset or run is made).
    done = _run("ove_ros.main_job", "output=/nonexistent/never_written", "training.lr=1")
    assert done.returncode == 2 and "training.lr" in done.stderr and "learning_rate" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not Path("/nonexistent/never_written").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["num_episodes=3", "image_size=8", "min_length=3", "max_length=4", "cameras=[a,b]"],
        ["--episodes", "3", "--image-size", "8", "min_length=3", "max_length=4", "--cameras", "a", "b"],
    ],
    ids=["key_value", "older_flags"],
)
def test_synthetic_writes_the_dataset_it_was_asked_for(tmp_path, argv):
    root = tmp_path / "syn"
    done = _run("ove_ros.training.synthetic", f"root={root}", *argv, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert ("deprecated: --episodes 3" in done.stderr) == ("--episodes" in argv)
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 3
    assert {"observation.images.a", "observation.images.b"} <= set(info["features"])
    assert info["features"]["observation.images.a"]["shape"][:2] == [8, 8]


def test_synthetic_help_and_errors():
    from ove_ros.training.synthetic import SyntheticJob

    done = _run("ove_ros.training.synthetic", "--help")
    assert done.returncode == 0
    _lists_every_key(done.stdout, SyntheticJob)
    done = _run("ove_ros.training.synthetic", "reward_style=loud")
    assert done.returncode == 2 and "root is required" in done.stderr and "Traceback" not in done.stderr
    done = _run("ove_ros.training.synthetic", "root=/tmp/never", "reward_style=loud")
    assert done.returncode == 2 and "reward_style must be one of ('outcome', 'dense', 'none')" in done.stderr


def test_bag_player_reads_its_bag_and_older_flags(tmp_path):
    from ove_ros.sim.bag_player import USAGE, PlayerConfig

    err = io.StringIO()
    old = typed_cli.parse(PlayerConfig, ["b", "--rate", "2", "--topics", "/a", "/b", "--done-file", "d"],
                          USAGE, positional=["bag"], stderr=err)
    new = typed_cli.parse(PlayerConfig, ["b", "rate=2", "topics=[/a,/b]", "done_file=d"], USAGE,
                          positional=["bag"])
    assert old == new == PlayerConfig(bag="b", rate=2.0, topics=["/a", "/b"], done_file="d")
    assert "write instead: rate=2 'topics=[/a,/b]' done_file=d" in err.getvalue()
    done = _run("ove_ros.sim.bag_player", "--help")
    assert done.returncode == 0
    _lists_every_key(done.stdout, PlayerConfig)
    done = _run("ove_ros.sim.bag_player", str(tmp_path / "nothing"), "rate=-1")
    assert done.returncode == 2 and "rate must be >= 0, got -1" in done.stderr
    done = _run("ove_ros.sim.bag_player", str(tmp_path / "nothing"))
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


def test_bag_to_lerobot_new_spelling_converts(tmp_path, capsys):
    from ove_ros.training import ros_types
    from ove_ros.training.bag_config import BagConversionConfig
    from ove_ros.training.bag_to_lerobot import EPISODES_META, main, parse_args

    from bag_fixtures import BagSpec, CameraSpec, EventSpec, write_bag

    old = parse_args(["--config", "c.yaml", "--bags", "b1", "b2", "fps=15", "--output", "o", "--repo-id",
                      "r/x", "--fps", "10", "--task", "stack it", "--no-progress", "--overwrite", "--outcome",
                      "success"])
    new = parse_args(["config=c.yaml", "b1", "b2", "fps=15", "output=o", "repo_id=r/x", "fps=10",
                      "task=stack it", "progress=false", "overwrite=true", "outcome=success"])
    assert old == new and new.bags == ["b1", "b2"] and new.overrides == ["fps=15", "fps=10", "task=stack it",
                                                                            "progress=false"]
    with pytest.raises(ConfigError, match="outcome must be one of"):
        parse_args(["config=c", "b", "output=o", "repo_id=r", "outcome=maybe"])
    with pytest.raises(ConfigError, match="bags is required"):
        parse_args(["config=c", "output=o", "repo_id=r"])
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    _lists_every_key(capsys.readouterr().out, BagConversionConfig)

    events = [EventSpec(0.1, ros_types.EVENT_START, task="stack", episode_id="a"),
              EventSpec(0.5, ros_types.EVENT_END, ros_types.OUTCOME_SUCCESS, episode_id="a")]
    bag = write_bag(tmp_path / "bag", BagSpec(cameras=[CameraSpec()], action_topic=None, events=events))
    config = tmp_path / "bag.yaml"
    config.write_text("fps: 15\ncameras:\n  - {name: front, topic: /camera/front/image_raw}\n"
                      "state: {topic: /joint_states, joints: [j1, j2, j3]}\nvideo: {use_videos: false}\n")
    out = tmp_path / "dataset"
    code = main([f"config={config}", str(bag), f"output={out}", "repo_id=test/cli", "fps=10",
                 "progress=false"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / EPISODES_META).read_text())["fps"] == 10
    code = main([f"config={config}", str(bag), f"output={tmp_path / 'other'}", "repo_id=test/cli", "fsp=10"])
    assert code == 2 and "fsp" in capsys.readouterr().err


def test_sweep_backend_flag_still_reaches_the_sweep_config(capsys):
    from ove_ros.training.sweep import main

    tiny = REPO_ROOT / "training" / "configs" / "tiny.yaml"
    with pytest.raises(SystemExit) as exc:
        main([f"config={tiny}", "--backend", "bogus"])
    err = capsys.readouterr().err
    assert "write instead: sweep.backend=bogus" in err
    assert "sweep.backend must be one of" in str(exc.value.code)
