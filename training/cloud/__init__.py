# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training, evaluation and sweep agents as Vertex AI CustomJobs (``pip install ove_ros[cloud]``).

Launchers (run where the gcloud credentials are)::

    python -m ove_ros.training.cloud.launch config=... run_name=...     # training (1..M nodes)
    python -m ove_ros.training.cloud.eval config=... run_name=... evaluate.checkpoint=gs://...
    python -m ove_ros.training.cloud.sweep config=... sweep.wandb_sweep_id=<id> cloud.sweep_agents=4

``python -m ove_ros.training.cloud.entrypoint`` is what the jobs run inside the training image.
"""
