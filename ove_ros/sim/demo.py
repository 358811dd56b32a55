# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Deprecated spelling of the main job, kept for one release: ``python -m ove_ros.main_job``.

The main job drives the training package, so it left ``ove_ros.sim`` (runtime tools only). This shim names
the new spelling on stderr and runs it with the same arguments.
"""

import sys

NOTICE = "python -m ove_ros.sim.demo is deprecated (gone in the next release): use python -m ove_ros.main_job"

if __name__ == "__main__":
    print(NOTICE, file=sys.stderr)
    from ove_ros.main_job.cli import main

    sys.exit(main())
