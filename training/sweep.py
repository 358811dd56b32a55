# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Hyper-parameter sweeps over training runs: W&B sweeps, or Optuna locally without any server.

One sweep file in W&B's format (``method``, ``metric``, ``parameters`` keyed by config dotted keys) drives
both backends::

    # W&B (the default; needs WANDB_API_KEY and network): create a sweep and run 20 trials here,
    # create one only (prints its id), or join one; project= names the W&B project
    python -m ove_ros.training.sweep config=training/configs/tiny.yaml \
        sweep_config=training/configs/sweep.yaml count=20
    python -m ove_ros.training.sweep config=training/configs/tiny.yaml \
        sweep_config=training/configs/sweep.yaml create_only=true
    python -m ove_ros.training.sweep config=training/configs/tiny.yaml sweep_id=<SWEEP_ID> count=10

    # Optuna (local): trials share a sqlite study under <output_root>/<project>/sweeps/<sweep.name>/optuna.db,
    # so several of these commands can run in parallel (also on several machines with a shared disk)
    python -m ove_ros.training.sweep sweep.backend=optuna config=training/configs/tiny.yaml sweep.n_trials=20

Every trial is a normal training run named ``<sweep.name>-t<NNN>`` with its own output directory.
``sweep_config``, ``count``, ``sweep_id`` and ``create_only`` are aliases of ``sweep.spec``,
``sweep.n_trials``, ``sweep.wandb_sweep_id`` and ``sweep.create_only``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ove_ros import typed_cli
from ove_ros.training.config import Config, ConfigError, load_config, run_cli

if TYPE_CHECKING:
    from ove_ros.training.train import TrainResult

logger = logging.getLogger("ove_ros.training.sweep")

FLOAT_DISTRIBUTIONS = ("uniform", "log_uniform_values", "q_uniform", "q_log_uniform_values", "normal")
INT_DISTRIBUTIONS = ("int_uniform", "q_uniform_int")


@dataclass
class SweepSpec:
    """A parsed sweep file."""

    method: str
    metric: str
    goal: str
    parameters: dict[str, dict[str, Any]]
    raw: dict[str, Any]

    @property
    def direction(self) -> str:
        return "maximize" if self.goal == "maximize" else "minimize"


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    metric = raw.get("metric", {})
    params = raw.get("parameters", {})
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{path}: 'parameters' must map config keys to search spaces")
    for key, space in params.items():
        if not isinstance(space, dict) or not ({"values", "value", "min", "distribution"} & set(space)):
            raise ConfigError(f"{path}: parameter {key!r} needs 'values', 'value' or 'min'/'max'")
    return SweepSpec(
        method=str(raw.get("method", "random")),
        metric=str(metric.get("name", "val/loss")),
        goal=str(metric.get("goal", "minimize")),
        parameters=params,
        raw=raw,
    )


def suggest(trial: Any, key: str, space: dict[str, Any]) -> Any:
    """One parameter value from an Optuna trial for a W&B-style search space."""
    if "value" in space:
        return space["value"]
    if "values" in space:
        return trial.suggest_categorical(key, list(space["values"]))
    dist = space.get("distribution")
    lo, hi = space["min"], space["max"]
    if dist is None:
        dist = "int_uniform" if isinstance(lo, int) and isinstance(hi, int) else "uniform"
    if dist in INT_DISTRIBUTIONS:
        return trial.suggest_int(key, int(lo), int(hi), step=int(space.get("q", 1)))
    if dist in ("log_uniform_values", "q_log_uniform_values"):
        return trial.suggest_float(key, float(lo), float(hi), log=True)
    if dist in ("uniform", "q_uniform"):
        return trial.suggest_float(key, float(lo), float(hi))
    raise ConfigError(f"parameter {key!r}: distribution {dist!r} is not supported by the Optuna backend")


def metric_value(result: TrainResult, metric: str) -> float:
    """``val/<name>`` (or ``<name>``) from the run's final validation metrics."""
    name = metric.split("/", 1)[1] if metric.startswith("val/") else metric
    value = result.val_metrics.get(name)
    if value is None:
        raise ValueError(f"the run reported no validation metric {name!r} (has {sorted(result.val_metrics)})")
    return float(value)


def trial_config(base: Config, params: dict[str, Any], run_name: str) -> Config:
    """The base config with the trial's parameters applied, read like a command line (any accepted
    spelling of a key; an unknown key or a value out of its range is a ``ConfigError`` naming it)."""
    overrides = [f"{key}={json.dumps(value)}" for key, value in params.items()] + [f"run_name={run_name}"]
    try:
        return load_config(data=base.to_dict(), overrides=overrides, what="sweep trial")
    except ConfigError as exc:
        raise ConfigError(f"sweep parameters {sorted(params)}: {exc}") from None


def sweep_dir(cfg: Config) -> Path:
    return Path(cfg.output_root) / cfg.project / "sweeps" / cfg.sweep.name


# ---------------------------------------------------------------------------------------------- optuna


def make_sampler(spec: SweepSpec, seed: int) -> Any:
    import optuna

    if spec.method == "grid":
        grid = {k: list(v["values"]) for k, v in spec.parameters.items() if "values" in v}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if spec.method == "bayes":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def run_optuna(cfg: Config, spec: SweepSpec) -> Any:
    """Run ``cfg.sweep.n_trials`` trials in a (resumable) sqlite-backed study; returns the study."""
    import optuna

    from ove_ros.training.train import train

    storage = cfg.sweep.storage
    if storage is None:
        root = sweep_dir(cfg)
        root.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(root / 'optuna.db').resolve()}"
    study = optuna.create_study(
        study_name=cfg.sweep.name, storage=storage, direction=spec.direction, load_if_exists=True
    )
    # A resumed study must not replay its first trials: offset the seed by the trials already there
    # (parallel workers: give each its own sweep.sampler_seed).
    study.sampler = make_sampler(spec, cfg.sweep.sampler_seed + len(study.trials))

    def objective(trial: optuna.Trial) -> float:
        params = {k: suggest(trial, k, v) for k, v in spec.parameters.items()}
        run_name = f"{cfg.sweep.name}-t{trial.number:03d}"
        trial.set_user_attr("run_name", run_name)
        result = train(trial_config(cfg, params, run_name))
        value = metric_value(result, spec.metric)
        trial.set_user_attr("run_dir", str(result.run_dir))
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"metric {spec.metric} is {value}")
        return value

    study.optimize(objective, n_trials=cfg.sweep.n_trials)
    best = study.best_trial
    summary = {
        "best_value": best.value,
        "best_params": best.params,
        "best_run": best.user_attrs.get("run_dir"),
    }
    logger.info("best trial %d: %s", best.number, json.dumps(summary, default=str))
    return study


# ------------------------------------------------------------------------------------------------- wandb


def wandb_sweep_config(spec: SweepSpec, cfg: Config) -> dict[str, Any]:
    out = copy.deepcopy(spec.raw)
    out.setdefault("name", cfg.sweep.name)
    out["metric"] = {"name": spec.metric, "goal": spec.goal}
    return out


def wandb_api_key() -> str | None:
    """The W&B key from WANDB_API_KEY or a `wandb login` (its netrc entry), without any network access."""
    key = os.environ.get("WANDB_API_KEY")
    if key:
        return key
    import netrc
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    return entry[2] if entry else None


def require_wandb(cfg: Config) -> None:
    """W&B sweeps live on the W&B server: say so in one line where no account is configured."""
    if os.environ.get("WANDB_MODE") in ("disabled", "offline") or cfg.wandb.mode in ("disabled", "offline"):
        raise ConfigError(
            "W&B sweeps need W&B online, but W&B is disabled/offline here (WANDB_MODE or wandb.mode); "
            "run a local sweep with --backend optuna instead"
        )
    if not wandb_api_key():
        raise ConfigError(
            "W&B sweeps need a W&B account: set WANDB_API_KEY (https://wandb.ai/authorize) or run "
            "`wandb login`; for a local sweep without W&B use --backend optuna"
        )
    try:
        import wandb  # noqa: F401
    except ImportError as exc:
        raise ConfigError("W&B sweeps need the wandb package: pip install wandb") from exc


def run_wandb(cfg: Config, spec: SweepSpec | None) -> str:
    """Create (or join) a W&B sweep and run ``n_trials`` trials in this process (none with
    ``sweep.create_only``); returns the sweep id."""
    import wandb

    from ove_ros.training.train import train

    project = cfg.wandb.project or cfg.project
    if cfg.sweep.wandb_sweep_id:
        sweep_id = cfg.sweep.wandb_sweep_id
    else:
        assert spec is not None
        sweep_id = wandb.sweep(wandb_sweep_config(spec, cfg), project=project, entity=cfg.wandb.entity)
    if cfg.sweep.create_only:
        return sweep_id

    def trial() -> None:
        run = wandb.init(dir=str(sweep_dir(cfg)))
        params = {k: v for k, v in dict(run.config).items() if "." in k}  # the sweep's config keys
        metric = spec.metric if spec is not None else str(run.config.get("metric", "val/loss"))
        run_name = f"{cfg.sweep.name}-{run.id}"
        result = train(trial_config(cfg, params, run_name), wandb_run=run)
        run.summary[metric] = metric_value(result, metric)
        run.finish()

    sweep_dir(cfg).mkdir(parents=True, exist_ok=True)
    wandb.agent(sweep_id, function=trial, count=cfg.sweep.n_trials, project=project, entity=cfg.wandb.entity)
    return sweep_id


def main(argv: Sequence[str] | None = None) -> None:
    try:  # the older --backend flag, as the sweep.backend key
        rest = typed_cli.legacy_flags(sys.argv[1:] if argv is None else argv, {"--backend": "sweep.backend"})
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None

    def run(cfg: Config) -> None:
        if cfg.sweep.backend == "optuna":
            study = run_optuna(cfg, load_spec(cfg.sweep.spec))
            print(json.dumps({"best_value": study.best_value, "best_params": study.best_params}, default=str))
            return
        spec = None if cfg.sweep.wandb_sweep_id else load_spec(cfg.sweep.spec)
        require_wandb(cfg)
        print(json.dumps({"sweep_id": run_wandb(cfg, spec)}))

    run_cli("ove_ros.training.sweep [sweep.backend=optuna|wandb]", __doc__, rest, run, require_run_name=False)


if __name__ == "__main__":
    main()
