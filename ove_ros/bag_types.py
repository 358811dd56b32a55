# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""This package's ROS 2 message types for rosbags: the runtime side's bag readers and writers need them.

rosbags reads and writes rosbag2 without a ROS installation, but it only knows the standard messages. The
``ove_ros/msg/*.msg`` definitions are registered from their text, found next to the source checkout or in the
installed package's share directory (ament index), so the simulator's recorder, the bag player and the
training package's converter agree on the same definitions. Lives here, not in the training package, so the
runtime tools never import training code (``ove_ros.training.ros_types`` re-exports it).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "ove_ros"
EPISODE_EVENT = f"{PACKAGE}/msg/EpisodeEvent"
IMAGE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE = "sensor_msgs/msg/CompressedImage"
JOINT_STATE = "sensor_msgs/msg/JointState"
FLOAT64_ARRAY = "std_msgs/msg/Float64MultiArray"
FLOAT32_ARRAY = "std_msgs/msg/Float32MultiArray"

# EpisodeEvent constants (mirrors msg/EpisodeEvent.msg).
EVENT_START = 0
EVENT_END = 1
OUTCOME_UNKNOWN = 0
OUTCOME_SUCCESS = 1
OUTCOME_FAILURE = 2

MSG_DIR_ENV = "OVE_ROS_MSG_DIR"


def find_msg_dir() -> Path:
    """Directory holding this package's ``.msg`` files.

    Looked up in order: ``$OVE_ROS_MSG_DIR``, the source checkout (``<repo>/msg``), the ament index share
    directory of an installed ``ove_ros`` (``share/ove_ros/msg``).
    """
    candidates: list[Path] = []
    if os.environ.get(MSG_DIR_ENV):
        candidates.append(Path(os.environ[MSG_DIR_ENV]))
    candidates.append(Path(__file__).resolve().parents[1] / "msg")
    for path in candidates:
        if (path / "EpisodeEvent.msg").is_file():
            return path
    try:
        from ament_index_python.packages import get_package_share_directory

        share = Path(get_package_share_directory(PACKAGE)) / "msg"
    except (ImportError, LookupError, OSError):  # no ROS environment, or the package is not installed
        share = None
    if share is not None and (share / "EpisodeEvent.msg").is_file():
        return share
    candidates.append(share or Path(f"<ament index: share/{PACKAGE}/msg>"))
    raise FileNotFoundError(
        f"cannot find the {PACKAGE} message definitions (EpisodeEvent.msg); looked in "
        f"{[str(p) for p in candidates]}. Set {MSG_DIR_ENV} to the package's msg/ directory."
    )


def register_package_types(typestore: Typestore, msg_dir: str | Path | None = None) -> Typestore:
    """Register every ``<msg_dir>/*.msg`` as ``ove_ros/msg/<Name>`` in ``typestore`` and return it."""
    directory = Path(msg_dir) if msg_dir is not None else find_msg_dir()
    types: dict = {}
    for path in sorted(directory.glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(encoding="utf-8"), f"{PACKAGE}/msg/{path.stem}"))
    if not types:
        raise FileNotFoundError(f"no .msg files in {directory}")
    typestore.register(types)
    return typestore


def make_typestore(msg_dir: str | Path | None = None) -> Typestore:
    """A ROS 2 Kilted typestore with this package's messages registered."""
    return register_package_types(get_typestore(Stores.ROS2_KILTED), msg_dir)


def register_bag_types(typestore: Typestore, connections: Sequence) -> None:
    """Register message types that a bag defines and the typestore lacks (e.g. other packages' messages)."""
    types: dict = {}
    for conn in connections:
        if conn.msgtype in typestore.types or not conn.msgdef.data:
            continue
        if conn.msgdef.format.name != "MSG":
            continue  # IDL definitions are rare in bags; such a type is reported when it is needed
        types.update(get_types_from_msg(conn.msgdef.data, conn.msgtype))
    if types:
        typestore.register(types)


def has_header(typestore: Typestore, msgtype: str) -> bool:
    """Whether the message's first field is a ``std_msgs/Header`` (so its stamp can be read cheaply)."""
    fields = typestore.get_msgdef(msgtype).fields
    return bool(fields) and fields[0][0] == "header" and fields[0][1][1] == "std_msgs/msg/Header"


def peek_header_stamp(rawdata: bytes | memoryview) -> int:
    """Header stamp (ns) of a CDR message whose first field is a Header, without deserializing the rest."""
    if len(rawdata) < 12:
        raise ValueError(f"message of {len(rawdata)} bytes is too short for a header")
    order = "<" if rawdata[1] == 1 else ">"  # CDR encapsulation id: 0x0001 little endian, 0x0000 big endian
    sec, nanosec = struct.unpack_from(f"{order}iI", rawdata, 4)
    return sec * 1_000_000_000 + nanosec
