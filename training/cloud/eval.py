# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Submit an evaluation (``ove_ros.training.evaluate``) as a one-node Vertex AI CustomJob::

    python -m ove_ros.training.cloud.eval config=training/configs/full.yaml run_name=r1 \
        evaluate.checkpoint=gs://my-bucket/runs/ove_ros/r1 data.root=gs://my-bucket/datasets/pick \
        cloud.project=my-proj cloud.image_uri=<uri> cloud.staging_bucket=gs://my-bucket/staging \
        cloud.output_uri=gs://my-bucket/runs [--dry-run]

``evaluate.checkpoint`` is a gs:// checkpoint or run directory; the report is copied to
``<cloud.output_uri>/<project>/<run_name>/eval/<checkpoint name>/``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ove_ros.training.cloud.config import CloudCli, is_gcs
from ove_ros.training.cloud.jobs import JobPlan, create_request, custom_job, display_name
from ove_ros.training.cloud.submit import run_launcher


def build(cli: CloudCli, project: str | None) -> tuple[list[JobPlan], list[str]]:
    cfg = cli.config
    missing = []
    if not is_gcs(cfg.evaluate.checkpoint):
        missing.append(
            f"evaluate.checkpoint={cfg.evaluate.checkpoint!r}: a gs:// checkpoint or run directory "
            "(e.g. <cloud.output_uri>/<project>/<run_name>)"
        )
    run_name = str(cfg.run_name)
    job = custom_job("eval", cli.cloud, cfg, run_name, project, replicas=1)
    return [JobPlan(display_name("eval", run_name), create_request(job, cli.cloud, project))], missing


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run_launcher("ove_ros.training.cloud.eval", __doc__, argv, build))


if __name__ == "__main__":
    main()
