# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Hyper-parameter sweeps: the W&B-format spec, its Optuna mapping and a local Optuna study."""

from __future__ import annotations

import optuna
import pytest
import yaml

from ove_ros.training.config import ConfigError
from ove_ros.training.sweep import load_spec, main, suggest, trial_config, wandb_sweep_config

from dataset_fixtures import TINY_YAML, learnable_dataset, synthetic_dataset, tiny_config  # noqa: F401

SHIPPED = TINY_YAML.parent / "sweep.yaml"


def test_shipped_spec_maps_onto_optuna_distributions():
    spec = load_spec(SHIPPED)
    assert spec.metric == "val/loss" and spec.direction == "minimize"
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    params = {k: suggest(trial, k, v) for k, v in spec.parameters.items()}
    lr = trial.distributions["training.learning_rate"]
    assert isinstance(lr, optuna.distributions.FloatDistribution) and lr.log
    assert 1e-5 <= params["training.learning_rate"] <= 1e-3
    assert isinstance(trial.distributions["training.warmup_steps"], optuna.distributions.IntDistribution)
    assert params["training.target_encoding"] in ("one_hot", "two_hot", "hl_gauss")
    w = wandb_sweep_config(spec, tiny_config("/tmp", "/tmp"))
    assert w["metric"] == {"name": "val/loss", "goal": "minimize"} and w["method"] == "bayes"
    assert set(w["parameters"]) == set(spec.parameters)


def test_trial_config_applies_parameters_and_rejects_unknown_keys(tmp_path, learnable_dataset):  # noqa: F811
    base = tiny_config(tmp_path, learnable_dataset)
    cfg = trial_config(base, {"training.learning_rate": 0.01, "model.overrides.head_hidden": 32}, "s-t000")
    assert cfg.training.learning_rate == 0.01 and cfg.model.overrides == {"head_hidden": 32}
    assert cfg.run_name == "s-t000"
    with pytest.raises(ConfigError, match=r"sweep parameters \['training.lr'\].*'lr' not in 'OptimConfig'"):
        trial_config(base, {"training.lr": 0.1}, "x")
    with pytest.raises(ConfigError, match="target_encoding"):
        trial_config(base, {"training.target_encoding": "nope"}, "x")


def test_local_optuna_study_runs_trials_and_resumes(tmp_path, learnable_dataset):  # noqa: F811
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "method": "random",
                "metric": {"name": "val/mae", "goal": "minimize"},
                "parameters": {
                    "training.learning_rate": {
                        "distribution": "log_uniform_values",
                        "min": 1e-4,
                        "max": 1e-2,
                    },
                    "training.target_encoding": {"values": ["one_hot", "two_hot"]},
                    "data.batch_size": {"value": 4},
                },
            }
        )
    )
    args = [
        "--backend",
        "optuna",
        f"config={TINY_YAML}",
        f"output_root={tmp_path}",
        f"data.root={learnable_dataset}",
        f"data.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=0",
        "data.val_episodes=[0,1]",
        "wandb.mode=disabled",
        "training.num_threads=1",
        "training.steps=2",
        "training.warmup_steps=0",
        "training.val_every=0",
        "training.save_every=2",
        f"sweep.spec={spec}",
        "sweep.name=s1",
    ]
    main([*args, "sweep.n_trials=2"])
    db = tmp_path / "ove_ros" / "sweeps" / "s1" / "optuna.db"
    assert db.is_file()
    main([*args, "sweep.n_trials=1"])  # the same study goes on
    study = optuna.load_study(study_name="s1", storage=f"sqlite:///{db}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 3
    for t in done:
        assert 0.0 <= t.value <= 1.0  # a validation MAE of values in [-1, 0]
        assert list((tmp_path / "ove_ros" / t.user_attrs["run_name"]).glob("checkpoint_*.safetensors"))
    assert len({t.params["training.learning_rate"] for t in done}) == 3
