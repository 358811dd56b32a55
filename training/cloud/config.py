# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The ``cloud`` config group: where and on what a job runs, read from a YAML ``cloud:`` section and
``cloud.*`` command-line keys; every other key is the training config (:mod:`ove_ros.training.config`).

Command lines of the cloud tools::

    python -m ove_ros.training.cloud.launch config=<file.yaml> run_name=r1 cloud.project=my-proj \
        cloud.image_uri=us-docker.pkg.dev/my-proj/ove/train:1 data.root=gs://my-bucket/datasets/pick
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ove_ros.training.config import (
    CLOUD_PREFIX,
    CloudConfig,
    Config,
    ConfigError,
    _canonical_overrides,
    _canonical_tree,
    split_cli_args,
    validate,
)

SECRET_RESOURCE = re.compile(r"^projects/[^/]+/secrets/[A-Za-z0-9_-]+/versions/[A-Za-z0-9_-]+$")
SECRET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
# Values that look like the credential itself rather than a reference to it.
_PLAIN_CREDENTIAL = re.compile(r"^(hf_[A-Za-z0-9]{20,}|[0-9a-f]{40,})$")
SECRET_ENV_VARS = ("HF_TOKEN", "WANDB_API_KEY")


def is_gcs(uri: str | None) -> bool:
    return bool(uri) and str(uri).startswith("gs://") and len(str(uri)) > len("gs://")


def secret_resource(ref: str, project: str | None) -> str:
    """The full Secret Manager resource name of a reference (``name``, ``name:version`` or full)."""
    ref = ref.strip()
    if _PLAIN_CREDENTIAL.match(ref):
        raise ConfigError(
            "a cloud.*_secret value looks like the credential itself: store it in Secret Manager "
            "(gcloud secrets create <name> --data-file=-) and pass the secret's name instead"
        )
    if SECRET_RESOURCE.match(ref):
        return ref
    name, _, version = ref.partition(":")
    if not SECRET_NAME.match(name) or (version and not SECRET_NAME.match(version)):
        raise ConfigError(
            f"secret reference {ref!r}: use 'name', 'name:version' or "
            "'projects/<p>/secrets/<name>/versions/<v>'"
        )
    return f"projects/{project or 'PROJECT'}/secrets/{name}/versions/{version or 'latest'}"


def validate_cloud(c: CloudConfig) -> CloudConfig:
    """Checks that need no credentials (what is merely unset is reported by the launchers instead)."""
    for key in ("staging_bucket", "output_uri"):
        value = getattr(c, key)
        if value is not None and not is_gcs(value):
            raise ConfigError(f"cloud.{key}={value!r} must be a gs:// URI (e.g. gs://my-bucket/ove)")
    if c.replica_count < 1 or c.accelerator_count < 0:
        raise ConfigError("cloud.replica_count must be >= 1 and cloud.accelerator_count >= 0")
    if c.sweep_agents < 1:
        raise ConfigError(f"cloud.sweep_agents={c.sweep_agents} must be >= 1")
    if c.timeout_hours <= 0 or c.sync_every_s <= 0:
        raise ConfigError("cloud.timeout_hours and cloud.sync_every_s must be > 0")
    for name in c.env:
        if name in SECRET_ENV_VARS:
            raise ConfigError(
                f"cloud.env.{name}: credentials do not go into the job as plain values; store it in Secret "
                f"Manager and set cloud.{name.lower()}_secret=<secret name>"
            )
    for ref in (c.hf_token_secret, c.wandb_api_key_secret):
        if ref:
            secret_resource(ref, c.project)
    return c


@dataclass
class CloudCli:
    """A parsed cloud command line: the cloud settings, the training config and the flags."""

    cloud: CloudConfig
    config: Config
    config_path: str | None
    overrides: list[str] = field(default_factory=list)
    dry_run: bool = False


def _split(argv: Sequence[str]) -> tuple[list[str], list[str], bool]:
    cloud, rest, dry = [], [], False
    for arg in argv:
        if arg in ("--dry-run", "--dry_run"):
            dry = True
        elif arg.lstrip("-").startswith(CLOUD_PREFIX):
            cloud.append(arg.lstrip("-")[len(CLOUD_PREFIX) :])
        else:
            rest.append(arg)
    return cloud, rest, dry


def load_cloud_cli(
    argv: Sequence[str], require_run_name: bool = True, config_yaml: str | None = None
) -> CloudCli:
    """``config=<file> [cloud.k=v ...] [--dry-run] [k=v ...]`` -> CloudCli.

    ``config_yaml``: the training config as YAML text instead of a ``config=`` file (the remote entry point
    receives the launcher's resolved config this way).
    """
    cloud_args, rest, dry = _split(argv)
    if config_yaml is not None and not any(a.startswith(("config=", "--config=")) for a in rest):
        path, overrides = None, [a[2:] if a.startswith("--") else a for a in rest]
        for a in overrides:
            if "=" not in a:
                raise ConfigError(f"argument {a!r} is not of the form key=value (e.g. data.batch_size=32)")
        raw = OmegaConf.create(config_yaml)
    else:
        path, overrides = split_cli_args(rest)
        if not Path(path).is_file():
            raise ConfigError(f"config file {path!r} does not exist")
        raw = OmegaConf.load(path)
    try:
        section = raw.pop("cloud", None) if isinstance(raw, DictConfig) else None
        cloud = OmegaConf.structured(CloudConfig)
        if section:
            cloud = OmegaConf.merge(cloud, section)
        if cloud_args:
            cloud = OmegaConf.merge(cloud, OmegaConf.from_dotlist(cloud_args))
        cloud_cfg: CloudConfig = OmegaConf.to_object(cloud)  # type: ignore[assignment]
        # The training keys take the same spellings (aliases) as the training tools' own command lines.
        tree = _canonical_tree(OmegaConf.to_container(raw) or {}, str(path or "the job's config"))
        overrides = _canonical_overrides(overrides)
        merged = OmegaConf.merge(OmegaConf.structured(Config), tree, OmegaConf.from_dotlist(overrides))
        cfg: Config = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    if cfg.training.resume_from:
        cfg.training.resume = True
    cfg.cloud = validate_cloud(cloud_cfg)
    validate(cfg, require_run_name=require_run_name)
    return CloudCli(cfg.cloud, cfg, path, list(overrides), dry)


def describe_cloud() -> list[tuple[str, str]]:
    """(key, help) of every cloud setting, for ``--help``."""
    return [(f"{CLOUD_PREFIX}{f.name}", f.metadata.get("help", "")) for f in fields(CloudConfig)]
