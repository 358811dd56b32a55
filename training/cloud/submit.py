# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What the three launchers share: find credentials, list what is missing, write the requests, submit.

Without credentials (or with ``--dry-run``) nothing is submitted: the exact ``CreateCustomJobRequest``
of every job is written as JSON under ``cloud.request_dir`` and the missing pieces are listed. Exit
status: 0 for a submission or an explicit dry run, 2 when a submission was wanted but something is missing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ove_ros.training.checkpoint import atomic_write_text
from ove_ros.training.cloud.config import CloudCli, CloudConfig, is_gcs, load_cloud_cli
from ove_ros.training.cloud.jobs import CloudSdkMissing, JobPlan, aiplatform_types, request_json
from ove_ros.training.config import HELP_ARGS, ConfigError, print_help

SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
NO_CREDENTIALS = (
    "Google Cloud credentials: none found (run `gcloud auth application-default login`, or set "
    "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file)"
)


@dataclass
class Credentials:
    """Application-default credentials and their project, or why there are none."""

    credentials: Any
    project: str | None
    problem: str | None


def find_credentials() -> Credentials:
    """google.auth's application-default credentials (no network call unless on a GCE host)."""
    try:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
    except ImportError:
        return Credentials(None, None, "google-auth: not installed (pip install 'ove_ros[cloud]')")
    try:
        creds, project = google.auth.default(scopes=SCOPES)
    except DefaultCredentialsError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return Credentials(None, None, NO_CREDENTIALS + (f": {first}" if "was not found" in first else ""))
    return Credentials(creds, project, None)


def common_missing(cli: CloudCli, creds: Credentials, project: str | None) -> list[str]:
    """What every job needs before it can be submitted."""
    c = cli.cloud
    missing = []
    if creds.problem:
        missing.append(creds.problem)
    if not project:
        missing.append("cloud.project: not set and the credentials name no project")
    if not c.image_uri:
        missing.append("cloud.image_uri: the training image (docker build -t <uri> . && docker push <uri>)")
    if not c.staging_bucket:
        missing.append("cloud.staging_bucket: a gs:// URI for Vertex AI's job files")
    if not c.output_uri:
        missing.append("cloud.output_uri: a gs:// URI for the run outputs (checkpoints, metrics)")
    if not is_gcs(cli.config.data.root):
        missing.append(
            f"data.root={cli.config.data.root!r} is not a gs:// URI: the job cannot read local paths; "
            "copy the LeRobot dataset to a bucket (gcloud storage cp -r <dir> gs://...) and pass data.root=gs://..."
        )
    return missing


def write_requests(plans: Sequence[JobPlan], cloud: CloudConfig) -> list[Path]:
    out = []
    for plan in plans:
        path = Path(cloud.request_dir) / f"{plan.name}.json"
        atomic_write_text(path, request_json(plan.request) + "\n")
        out.append(path)
    return out


def submit(plans: Sequence[JobPlan], cloud: CloudConfig, creds: Credentials) -> list[str]:
    """Create the jobs; returns their resource names."""
    v1 = aiplatform_types()
    client = v1.JobServiceClient(
        credentials=creds.credentials,
        client_options={"api_endpoint": f"{cloud.region}-aiplatform.googleapis.com"},
    )
    return [client.create_custom_job(request=plan.request).name for plan in plans]


Builder = Callable[[CloudCli, str | None], tuple[list[JobPlan], list[str]]]


def run_launcher(
    tool: str, doc: str | None, argv: Sequence[str] | None, build: Builder, require_run_name: bool = True
) -> int:
    """Parse, build the requests (``build`` returns them and its own missing items), write, submit."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in HELP_ARGS for a in argv):  # the cloud.* keys are part of the training config's keys
        print_help(tool, (doc or "") + "\n  --dry-run  write the job requests as JSON, submit nothing")
        return 0
    try:
        cli = load_cloud_cli(argv, require_run_name=require_run_name)
        creds = find_credentials()
        project = cli.cloud.project or creds.project
        plans, own_missing = build(cli, project)
    except (ConfigError, CloudSdkMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    missing = common_missing(cli, creds, project) + own_missing
    paths = write_requests(plans, cli.cloud)
    summary: dict[str, Any] = {"requests": [str(p) for p in paths], "missing": missing, "submitted": []}
    if cli.dry_run or missing:
        why = "dry run" if cli.dry_run else "not submitted"
        lines = [f"{why}: wrote {len(paths)} job request(s): " + ", ".join(map(str, paths))]
        if missing:
            lines.append("to submit, provide:")
            lines += [f"  - {m}" for m in missing]
        print("\n".join(lines), file=sys.stderr)
        print(json.dumps(summary))
        return 0 if cli.dry_run else 2
    summary["submitted"] = submit(plans, cli.cloud, creds)
    print("submitted: " + ", ".join(summary["submitted"]), file=sys.stderr)
    print(json.dumps(summary))
    return 0
