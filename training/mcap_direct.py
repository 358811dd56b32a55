# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Messages straight out of uncompressed MCAP files: memory-mapped, located by the file's own index.

A generic bag reader copies every message about three times (file -> chunk buffer -> message bytes ->
deserialized array) and the converter reads the camera topics twice, so at 3 x 640x480 rgb8 @ 30 Hz reading
alone cost about the whole time budget of a 10x-real-time conversion (and a generic reader reads the images
again to find the joint states between them). MCAP files written by ``ros2 bag
record`` (and by rosbags) end with a summary: the channels, one chunk index per chunk and, per chunk and
channel, a message index of (log time, offset) pairs. With uncompressed chunks that is enough to find every
message of a topic in the mapped file without reading anything else; the data comes back as a memoryview of
the mapping, and :func:`image_view` reads a ``sensor_msgs/Image`` from it without copying the pixels.

:meth:`McapMessages.open` returns None when this does not apply (not MCAP, rosbag2 compression, no summary
or message indexes, compressed chunks holding a wanted topic); the caller then reads the bag the generic way.
The message order is log time, then file, then position: the same in both passes, which is all the converter
relies on.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"\x89MCAP0\r\n"
OP_CHANNEL, OP_MESSAGE, OP_CHUNK_INDEX, OP_MESSAGE_INDEX, OP_FOOTER = 0x04, 0x05, 0x08, 0x07, 0x02
_FOOTER_SIZE = 1 + 8 + 20  # opcode, record length, summary_start + summary_offset_start + summary_crc
_MESSAGE_HEAD = 1 + 8 + 2 + 4 + 8 + 8  # opcode, length, channel, sequence, log time, publish time


class McapIndexError(ValueError):
    """The file's index or a message it points to is inconsistent (the file is damaged)."""


def _string(buf, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    return bytes(buf[pos + 4 : pos + 4 + n]).decode("utf-8"), pos + 4 + n


def _summary(mm: mmap.mmap) -> tuple[dict[int, str], list[tuple[int, dict[int, int], str]]] | None:
    """Channels (id -> topic) and chunk indexes ``(records start, {channel: message index offset},
    compression)``; None without a summary."""
    size = len(mm)
    if size < 2 * len(MAGIC) + _FOOTER_SIZE or mm[: len(MAGIC)] != MAGIC or mm[size - len(MAGIC) :] != MAGIC:
        return None
    footer = size - len(MAGIC) - _FOOTER_SIZE
    if mm[footer] != OP_FOOTER:
        return None
    summary_start, _offsets_start, _crc = struct.unpack_from("<QQI", mm, footer + 9)
    if summary_start == 0 or summary_start >= footer:
        return None
    channels: dict[int, str] = {}
    chunks: list[tuple[int, dict[int, int], str]] = []
    pos = summary_start
    while pos < footer:
        op = mm[pos]
        (length,) = struct.unpack_from("<Q", mm, pos + 1)
        body = pos + 9
        if body + length > footer:
            raise McapIndexError(f"summary record at byte {pos} runs past the summary")
        if op == OP_CHANNEL:
            (channel_id,) = struct.unpack_from("<H", mm, body)
            channels[channel_id], _ = _string(mm, body + 4)  # after the schema id
        elif op == OP_CHUNK_INDEX:
            chunk_start = struct.unpack_from("<Q", mm, body + 16)[0]
            (map_bytes,) = struct.unpack_from("<I", mm, body + 32)
            offsets = {}
            for entry in range(body + 36, body + 36 + map_bytes, 10):
                channel_id, offset = struct.unpack_from("<HQ", mm, entry)
                offsets[channel_id] = offset
            compression, _ = _string(mm, body + 36 + map_bytes + 8)  # after message_index_length
            # Chunk record: opcode, length, start/end time, uncompressed size, crc, compression, size.
            records = chunk_start + 1 + 8 + 8 + 8 + 8 + 4 + 4 + len(compression.encode()) + 8
            chunks.append((records, offsets, compression))
        pos = body + length
    return channels, chunks


@dataclass
class McapMessages:
    """Every message of some topics across a bag's MCAP files, in log-time order."""

    paths: list[Path]
    maps: list[mmap.mmap]
    topics: np.ndarray  # per message: index into ``topic_names``
    topic_names: list[str]
    log_times: np.ndarray
    files: np.ndarray
    positions: np.ndarray  # of the message record in its file
    channels: np.ndarray

    @classmethod
    def open(cls, files: list[Path], topics: list[str]) -> McapMessages | None:
        maps, rows = [], []
        try:
            for f, path in enumerate(files):
                maps.append(mm := _map(path))
                summary = _summary(mm)
                if summary is None:
                    raise _NotApplicable
                channels, chunks = summary
                wanted = {cid: topics.index(t) for cid, t in channels.items() if t in topics}
                for records, offsets, compression in chunks:
                    if compression and any(cid in offsets for cid in wanted):
                        raise _NotApplicable
                    for cid, t in wanted.items():
                        if cid not in offsets:
                            continue
                        rows.append(_message_index(mm, offsets[cid], cid, t, f, records))
        except _NotApplicable:
            _close(maps)
            return None
        except (OSError, ValueError, struct.error, IndexError) as exc:
            _close(maps)
            if isinstance(exc, McapIndexError):
                raise
            raise McapIndexError(f"cannot read the MCAP index: {exc}") from exc
        table = np.concatenate(rows, axis=1) if rows else np.zeros((5, 0), dtype=np.int64)
        order = np.lexsort((table[3], table[2], table[1]))  # log time, then file, then position
        table = table[:, order]
        return cls(list(files), maps, table[0], list(topics), table[1], table[2], table[3], table[4])

    def select(self, topics: list[str]) -> McapMessages:
        """The messages of ``topics`` only, with the files mapped again (the index is not read twice)."""
        keep = np.isin(self.topics, [self.topic_names.index(t) for t in topics])
        renumber = np.array([topics.index(t) if t in topics else -1 for t in self.topic_names])
        maps = []
        try:
            for path in self.paths:
                maps.append(_map(path))
        except OSError as exc:
            _close(maps)
            raise McapIndexError(f"cannot map {path} again: {exc}") from exc
        return McapMessages(
            self.paths, maps, renumber[self.topics[keep]], list(topics), self.log_times[keep],
            self.files[keep], self.positions[keep], self.channels[keep],
        )

    def counts(self) -> dict[str, int]:
        """Messages per topic, as the index lists them."""
        found = np.bincount(self.topics, minlength=len(self.topic_names))
        return {name: int(n) for name, n in zip(self.topic_names, found, strict=True)}

    def __len__(self) -> int:
        return len(self.topics)

    def data(self, i: int) -> memoryview:
        """The serialized message ``i`` (a view of the mapped file: valid until :meth:`close`)."""
        mm, pos = self.maps[int(self.files[i])], int(self.positions[i])
        if pos + _MESSAGE_HEAD > len(mm) or mm[pos] != OP_MESSAGE:
            raise McapIndexError(f"no message record at byte {pos} where the index points")
        length, channel = struct.unpack_from("<QH", mm, pos + 1)
        end = pos + 9 + length
        if channel != self.channels[i] or length < _MESSAGE_HEAD - 9 or end > len(mm):
            raise McapIndexError(f"the message record at byte {pos} does not match the index")
        return memoryview(mm)[pos + _MESSAGE_HEAD : end]

    def close(self) -> None:
        _close(self.maps)
        self.maps = []


class _NotApplicable(Exception):
    pass


def _map(path: Path) -> mmap.mmap:
    with open(path, "rb") as fh:
        return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _close(maps: list[mmap.mmap]) -> None:
    for mm in maps:
        try:
            mm.close()
        except BufferError:  # a caller still holds a view (say, an error's traceback): the GC closes it
            pass


def _message_index(mm: mmap.mmap, at: int, channel: int, topic: int, file: int, records: int) -> np.ndarray:
    """One message index record -> rows (topic, log time, file, position, channel)."""
    if mm[at] != OP_MESSAGE_INDEX:
        raise McapIndexError(f"no message index at byte {at}")
    (found,) = struct.unpack_from("<H", mm, at + 9)
    (n_bytes,) = struct.unpack_from("<I", mm, at + 11)
    if found != channel or n_bytes % 16:
        raise McapIndexError(f"the message index at byte {at} is not channel {channel}'s")
    pairs = np.frombuffer(mm, dtype="<u8", count=n_bytes // 8, offset=at + 15).reshape(-1, 2).astype(np.int64)
    n = len(pairs)
    columns = [np.full(n, topic), pairs[:, 0], np.full(n, file), records + pairs[:, 1], np.full(n, channel)]
    return np.stack(columns)


@dataclass
class ImageView:
    """The fields of a ``sensor_msgs/Image`` that decoding needs; ``data`` is a view, not a copy."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: np.ndarray


def image_view(raw: memoryview) -> ImageView | None:
    """Parse a little-endian CDR ``sensor_msgs/Image`` in place; None for big-endian CDR (rare: decode it the
    generic way). Raises ValueError when the message is cut short."""
    if len(raw) < 4 or raw[1] != 1:
        return None

    def align(pos: int) -> int:  # CDR aligns relative to the payload, which starts after 4 bytes
        return 4 + ((pos - 4 + 3) & ~3)

    try:
        pos = 4 + 8  # encapsulation header, stamp
        (n,) = struct.unpack_from("<I", raw, pos)
        pos = align(pos + 4 + n)  # frame_id
        height, width = struct.unpack_from("<II", raw, pos)
        encoding, pos = _string(raw, pos + 8)
        encoding = encoding.rstrip("\x00")
        is_bigendian = raw[pos]
        pos = align(pos + 1)
        (step,) = struct.unpack_from("<I", raw, pos)
        (size,) = struct.unpack_from("<I", raw, pos + 4)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"image message of {len(raw)} bytes is cut short or malformed") from exc
    if pos + 8 + size > len(raw):
        raise ValueError(f"image message of {len(raw)} bytes is shorter than its {size} bytes of data")
    data = np.frombuffer(raw, dtype=np.uint8, count=size, offset=pos + 8)
    return ImageView(int(height), int(width), encoding, int(is_bigendian), int(step), data)
