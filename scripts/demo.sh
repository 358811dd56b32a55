#!/usr/bin/env bash
# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# The main job: simulated robot -> rosbag2 -> LeRobot dataset -> training -> bundle -> live node -> report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
# shellcheck disable=SC1091
source "$ROOT/setup.env"
exec python -m ove_ros.main_job "$@"
