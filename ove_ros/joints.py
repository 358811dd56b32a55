# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Joint-name ordering shared by the live node and the bag converter (pure)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def joint_order(wanted: Sequence[str], available: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Indices into ``available`` that give the ``wanted`` order, and the wanted names that are absent.

    The index array is only meaningful when the absent list is empty; callers raise their own error naming
    the source (a topic, a bag) and the setting to fix.
    """
    position = {name: i for i, name in enumerate(available)}
    absent = [name for name in wanted if name not in position]
    indices = np.fromiter((position.get(name, -1) for name in wanted), np.intp, len(wanted))
    return indices, absent
