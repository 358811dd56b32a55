#!/usr/bin/env bash
# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
#
# The test command: set-up (idempotent), lint, then the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
# shellcheck disable=SC1091
source "$ROOT/setup.env"
echo "[test] ruff"
ruff check .
echo "[test] copyright headers"
python scripts/check_headers.py
echo "[test] pytest"
exec python -m pytest test -q --timeout=900 "$@"
