# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Permissions of files written through temp files.

``tempfile.mkstemp``/``mkdtemp`` (and safetensors' own atomic writer) create private entries (0600/0700), so
an output renamed into place from one of them could not be read by another user, e.g. a robot's service
account running the node. These helpers give such entries the mode a plain ``open``/``mkdir`` would have.
"""

from __future__ import annotations

import os
from pathlib import Path


def umask() -> int:
    """The process umask. Read from /proc where it can be (``os.umask`` only reads by setting, which races
    with other threads creating files); otherwise set and restored."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(path: str | Path, directory: bool = False) -> None:
    """Give ``path`` the mode ``open``/``mkdir`` would have given it: 0666 / 0777 less the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~umask())


def default_modes(root: str | Path) -> None:
    """``default_mode`` for the directory ``root`` and everything below it (links are left alone)."""
    root = Path(root)
    mask = umask()
    os.chmod(root, 0o777 & ~mask)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o777 & ~mask)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~mask)
