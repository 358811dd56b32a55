# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A latest-wins synchronizer for several timestamped streams (pure; the ROS node feeds it).

Only the newest message of each stream is kept, so memory is bounded by the number of streams whatever the
publishing rates. A tick fires when every stream has a message, the stamps lie within ``slop`` of each other
and the combination is new. Time going backwards (bag loop, simulator reset) or jumping far forward resets
the synchronizer and is reported as an event, so the caller can drop its own per-episode state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

# Every received message ends up in exactly one of: used (in a tick, counted once), superseded (replaced by a
# newer one before use), dropped_stale, dropped_unmatched, dropped_reset, or still held unused. out_of_order
# counts the messages that went back in time (each also caused a reset).
COUNTERS = (
    "received",
    "used",
    "superseded",
    "dropped_stale",
    "dropped_unmatched",
    "dropped_reset",
    "out_of_order",
)


@dataclass
class SyncConfig:
    """Synchronizer settings; times are in seconds of the message stamps' clock.

    ``max_age``: with ``now`` given to ``add``, messages older than ``now - max_age`` are dropped (0 = off).
    ``max_rate``: at most this many ticks per second of stamp time (0 = unlimited).
    ``jump_threshold``: a stamp this far beyond the newest one seen is a clock jump and resets.
    ``fresh``: ``"any"`` fires whenever the newest stamp is newer than the last tick's (a fast stream can
    drive the tick rate); ``"all"`` also requires every message to be unused (ticks at the slowest rate).
    """

    streams: list[str]
    slop: float = 0.05
    max_age: float = 0.5
    max_rate: float = 0.0
    jump_threshold: float = 5.0
    fresh: Literal["any", "all"] = "any"

    def __post_init__(self) -> None:
        if isinstance(self.streams, str) or not self.streams:
            raise ValueError("SyncConfig.streams must be a non-empty list of stream names")
        self.streams = list(self.streams)
        if any(not isinstance(s, str) or not s for s in self.streams):
            raise ValueError(f"SyncConfig.streams must be non-empty strings, got {self.streams}")
        if len(set(self.streams)) != len(self.streams):
            raise ValueError(f"SyncConfig.streams has duplicates: {self.streams}")
        for name in ("slop", "max_age", "max_rate"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"SyncConfig.{name} must be a finite number >= 0, got {v}")
        if math.isnan(self.jump_threshold) or self.jump_threshold <= self.slop:
            raise ValueError(
                f"SyncConfig.jump_threshold must be > slop ({self.slop}), got {self.jump_threshold}; "
                "use math.inf to disable forward-jump detection"
            )
        if self.fresh not in ("any", "all"):
            raise ValueError(f"SyncConfig.fresh must be 'any' or 'all', got {self.fresh!r}")


@dataclass(frozen=True)
class Tick:
    """One synchronized set: a payload per stream, stamped with the newest stamp of the set."""

    stamp: float
    payloads: dict[str, Any]
    stamps: dict[str, float]
    skew: float  # max - min of the stamps, <= slop
    index: int  # ticks fired since the last reset, from 0


@dataclass(frozen=True)
class SyncEvent:
    """Something the caller must react to; today only ``kind="reset"``."""

    kind: str
    reason: str
    stream: str
    stamp: float


@dataclass(frozen=True)
class SyncResult:
    tick: Tick | None = None
    events: tuple[SyncEvent, ...] = ()

    @property
    def reset(self) -> bool:
        return any(e.kind == "reset" for e in self.events)


@dataclass
class _Slot:
    stamp: float
    payload: Any
    used: bool = False


@dataclass
class _Timeline:
    """State that a reset clears (the counters survive resets)."""

    slots: dict[str, _Slot] = field(default_factory=dict)
    last_stamp: dict[str, float] = field(default_factory=dict)
    newest: float | None = None
    last_fired: float | None = None
    tokens: float = 0.0
    index: int = 0


class LatestWinsSynchronizer:
    """Latest-wins multi-stream synchronizer; see the module docstring."""

    def __init__(self, cfg: SyncConfig) -> None:
        self.cfg = cfg
        self._t = _Timeline()
        self._counts = {s: dict.fromkeys(COUNTERS, 0) for s in cfg.streams}
        self._ticks = 0
        self._throttled = 0
        self._resets = 0
        self._last_reset_reason = ""

    # --------------------------------------------------------------------------------------------- api

    @property
    def stored(self) -> int:
        """Messages held right now (at most one per stream)."""
        return len(self._t.slots)

    def reset(self, reason: str = "requested") -> None:
        """Forget all messages and the clock history; counters are kept."""
        for name, slot in self._t.slots.items():
            if not slot.used:
                self._counts[name]["dropped_reset"] += 1
        self._t = _Timeline()
        self._resets += 1
        self._last_reset_reason = reason

    def add(self, stream: str, stamp: float, payload: Any, now: float | None = None) -> SyncResult | None:
        """Offer one message; returns the fired tick and/or reset events, or None when nothing happened."""
        if stream not in self._counts:
            raise KeyError(f"unknown stream {stream!r}; configured streams: {self.cfg.streams}")
        stamp = float(stamp)
        if not math.isfinite(stamp):
            raise ValueError(f"stream {stream!r} sent a non-finite stamp ({stamp})")
        counts = self._counts[stream]
        counts["received"] += 1
        events = self._check_clock(stream, stamp)
        if now is not None:
            self.expire(now)
            if self.cfg.max_age > 0 and stamp < float(now) - self.cfg.max_age:
                counts["dropped_stale"] += 1
                return SyncResult(events=tuple(events)) if events else None
        self._store(stream, stamp, payload)
        tick = self._try_fire()
        if tick is None and not events:
            return None
        return SyncResult(tick=tick, events=tuple(events))

    def expire(self, now: float) -> int:
        """Drop held messages older than ``now - max_age``; returns how many unused ones were dropped."""
        if self.cfg.max_age <= 0:
            return 0
        limit = float(now) - self.cfg.max_age
        dropped = 0
        for name, slot in list(self._t.slots.items()):
            if slot.stamp < limit:
                del self._t.slots[name]
                if not slot.used:
                    self._counts[name]["dropped_stale"] += 1
                    dropped += 1
        return dropped

    def stats(self) -> dict[str, Any]:
        """Counters per stream and in total, plus ticks, throttled combinations and resets."""
        totals = {c: sum(self._counts[s][c] for s in self.cfg.streams) for c in COUNTERS}
        slots = self._t.slots
        return {
            "streams": {s: dict(self._counts[s]) for s in self.cfg.streams},
            "totals": totals,
            "ticks": self._ticks,
            "throttled": self._throttled,
            "resets": self._resets,
            "last_reset_reason": self._last_reset_reason,
            "stored": self.stored,
            "held_unused": {s: int(s in slots and not slots[s].used) for s in self.cfg.streams},
        }

    # ------------------------------------------------------------------------------------------ helpers

    def _check_clock(self, stream: str, stamp: float) -> list[SyncEvent]:
        """Reset on time going backwards on a stream or jumping far forward; return the events."""
        t = self._t
        previous = t.last_stamp.get(stream)
        reason = ""
        if previous is not None and stamp < previous:
            self._counts[stream]["out_of_order"] += 1
            reason = (
                f"stream {stream!r} went back in time from {previous:.6f} to {stamp:.6f} "
                "(out-of-order message, bag loop or simulator reset)"
            )
        elif t.newest is not None and stamp - t.newest > self.cfg.jump_threshold:
            reason = (
                f"stream {stream!r} jumped forward {stamp - t.newest:.3f} s past the newest stamp "
                f"(> jump_threshold {self.cfg.jump_threshold} s)"
            )
        if not reason:
            return []
        self.reset(reason)
        return [SyncEvent(kind="reset", reason=reason, stream=stream, stamp=stamp)]

    def _store(self, stream: str, stamp: float, payload: Any) -> None:
        t = self._t
        old = t.slots.get(stream)
        if old is not None and not old.used:
            self._counts[stream]["superseded"] += 1
        t.slots[stream] = _Slot(stamp, payload)
        t.last_stamp[stream] = stamp
        t.newest = stamp if t.newest is None else max(t.newest, stamp)
        # A message more than slop older than the newest can never be in a tick again: every stream
        # only moves forward, so drop it now (this is what keeps a lagging stream from blocking ticks).
        limit = max(s.stamp for s in t.slots.values()) - self.cfg.slop
        for name, slot in list(t.slots.items()):
            if slot.stamp < limit:
                del t.slots[name]
                if not slot.used:
                    self._counts[name]["dropped_unmatched"] += 1

    def _try_fire(self) -> Tick | None:
        t, cfg = self._t, self.cfg
        if len(t.slots) != len(cfg.streams):
            return None
        stamps = {name: t.slots[name].stamp for name in cfg.streams}
        newest, oldest = max(stamps.values()), min(stamps.values())
        if newest - oldest > cfg.slop:
            return None
        if t.last_fired is not None and newest <= t.last_fired:
            return None
        if cfg.fresh == "all" and any(slot.used for slot in t.slots.values()):
            return None
        if cfg.max_rate > 0 and t.last_fired is not None:
            # Token bucket in stamp time: the long-run rate stays <= max_rate while jitter in the input
            # stamps does not cost ticks (the capacity of 1.5 lets a late tick be followed by an early one).
            tokens = min(1.5, t.tokens + (newest - t.last_fired) * cfg.max_rate)
            if tokens < 1.0 - 1e-9:
                self._throttled += 1
                return None
            t.tokens = tokens - 1.0
        for name in cfg.streams:
            slot = t.slots[name]
            if not slot.used:
                slot.used = True
                self._counts[name]["used"] += 1
        tick = Tick(
            stamp=newest,
            payloads={name: t.slots[name].payload for name in cfg.streams},
            stamps=stamps,
            skew=newest - oldest,
            index=t.index,
        )
        t.last_fired = newest
        t.index += 1
        self._ticks += 1
        return tick
