# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Submit ``cloud.sweep_agents`` Vertex AI CustomJobs, each a W&B sweep agent joining one sweep::

    python -m ove_ros.training.sweep --backend wandb ...   # or `wandb sweep`: create the sweep, note its id
    python -m ove_ros.training.cloud.sweep config=training/configs/full.yaml sweep.wandb_sweep_id=<id> \
        sweep.n_trials=5 cloud.sweep_agents=4 cloud.wandb_api_key_secret=wandb-key \
        data.root=gs://my-bucket/datasets/pick cloud.project=my-proj cloud.image_uri=<uri> \
        cloud.staging_bucket=gs://my-bucket/staging cloud.output_uri=gs://my-bucket/runs [--dry-run]

Each agent runs ``sweep.n_trials`` trials (one node each); trial outputs are copied to
``<cloud.output_uri>/<project>/<trial run name>/``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ove_ros.training.cloud.config import CloudCli
from ove_ros.training.cloud.jobs import JobPlan, create_request, custom_job, display_name, label_value
from ove_ros.training.cloud.submit import run_launcher

UNSET_SWEEP = "SWEEP_ID"


def build(cli: CloudCli, project: str | None) -> tuple[list[JobPlan], list[str]]:
    cfg = cli.config
    missing = []
    if not cfg.sweep.wandb_sweep_id:
        missing.append(
            "sweep.wandb_sweep_id: create the sweep first (python -m ove_ros.training.sweep --backend wandb, "
            "or "
            f"`wandb sweep {cfg.sweep.spec}`); the requests name it {UNSET_SWEEP}"
        )
    if not cli.cloud.wandb_api_key_secret:
        missing.append("cloud.wandb_api_key_secret: sweep agents need WANDB_API_KEY from Secret Manager")
    sweep_id = cfg.sweep.wandb_sweep_id or UNSET_SWEEP
    plans = []
    for i in range(cli.cloud.sweep_agents):
        name = f"{label_value(sweep_id.split('/')[-1])}-agent{i}"
        job = custom_job("sweep", cli.cloud, cfg, name, project, [f"sweep.wandb_sweep_id={sweep_id}"])
        plans.append(JobPlan(display_name("sweep", name), create_request(job, cli.cloud, project)))
    return plans, missing


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run_launcher("ove_ros.training.cloud.sweep", __doc__, argv, build, require_run_name=False))


if __name__ == "__main__":
    main()
