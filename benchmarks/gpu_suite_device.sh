#!/usr/bin/env bash
# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
# The GPU suite on an offline GPU machine (see benchmarks/README_gpu.md): installs the wheels carried in .whl/
# (the pinned transformers stack), runs benchmarks/bench_gpu_suite.py within a time budget, then the CUDA tests
# of the engine's fast paths with the time left. Everything it writes goes to $OUT (default
# benchmarks/results/): gpu_suite.json (rewritten after every row), gpu_suite.log, nvidia_smi.txt, cuda_tests.log.
set -uo pipefail
out="${OUT:-benchmarks/results}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "installing the carried wheels failed"; exit 1; }
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! python3 -c "import sys, transformers; sys.exit(not transformers.__version__.startswith('4.57'))"; then
  echo "this project needs transformers 4.57 (found $(python3 -c 'import transformers; print(transformers.__version__)')):"
  echo "carry the wheels named in benchmarks/README_gpu.md in .whl/"
  exit 1
fi
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR="${TORCHINDUCTOR_CACHE_DIR:-/tmp/ove_ros_inductor}"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu,utilization.gpu,memory.used \
  --format=csv 2>&1 | tee "$out/nvidia_smi.txt"
timeout "${SUITE_TIMEOUT_S:-400}" python3 benchmarks/bench_gpu_suite.py budget_s="${SUITE_BUDGET_S:-300}" \
  out="$out/gpu_suite.json" "$@" 2>&1 | tee "$out/gpu_suite.log"
echo "suite exit status: ${PIPESTATUS[0]}"
timeout "${TESTS_TIMEOUT_S:-150}" python3 -m pytest -q -x -p no:cacheprovider test/test_engine_fast_paths.py -k cuda \
  2>&1 | tail -25 | tee "$out/cuda_tests.log"
