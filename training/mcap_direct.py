# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Messages straight out of uncompressed MCAP files: memory-mapped, located by the file's own index.

A generic bag reader copies every message about three times (file -> chunk buffer -> message bytes ->
deserialized array) and the converter reads the camera topics twice, so with several VGA rgb8 cameras
reading alone took about the whole time budget of a conversion at the speed the README aims for (and a
generic reader reads the images again to find the joint states between them). MCAP files written by ``ros2 bag
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
                indexes = []  # (message index record, channel, topic, start of the chunk's records)
                for records, offsets, compression in chunks:
                    if compression and any(cid in offsets for cid in wanted):
                        raise _NotApplicable
                    indexes.extend((offsets[c], c, t, records) for c, t in wanted.items() if c in offsets)
                if indexes:
                    rows.append(_message_indexes(mm, np.array(indexes, dtype=np.int64), f))
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
            self.paths,
            maps,
            renumber[self.topics[keep]],
            list(topics),
            self.log_times[keep],
            self.files[keep],
            self.positions[keep],
            self.channels[keep],
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

    def heads(self, select: np.ndarray, width: int | None) -> np.ndarray | None:
        """The first ``width`` bytes of the data of messages ``select`` (message numbers) as the rows of one
        uint8 array; ``width=None``: the whole data, when all have the same length.
        None when a message is shorter than ``width`` or the lengths differ: read those one by one.

        Checks each message record against the index, as :meth:`data` does."""
        select = np.asarray(select, dtype=np.int64)
        by_file = [np.flatnonzero(self.files[select] == f) for f in range(len(self.maps))]
        starts = np.zeros(len(select), dtype=np.int64)
        lengths = np.zeros(len(select), dtype=np.int64)
        for f, where in enumerate(by_file):
            if len(where):
                starts[where], lengths[where] = self._payloads(f, select[where])
        if width is None:
            if not len(select) or (lengths != lengths[0]).any():
                return None
            width = int(lengths[0])
        elif (lengths < width).any():
            return None
        rows = np.empty((len(select), width), dtype=np.uint8)
        for f, where in enumerate(by_file):
            if len(where):
                buf = np.frombuffer(self.maps[f], dtype=np.uint8)
                rows[where] = buf[starts[where][:, None] + np.arange(width)]
                del buf  # the mapping can only close once no array views it
        return rows

    def _payloads(self, f: int, messages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and length of the data of ``messages`` (all in file ``f``), their records checked."""
        buf = np.frombuffer(self.maps[f], dtype=np.uint8)
        try:
            pos = self.positions[messages]
            head = _gather(buf, pos, "u1")
            if (head != OP_MESSAGE).any():
                raise McapIndexError(
                    f"no message record at byte {pos[head != OP_MESSAGE][0]} where the index points"
                )
            length = _gather(buf, pos + 1, "<u8").astype(np.int64)
            channel = _gather(buf, pos + 9, "<u2")
            bad = (
                (channel != self.channels[messages])
                | (length < _MESSAGE_HEAD - 9)
                | (pos + 9 + length > len(buf))
            )
            if bad.any():
                raise McapIndexError(f"the message record at byte {pos[bad][0]} does not match the index")
            return pos + _MESSAGE_HEAD, length - (_MESSAGE_HEAD - 9)
        finally:
            del buf

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


def _gather(buf: np.ndarray, positions: np.ndarray, dtype: str) -> np.ndarray:
    """The little-endian ``dtype`` value at each byte position of ``buf``."""
    size = np.dtype(dtype).itemsize
    if len(positions) and (positions.min() < 0 or positions.max() + size > len(buf)):
        raise McapIndexError(f"the index points past the end of the file ({len(buf)} bytes)")
    return buf[positions[:, None] + np.arange(size)].view(dtype).reshape(-1)


def _message_indexes(mm: mmap.mmap, indexes: np.ndarray, file: int) -> np.ndarray:
    """Message index records ``[n, (position, channel, topic, chunk records start)]`` -> one row per message
    ``(topic, log time, file, position, channel)``. Read all at once: a camera recording has one chunk, so
    one message index, per image."""
    buf = np.frombuffer(mm, dtype=np.uint8)
    try:
        at, channel, topic, records = indexes.T
        head = _gather(buf, at, "u1")
        found, n_bytes = _gather(buf, at + 9, "<u2"), _gather(buf, at + 11, "<u4").astype(np.int64)
        bad = (head != OP_MESSAGE_INDEX) | (found != channel) | (n_bytes % 16 != 0)
        if bad.any():
            raise McapIndexError(f"no message index of channel {channel[bad][0]} at byte {at[bad][0]}")
        counts = n_bytes // 16
        owner = np.repeat(np.arange(len(at)), counts)
        first = np.cumsum(counts) - counts
        pairs = (at + 15)[owner] + 16 * (np.arange(int(counts.sum())) - first[owner])
        log_times = _gather(buf, pairs, "<u8").astype(np.int64)
        offsets = _gather(buf, pairs + 8, "<u8").astype(np.int64)
        return np.stack(
            [topic[owner], log_times, np.full(len(owner), file), records[owner] + offsets, channel[owner]]
        )
    finally:
        del buf  # the mapping can only close once no array views it


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
