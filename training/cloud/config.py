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
from dataclasses import dataclass

from ove_ros.training.config import CloudConfig, Config, ConfigError, load_config, split_cli_args

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
    """Checks beyond the fields' declared ranges that need no credentials (what is merely unset is reported
    by the launchers instead)."""
    for key in ("staging_bucket", "output_uri"):
        value = getattr(c, key)
        if value is not None and not is_gcs(value):
            raise ConfigError(f"cloud.{key}={value!r} must be a gs:// URI (e.g. gs://my-bucket/ove)")
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
    dry_run: bool = False


DRY_RUN_ARGS = ("--dry-run", "--dry_run")


def load_cloud_cli(
    argv: Sequence[str], require_run_name: bool = True, config_yaml: str | None = None
) -> CloudCli:
    """``config=<file> [cloud.k=v ...] [--dry-run] [k=v ...]`` -> CloudCli, through the training tools'
    loader (``cloud`` is a group of the training config).

    ``config_yaml``: the training config as YAML text instead of a ``config=`` file (the remote entry point
    receives the launcher's resolved config this way).
    """
    path, overrides = split_cli_args([a for a in argv if a not in DRY_RUN_ARGS], config_yaml is None)
    cfg = load_config(path, overrides, require_run_name, data=None if path else config_yaml)
    validate_cloud(cfg.cloud)
    return CloudCli(cfg.cloud, cfg, any(a in DRY_RUN_ARGS for a in argv))
