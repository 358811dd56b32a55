# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Vertex AI CustomJob requests, built from the SDK's own types (``google.cloud.aiplatform_v1``).

Every job runs ``python -m ove_ros.training.cloud.entrypoint <mode> ...`` in the training image; the resolved
training config travels in the ``OVE_TRAIN_CONFIG`` environment variable, secrets as Secret Manager
resource names in ``OVE_SECRET_<VAR>`` (resolved on the node, never stored in the job).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ove_ros.training.cloud.config import CloudConfig, secret_resource
from ove_ros.training.config import Config, ConfigError

ENTRYPOINT = ["python", "-m", "ove_ros.training.cloud.entrypoint"]
CONFIG_ENV = "OVE_TRAIN_CONFIG"
SECRET_ENV_PREFIX = "OVE_SECRET_"
# The cloud settings the entry point itself uses (the rest only shape the request).
REMOTE_KEYS = ("output_uri", "copy_dataset", "gcs_mount", "local_dir", "sync_every_s", "main_process_port")
MODES = ("train", "eval", "sweep")
_LABEL = re.compile(r"[^a-z0-9_-]")


class CloudSdkMissing(RuntimeError):
    """google-cloud-aiplatform is not installed."""


def aiplatform_types() -> Any:
    """``google.cloud.aiplatform_v1`` (the request types and JobServiceClient)."""
    try:
        from google.cloud import aiplatform_v1
    except ImportError as exc:
        raise CloudSdkMissing(
            "google-cloud-aiplatform is not installed: pip install 'ove_ros[cloud]' (or "
            "pip install google-cloud-aiplatform)"
        ) from exc
    return aiplatform_v1


def label_value(text: str) -> str:
    """A Vertex AI label value: lowercase letters, digits, '_' and '-', at most 63 characters."""
    return _LABEL.sub("-", text.lower())[:63]


def display_name(mode: str, run_name: str) -> str:
    return f"ove-{mode}-{run_name}"[:128]


@dataclass
class JobPlan:
    """One job to submit: its request and a name for the JSON file it is written to."""

    name: str
    request: Any  # aiplatform_v1.CreateCustomJobRequest


def remote_args(mode: str, cloud: CloudConfig, extra: Sequence[str]) -> list[str]:
    """Arguments of the entry point: the mode, the remote cloud settings, then training overrides."""
    args = [mode] + [a for a in cloud.to_args() if a.split("=", 1)[0][len("cloud.") :] in REMOTE_KEYS]
    return args + list(extra)


def job_env(cloud: CloudConfig, cfg: Config, project: str | None, v1: Any) -> list[Any]:
    env = [v1.EnvVar(name=CONFIG_ENV, value=cfg.to_yaml())]
    for var, ref in (("HF_TOKEN", cloud.hf_token_secret), ("WANDB_API_KEY", cloud.wandb_api_key_secret)):
        if ref:
            env.append(v1.EnvVar(name=SECRET_ENV_PREFIX + var, value=secret_resource(ref, project)))
    env += [v1.EnvVar(name=k, value=str(v)) for k, v in sorted(cloud.env.items())]
    return env


def machine_spec(cloud: CloudConfig, v1: Any) -> Any:
    spec = v1.MachineSpec(machine_type=cloud.machine_type)
    acc = (cloud.accelerator_type or "").upper()
    if acc and acc != "NONE" and cloud.accelerator_count > 0:
        if acc not in v1.AcceleratorType.__members__:
            known = [k for k in v1.AcceleratorType.__members__ if k != "ACCELERATOR_TYPE_UNSPECIFIED"]
            raise ConfigError(f"cloud.accelerator_type={cloud.accelerator_type!r}; choose one of {known}")
        spec.accelerator_type = v1.AcceleratorType[acc]
        spec.accelerator_count = cloud.accelerator_count
    return spec


def custom_job(
    mode: str,
    cloud: CloudConfig,
    cfg: Config,
    run_name: str,
    project: str | None,
    extra_args: Sequence[str] = (),
    replicas: int = 1,
) -> Any:
    """An ``aiplatform_v1.CustomJob``: pool 0 is the primary node, pool 1 the other ``replicas - 1``."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    v1 = aiplatform_types()
    container = v1.ContainerSpec(
        image_uri=cloud.image_uri or "",
        command=list(ENTRYPOINT),
        args=remote_args(mode, cloud, extra_args),
        env=job_env(cloud, cfg, project, v1),
    )
    disk = v1.DiskSpec(boot_disk_type=cloud.boot_disk_type, boot_disk_size_gb=cloud.boot_disk_size_gb)
    pools = [
        v1.WorkerPoolSpec(
            container_spec=container, machine_spec=machine_spec(cloud, v1), replica_count=1, disk_spec=disk
        )
    ]
    if replicas > 1:
        pools.append(
            v1.WorkerPoolSpec(
                container_spec=container,
                machine_spec=machine_spec(cloud, v1),
                replica_count=replicas - 1,
                disk_spec=disk,
            )
        )
    scheduling = v1.Scheduling(
        timeout=f"{int(cloud.timeout_hours * 3600)}s",
        restart_job_on_worker_restart=cloud.restart_on_worker_restart,
        strategy=v1.Scheduling.Strategy.SPOT if cloud.spot else v1.Scheduling.Strategy.ON_DEMAND,
    )
    spec = v1.CustomJobSpec(worker_pool_specs=pools, scheduling=scheduling)
    if cloud.service_account:
        spec.service_account = cloud.service_account
    if cloud.staging_bucket:
        spec.base_output_directory = v1.GcsDestination(
            output_uri_prefix=f"{cloud.staging_bucket.rstrip('/')}/{display_name(mode, run_name)}"
        )
    labels = {"ove_ros": mode, "run": label_value(run_name), **cloud.labels}
    return v1.CustomJob(display_name=display_name(mode, run_name), job_spec=spec, labels=labels)


def parent(cloud: CloudConfig, project: str | None) -> str:
    return f"projects/{project or 'PROJECT'}/locations/{cloud.region}"


def create_request(job: Any, cloud: CloudConfig, project: str | None) -> Any:
    v1 = aiplatform_types()
    return v1.CreateCustomJobRequest(parent=parent(cloud, project), custom_job=job)


def request_json(request: Any) -> str:
    """The request exactly as the SDK serializes it (proto JSON field names)."""
    return type(request).to_json(request, indent=2, use_integers_for_enums=False)
