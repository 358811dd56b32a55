# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""``python -m ove_ros.main_job``: see :mod:`ove_ros.main_job.cli`."""

import sys

from ove_ros.main_job.cli import main

if __name__ == "__main__":
    sys.exit(main())
