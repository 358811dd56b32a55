# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Fails when a tracked Python file lacks the project's copyright and SPDX lines."""

import subprocess
import sys
from pathlib import Path

REQUIRED = ("# Copyright 2026 The ove_ros Authors", "# SPDX-License-Identifier: Apache-2.0")


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
                            cwd=root, capture_output=True, text=True, check=True).stdout.split()
    missing = []
    for path in listed:
        file = root / path
        if file.is_file():
            head = file.read_text(encoding="utf-8").splitlines()[:4]
            if not all(line in head for line in REQUIRED):
                missing.append(path)
    for path in missing:
        print(f"{path}: missing the copyright/SPDX header (first lines must be: {' / '.join(REQUIRED)})")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
