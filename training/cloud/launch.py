# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Submit a training run as a Vertex AI CustomJob (``cloud.replica_count`` nodes x
``cloud.accelerator_count`` GPUs; several nodes run accelerate's multi-node launch)::

    python -m ove_ros.training.cloud.launch config=training/configs/full.yaml run_name=r1 \
        data.root=gs://my-bucket/datasets/pick cloud.project=my-proj cloud.image_uri=<uri> \
        cloud.staging_bucket=gs://my-bucket/staging cloud.output_uri=gs://my-bucket/runs \
        cloud.hf_token_secret=hf-token cloud.wandb_api_key_secret=wandb-key [--dry-run]

Outputs land in ``<cloud.output_uri>/<project>/<run_name>/``; a pre-empted or restarted job resumes from
the newest checkpoint there.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ove_ros.training.cloud.config import CloudCli
from ove_ros.training.cloud.jobs import JobPlan, create_request, custom_job, display_name
from ove_ros.training.cloud.submit import run_launcher


def build(cli: CloudCli, project: str | None) -> tuple[list[JobPlan], list[str]]:
    cfg = cli.config
    run_name = str(cfg.run_name)
    job = custom_job("train", cli.cloud, cfg, run_name, project, replicas=cli.cloud.replica_count)
    return [JobPlan(display_name("train", run_name), create_request(job, cli.cloud, project))], []


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run_launcher("ove_ros.training.cloud.launch", __doc__, argv, build))


if __name__ == "__main__":
    main()
