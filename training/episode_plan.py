# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Episodes of an indexed bag resampled onto the dataset's frame grid (pure: stamps in, plans out).

Resampling rule (``plan_ticks``): ticks are at ``t0 + k / fps``. At each tick every stream takes its latest
message with stamp <= tick; the stream is present when that message is at most ``tolerance`` old. A tick
with a missing stream is dropped and counted (per stream), never filled. The live node's frame grid
(``ove_ros.frame_grid``) decides ticks by the same rule.

Episodes (``plan_episodes``): with EpisodeEvent messages, each START..END pair is one episode (t0 = START
stamp, last tick <= END stamp); a START without an END is cut short (``EpisodePlan.cut_short``). Without
events the whole bag is one episode, from the first time all streams have a message to the last time they
all have.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ove_ros.training import ros_types
from ove_ros.training.bag_config import BagConversionConfig
from ove_ros.training.bag_model import BagContentError, BagIndex, EpisodeEvent

log = logging.getLogger("ove_ros.training.bag_reader")

NS = 1_000_000_000


@dataclass
class EpisodePlan:
    """The ticks of one episode and, per stream, which message each kept tick uses."""

    bag: str
    bag_path: Path
    ordinal: int  # episode number within its bag, from 0
    episode_id: str
    task: str | None
    outcome: str | None  # from the END event: "success", "failure" or None
    cut_short: bool  # began with a START the recording never ENDed (a new START or the bag's end)
    start_ns: int
    end_ns: int
    ticks: int
    tick_stamps: np.ndarray  # stamps of the kept ticks
    picks: dict[str, np.ndarray]  # stream key -> index into the stream's sorted messages, per kept tick
    dropped_by_stream: dict[str, int]

    @property
    def frames(self) -> int:
        return len(self.tick_stamps)

    @property
    def dropped(self) -> int:
        return self.ticks - self.frames


def camera_key(name: str) -> str:
    return f"camera:{name}"


def plan_ticks(
    t0: int, t_end: int, fps: int, tolerance_ns: int, streams: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, int]]:
    """Resample sorted stamp arrays onto ticks ``t0 + k/fps <= t_end``.

    Returns ``(tick_stamps, keep, picks, missing)``: all tick stamps, a mask of the kept ticks, per stream the
    sorted-message index used at each tick (-1 where none), and per stream how many ticks it was missing at.
    """
    count = ((t_end - t0) * fps) // NS + 1 if t_end >= t0 else 0
    ticks = t0 + np.round(np.arange(count, dtype=np.float64) * (NS / fps)).astype(np.int64)
    keep = np.ones(count, dtype=bool)
    picks: dict[str, np.ndarray] = {}
    missing: dict[str, int] = {}
    for key, stamps in streams.items():
        idx = np.searchsorted(stamps, ticks, side="right") - 1
        present = idx >= 0
        present[present] = (ticks[present] - stamps[idx[present]]) <= tolerance_ns
        idx[~present] = -1
        picks[key] = idx
        missing[key] = int(count - present.sum())
        keep &= present
    return ticks, keep, picks, missing


def episode_windows(index: BagIndex) -> list[tuple[int, int, EpisodeEvent | None, EpisodeEvent | None]]:
    """(start, end, START event, END event) of each episode of the bag."""
    first = max(int(s.stamps[0]) for s in index.streams.values())
    last = min(int(s.stamps[-1]) for s in index.streams.values())
    if not index.has_events_topic or not index.events:
        if index.require_events:
            raise BagContentError(
                f"bag {index.path} has no EpisodeEvent messages but episodes.split=events; "
                "use episodes.split=auto or bag to convert it as one episode"
            )
        if index.has_events_topic:
            log.warning(
                "bag %s: no EpisodeEvent messages; converting the whole bag as one episode", index.name
            )
        return [(first, last, None, None)]
    windows = []
    open_event: EpisodeEvent | None = None
    for event in index.events:
        if event.event == ros_types.EVENT_START:
            if open_event is not None:
                log.warning(
                    "bag %s: START at %d while an episode is open; the open one ends without an outcome",
                    index.name,
                    event.stamp,
                )
                windows.append((open_event.stamp, event.stamp - 1, open_event, None))
            open_event = event
        elif event.event == ros_types.EVENT_END:
            if open_event is None:
                log.warning("bag %s: END at %d without a START; ignored", index.name, event.stamp)
                continue
            windows.append((open_event.stamp, event.stamp, open_event, event))
            open_event = None
        else:
            log.warning("bag %s: unknown EpisodeEvent.event %d ignored", index.name, event.event)
    if open_event is not None:
        log.warning(
            "bag %s: the last episode has no END; it ends with the recording, without an outcome", index.name
        )
        windows.append((open_event.stamp, last, open_event, None))
    return windows


def plan_episodes(index: BagIndex, config: BagConversionConfig) -> list[EpisodePlan]:
    """Split the bag into episodes and resample each one (see the module docstring)."""
    tolerance_ns = int(round(config.tolerance_periods * NS / config.fps))
    stamp_arrays = {key: s.stamps for key, s in index.streams.items()}
    plans = []
    for ordinal, (start, end, start_ev, end_ev) in enumerate(episode_windows(index)):
        ticks, keep, picks, missing = plan_ticks(start, end, config.fps, tolerance_ns, stamp_arrays)
        outcome = None
        if end_ev is not None and end_ev.outcome == ros_types.OUTCOME_SUCCESS:
            outcome = "success"
        elif end_ev is not None and end_ev.outcome == ros_types.OUTCOME_FAILURE:
            outcome = "failure"
        task = next((e.task for e in (start_ev, end_ev) if e is not None and e.task), None)
        episode_id = next((e.episode_id for e in (start_ev, end_ev) if e is not None and e.episode_id), "")
        plans.append(
            EpisodePlan(
                bag=index.name,
                bag_path=index.path,
                ordinal=ordinal,
                episode_id=episode_id,
                task=task,
                outcome=outcome,
                cut_short=start_ev is not None and end_ev is None,
                start_ns=start,
                end_ns=end,
                ticks=len(ticks),
                tick_stamps=ticks[keep],
                picks={key: idx[keep] for key, idx in picks.items()},
                dropped_by_stream=missing,
            )
        )
    return plans
