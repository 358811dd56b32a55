# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The one rule every command follows before it replaces an output folder.

A command may replace only what it would itself have written there (a LeRobot dataset, a bundle, an evaluation
folder) or an empty folder; never a plain file, a folder holding anything else, one of its own inputs, or a
folder that contains one of its inputs. Anything else is refused before any work starts, so a mistyped
output path costs a message, not the user's files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path


class OutputRefused(ValueError):
    """The output path may not be written or replaced; the message says why and what to do."""


def is_lerobot_dataset(path: Path) -> bool:
    """A LeRobot dataset root is recognised by its ``meta/info.json``."""
    return (path / "meta" / "info.json").is_file()


def is_bundle(path: Path) -> bool:
    """A deploy bundle holds ``config.json`` with a ``format_version`` beside its weights."""
    config = path / "config.json"
    if not config.is_file():
        return False
    try:
        return '"format_version"' in config.read_text(errors="replace")[:4096]
    except OSError:
        return False


def is_evaluation_dir(path: Path) -> bool:
    """An evaluation folder is recognised by its ``metrics.json``."""
    return (path / "metrics.json").is_file()


def _is_within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_output(
    output: str | Path,
    *,
    kind: str,
    recognise: Callable[[Path], bool],
    inputs: Iterable[str | Path] = (),
    overwrite: bool = True,
    flag: str = "--overwrite",
) -> Path:
    """Refuse ``output`` unless writing it cannot destroy anything but an older ``kind``; returns it absolute.

    An empty folder is always taken. ``overwrite=False`` refuses any other existing path (the caller's flag
    was not given); ``True`` allows replacing an existing folder that ``recognise`` accepts.
    """
    out = Path(output).expanduser().absolute()
    resolved = out.resolve()
    for item in inputs:
        source = Path(item).expanduser().resolve()
        if _is_within(source, resolved):
            what = "is" if source == resolved else "contains"
            raise OutputRefused(
                f"output {out} {what} the input {source}; writing there would destroy it: choose an output "
                "path outside the inputs"
            )
    if not out.exists() and not out.is_symlink():
        return out
    if out.is_dir() and not any(out.iterdir()):
        return out  # an empty folder holds nothing to lose
    if not overwrite:
        raise OutputRefused(f"output {out} exists; pass {flag} to replace it, or choose another path")
    if not out.is_dir():
        raise OutputRefused(
            f"output {out} exists and is not a folder; {flag} only replaces a {kind}: remove it yourself or "
            "choose another path"
        )
    if recognise(out):
        return out
    raise OutputRefused(
        f"output {out} holds files that are not a {kind}; {flag} only replaces a {kind}: choose another "
        "path or empty it yourself"
    )
