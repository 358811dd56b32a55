# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# Training image for the cloud jobs (ove_ros.training.cloud): the package installed as for a GPU training machine
# (`pip install .[train]`, plus the `cloud` extra), with the versions pinned in requirements/lock.txt.
# torch's PyPI wheels carry the CUDA runtime; the GPU driver comes from the host (Vertex AI GPU nodes).
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/ove-train:TAG .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/ove-train:TAG
#   python -m ove_ros.training.cloud.launch ... cloud.image_uri=REGION-docker.pkg.dev/PROJECT/REPO/ove-train:TAG
FROM python:3.11-slim-bookworm

# ffmpeg: the shared libraries torchcodec decodes LeRobot videos with.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_DISABLE_TELEMETRY=1
RUN python -m pip install "uv==0.13.8"

WORKDIR /opt/ove_ros
COPY . .
RUN uv pip install --system --constraint requirements/lock.txt ".[train,cloud]" \
    && cd / && python -c "import ove_ros.training.cloud.entrypoint, ove_ros.training.train, ove_ros.model"

# Vertex AI jobs pass their own command (python -m ove_ros.training.cloud.entrypoint train|eval|sweep ...).
CMD ["python", "-m", "ove_ros.training.cloud.entrypoint"]
