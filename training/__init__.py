# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Training side of ove_ros: rosbag2 -> LeRobot conversion, value training, bundles, offline advantages.

Installed and imported as ``ove_ros.training`` (``python -m ove_ros.training.train ...``). From a source
checkout the older spelling ``python -m training.train ...`` still runs, with a deprecation line, for one
release.
"""

if __name__ == "training":  # the old top-level spelling, found in a source checkout's working directory
    import sys as _sys

    print(
        "note: `python -m training.<tool>` is deprecated and will be removed in the next release; "
        "use `python -m ove_ros.training.<tool>`",
        file=_sys.stderr,
    )
