# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""What pass 1 of the bag reader (``ove_ros.training.bag_reader``) learns about a recording; its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ove_ros.training.bag_config import BagConversionError
from ove_ros.training.mcap_direct import McapMessages


class BagReadError(BagConversionError):
    """The bag cannot be read (missing, truncated or corrupt)."""


class BagContentError(BagConversionError):
    """The bag is readable but does not hold what the config asks for."""


@dataclass
class EpisodeEvent:
    """A decoded ``ove_ros/EpisodeEvent``."""

    stamp: int
    event: int
    outcome: int
    task: str
    episode_id: str


@dataclass
class StreamIndex:
    """All messages of one stream, sorted by stamp."""

    key: str  # "camera:<name>", "state" or "action"
    topic: str
    msgtype: str
    stamps: np.ndarray  # int64 ns, ascending
    order: np.ndarray  # receive-order index of each sorted message
    arrival_stamps: np.ndarray  # stamps in receive order (pass 2 checks it reads the same messages)
    values: dict[str, np.ndarray] = field(default_factory=dict)  # feature key -> (n, d) float32, sorted
    zero_stamps: int = 0  # messages whose zero header stamp was replaced by the receive time
    has_header: bool = True


@dataclass
class BagIndex:
    """What pass 1 learned about one bag."""

    path: Path
    name: str
    streams: dict[str, StreamIndex]
    events: list[EpisodeEvent]
    image_shapes: dict[str, tuple[int, int, int]]  # camera name -> (H, W, 3) as written
    has_events_topic: bool
    require_events: bool = False
    direct: McapMessages | None = None  # pass 1's index of the mapped MCAP files (closed), when they apply

    @property
    def direct_cameras(self) -> bool:
        """Whether the camera messages are read from the mapped MCAP files (ove_ros.training.mcap_direct)."""
        return self.direct is not None
