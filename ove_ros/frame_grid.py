# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Live inputs placed on the dataset's frame grid, by the rule the bag converter resamples recordings with.

Training counts steps in dataset frames: ticks at ``t0 + k / fps`` from the episode start, each keeping every
stream's latest message at or before the tick when it is at most ``tolerance`` old; a tick missing a stream is
not a frame (the converter drops it). The live node must count the same way, whatever its camera rate or how
often the model keeps up, or its n-step windows and reward sums are not the trained ones. ``FrameGrid`` does
that from message stamps alone: each grid tick is decided once every stream has a message newer than it (or
when ``max_wait`` of sensor time has passed it), and a kept tick becomes ``GridFrame`` with the episode's
frame index. Valuing a frame is the caller's business: a frame it skips (busy model) is a gap, not a shift.

Episodes follow the converter too: a START stamp begins one (an open one ends without an outcome), an END
stamp ends it once every tick at or before it is decided, and frames between END and the next START belong
to no episode (``index`` None). Without events, an episode starts when every stream has delivered a message
(``start_auto``). An END travels on its own topic and may arrive after frames past its stamp were handed out;
those are taken back (``EpisodeEnd.frames``) unless they are *final*: older than the newest input by more than
``event_delay`` (``GridFrame.final``). Consumers publish what depends on a frame belonging to the episode (an
advantage bootstrapping from it) only once it is final. Pure Python: no ROS, no torch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

NS = 1_000_000_000
STAMP_HISTORY_NS = 10 * NS  # stamps kept to re-place ticks when a START arrives late
PAYLOAD_HISTORY_NS = NS // 2  # messages kept for the same


def tick_offset_ns(k: int, fps: float) -> int:
    """Offset of grid tick ``k`` from the episode start, rounded exactly as the converter's ``plan_ticks``."""
    return int(np.round(np.float64(k) * (NS / fps)))


def tolerance_ns(tolerance_periods: float, fps: float) -> int:
    """The converter's staleness limit of a stream at a tick."""
    return int(round(tolerance_periods * NS / fps))


@dataclass(frozen=True)
class GridFrame:
    """A kept grid tick: the inputs the dataset frame at this tick would hold."""

    episode: int  # serial number of the episode (or of the stretch outside episodes)
    index: int | None  # frame index within the episode; None outside an episode
    stamp_ns: int  # the tick's time
    payloads: dict[str, Any] | None  # per stream the message used; None when it is no longer held
    stamps_ns: dict[str, int]  # per stream the stamp of that message
    final: int = 0  # the episode's frames (indices below this) that no late END can take back any more


@dataclass(frozen=True)
class EpisodeStart:
    episode: int
    stamp_ns: int
    task: str | None
    reason: str


@dataclass(frozen=True)
class EpisodeEnd:
    episode: int
    frames: int  # frames the episode holds (its last frame is frames - 1)
    success: bool | None  # None: ended without an outcome (truncated)
    reason: str


GridItem = GridFrame | EpisodeStart | EpisodeEnd


@dataclass
class _Stream:
    stamps: deque = field(default_factory=deque)
    payloads: dict[int, Any] = field(default_factory=dict)

    @property
    def last(self) -> int | None:
        return self.stamps[-1] if self.stamps else None


@dataclass
class GridStats:
    kept: int = 0  # grid ticks that became frames
    dropped_missing: int = 0  # grid ticks missing a stream (the converter drops them too)
    forced: int = 0  # ticks decided by max_wait before every stream had passed them
    out_of_order: int = 0  # messages older than their stream's last one (dropped)
    clock_jumps: int = 0
    late_starts: int = 0  # START stamps before ticks already decided (re-placed from history)
    late_ends: int = 0  # END stamps before frames already final (those frames stay in the episode)
    retracted: int = 0  # frames handed out, then found to lie after the episode's END (not the episode's)
    unheld: int = 0  # kept frames whose messages were no longer held (not valued)


class FrameGrid:
    """Decides, tick by tick, which grid ticks are dataset frames and hands them out with their inputs."""

    def __init__(
        self,
        streams: list[str],
        fps: float,
        tolerance_periods: float,
        max_wait_s: float = 0.5,
        clock_jump_s: float = 1.0,
        event_delay_s: float = 0.5,
    ) -> None:
        if not streams or len(set(streams)) != len(streams):
            raise ValueError(f"streams must be non-empty and unique, got {streams}")
        if not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        if not tolerance_periods > 0:
            raise ValueError(f"tolerance_periods must be > 0, got {tolerance_periods}")
        self.fps = float(fps)
        self.tolerance_ns = tolerance_ns(tolerance_periods, fps)
        self.max_wait_ns = max(int(max_wait_s * NS), self.tolerance_ns)
        self.clock_jump_ns = int(clock_jump_s * NS)
        if not event_delay_s >= 0:
            raise ValueError(f"event_delay_s must be >= 0, got {event_delay_s}")
        self.event_delay_ns = int(event_delay_s * NS)
        self.stats = GridStats()
        self._streams = {s: _Stream() for s in streams}
        self._serial = 0
        self._in_episode = False
        self._auto_pending = True  # start an episode when every stream has a message
        self._auto_task: str | None = None
        self._origin: int | None = None  # t0 of the grid (episode start, or the last one outside episodes)
        self._k = 0  # next undecided tick
        self._frames = 0  # kept ticks so far in this episode
        self._end: tuple[int, bool | None, str] | None = None  # END waiting for its ticks to be decided
        self._kept: deque[int] = deque(maxlen=4096)  # stamps of this episode's recent frames
        self._final = 0  # this episode's frames older than the newest input by more than event_delay

    # ------------------------------------------------------------------------------------------- state

    @property
    def episode(self) -> int:
        return self._serial

    @property
    def in_episode(self) -> bool:
        return self._in_episode

    @property
    def frames(self) -> int:
        return self._frames

    @property
    def newest_ns(self) -> int | None:
        """The newest input stamp seen (the sensors' current time), None before any input."""
        return max((s.last for s in self._streams.values() if s.last is not None), default=None)

    def next_tick_ns(self) -> int | None:
        return None if self._origin is None else self._origin + tick_offset_ns(self._k, self.fps)

    # ----------------------------------------------------------------------------------------- inputs

    def add(self, stream: str, stamp_ns: int, payload: Any) -> list[GridItem]:
        """One input message; returns the items it completes, in order."""
        st = self._streams[stream]
        stamp_ns = int(stamp_ns)
        out: list[GridItem] = []
        last = st.last
        if last is not None and stamp_ns <= last:
            if last - stamp_ns > self.clock_jump_ns:
                self.stats.clock_jumps += 1
                out += self.restart(f"clock jumped back {(last - stamp_ns) / NS:.3f} s on {stream}")
            else:
                self.stats.out_of_order += 1
                return out
        st.stamps.append(stamp_ns)
        st.payloads[stamp_ns] = payload
        if self._origin is None:
            if self._auto_pending and all(s.stamps for s in self._streams.values()):
                t0 = max(s.stamps[0] for s in self._streams.values())
                out += self._begin(t0, self._auto_task, "inputs started")
            elif not self._auto_pending:
                return out
        out += self._decide()
        self._confirm()
        self._prune()
        return out

    def start(self, stamp_ns: int, task: str | None = None, reason: str = "START") -> list[GridItem]:
        """A START at ``stamp_ns``: an open episode ends without an outcome, a new one begins there."""
        stamp_ns = int(stamp_ns)
        newest = self.newest_ns
        if newest is not None and newest - stamp_ns > STAMP_HISTORY_NS:
            raise ValueError(
                f"{reason} stamp is {(newest - stamp_ns) / NS:.1f} s older than the inputs (more than the "
                f"{STAMP_HISTORY_NS // NS} s of history kept); stamp episode events with the sensor time"
            )
        out: list[GridItem] = []
        out += self._decide(until=stamp_ns - 1)
        if self._end is not None:
            out += self._close()
        if self._in_episode:
            out.append(self._finish(None, f"{reason} while the episode was open"))
        decided_past = self._origin is not None and self.next_tick_ns() > stamp_ns
        if decided_past:
            self.stats.late_starts += 1
        self._auto_pending = False
        out += self._begin(stamp_ns, task, reason)
        out += self._decide()
        return out

    def end(self, stamp_ns: int, success: bool | None, reason: str = "END") -> list[GridItem]:
        """An END at ``stamp_ns``; the episode ends once every tick at or before it is decided."""
        if not self._in_episode:
            return []
        self._end = (int(stamp_ns), success, reason)
        out = self._decide()
        if self._end is not None and self.next_tick_ns() > self._end[0]:
            out += self._close()
        return out

    @property
    def end_pending(self) -> bool:
        """An END waits for ticks at or before it that some input has not passed yet."""
        return self._end is not None

    def settle(self) -> list[GridItem]:
        """Decide every tick up to a pending END with the messages at hand and close the episode: for an
        END after which the inputs fall silent (the robot stopped publishing)."""
        if self._end is None:
            return []
        out: list[GridItem] = []
        while self._end is not None:
            tick = self.next_tick_ns()
            if tick > self._end[0]:
                out += self._close()
                break
            self.stats.forced += 1
            out += self._advance(tick)
        return out

    def restart(self, reason: str, task: str | None = None) -> list[GridItem]:
        """End the episode without an outcome and start a new one when every stream delivers again."""
        out: list[GridItem] = []
        if self._in_episode:
            out.append(self._finish(None, reason))
        for st in self._streams.values():
            st.stamps.clear()
            st.payloads.clear()
        self._origin, self._end = None, None
        self._auto_pending, self._auto_task = True, task
        return out

    # ---------------------------------------------------------------------------------------- deciding

    def _begin(self, t0: int, task: str | None, reason: str) -> list[GridItem]:
        self._serial += 1
        self._in_episode = True
        self._origin, self._k, self._frames, self._end = t0, 0, 0, None
        self._final = 0
        self._kept.clear()
        return [EpisodeStart(self._serial, t0, task, reason)]

    def _finish(self, success: bool | None, reason: str) -> EpisodeEnd:
        self._in_episode = False
        return EpisodeEnd(self._serial, self._frames, success, reason)

    def _close(self) -> list[GridItem]:
        """The pending END: every tick at or before it is decided; later ticks are outside any episode."""
        stamp, success, reason = self._end
        self._end = None
        # An END that arrived after later ticks were decided: those frames are not the episode's, unless
        # they are final already (the END came more than event_delay late): then they stay, as the
        # advantages published from them assumed.
        while self._kept and self._kept[-1] > stamp and self._frames > self._final:
            self._kept.pop()
            self._frames -= 1
            self.stats.retracted += 1
        if self._kept and self._kept[-1] > stamp:
            self.stats.late_ends += 1
        end = self._finish(success, reason)
        # The grid runs on from the same origin outside the episode.
        self._serial += 1
        return [end]

    def _decide(self, until: int | None = None) -> list[GridItem]:
        out: list[GridItem] = []
        if self._origin is None:
            return out
        newest = max((s.last for s in self._streams.values() if s.last is not None), default=None)
        while True:
            tick = self.next_tick_ns()
            if until is not None and tick > until:
                break
            if self._end is not None and tick > self._end[0]:
                out += self._close()
                continue
            # Stamps increase within a stream (equal or older ones are dropped), so a stream whose newest
            # message is at or after the tick has shown its latest message at or before it.
            passed = all(s.last is not None and s.last >= tick for s in self._streams.values())
            if not passed:
                if newest is None or newest < tick + self.max_wait_ns:
                    break
                self.stats.forced += 1
            out += self._advance(tick)
        return out

    def _advance(self, tick: int) -> list[GridItem]:
        """Decide ``tick`` (the next one) and move on: the frame it makes, if any."""
        item = self._place(tick)
        self._k += 1
        return [item] if item is not None else []

    def _place(self, tick: int) -> GridFrame | None:
        stamps: dict[str, int] = {}
        for name, st in self._streams.items():
            i = _latest_at_or_before(st.stamps, tick)
            if i is None or tick - st.stamps[i] > self.tolerance_ns:
                self.stats.dropped_missing += 1
                return None
            stamps[name] = st.stamps[i]
        payloads: dict[str, Any] | None = {}
        for name, stamp in stamps.items():
            if stamp not in self._streams[name].payloads:
                payloads = None
                self.stats.unheld += 1
                break
            payloads[name] = self._streams[name].payloads[stamp]
        self.stats.kept += 1
        index = self._frames if self._in_episode else None
        if self._in_episode:
            self._frames += 1
            self._kept.append(tick)
        return GridFrame(self._serial, index, tick, payloads, stamps, self._final if self._in_episode else 0)

    def _confirm(self) -> None:
        """Advance the final frames: an END stamped before a frame must arrive within event_delay of sensor
        time after the frame's inputs, or the frame stays in the episode."""
        newest = self.newest_ns
        if not self._in_episode or newest is None:
            return
        first = self._frames - len(self._kept)  # index of the oldest stamp kept
        while self._final < self._frames:
            i = self._final - first
            if i >= 0 and self._kept[i] + self.event_delay_ns > newest:
                break
            self._final += 1

    def _prune(self) -> None:
        tick = self.next_tick_ns()
        if tick is None:
            return
        for st in self._streams.values():
            # Keep the latest message at or before the next tick, and the history a late START may need.
            while len(st.stamps) > 1 and st.stamps[1] <= tick and tick - st.stamps[0] > STAMP_HISTORY_NS:
                st.stamps.popleft()
            latest = _latest_at_or_before(st.stamps, tick)
            keep = st.stamps[latest] if latest is not None else None
            for stamp in [s for s in st.payloads if tick - s > PAYLOAD_HISTORY_NS and s != keep]:
                del st.payloads[stamp]


def _latest_at_or_before(stamps: deque, tick: int) -> int | None:
    """Index of the newest stamp <= tick (stamps ascending), or None."""
    for i in range(len(stamps) - 1, -1, -1):
        if stamps[i] <= tick:
            return i
    return None
