# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Which node this is, and the command that starts training on it.

Vertex AI describes a multi-node job to each replica in the ``CLUSTER_SPEC`` environment variable::

    {"cluster": {"workerpool0": ["host0:2222"], "workerpool1": ["host1:2222", "host2:2222"]},
     "task": {"type": "workerpool1", "index": 0}, ...}

Pool 0 holds the primary node (machine rank 0); pool 1's replica ``i`` is machine rank ``i + 1``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

ACCELERATE_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


@dataclass(frozen=True)
class Node:
    """This node's place in the job."""

    rank: int = 0
    count: int = 1
    main_host: str = "127.0.0.1"

    @property
    def is_primary(self) -> bool:
        return self.rank == 0


def node_from_cluster_spec(spec: str | None) -> Node:
    """Parse ``CLUSTER_SPEC`` (absent or one node: a single-node job)."""
    if not spec:
        return Node()
    try:
        data = json.loads(spec)
        cluster, task = data["cluster"], data["task"]
        primary = cluster["workerpool0"][0]
        workers = cluster.get("workerpool1", [])
        pool, index = task["type"], int(task.get("index", 0))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"CLUSTER_SPEC is not a Vertex AI cluster description: {exc!r}") from exc
    if pool not in ("workerpool0", "workerpool1"):
        raise ValueError(f"CLUSTER_SPEC task type {pool!r}: only workerpool0 and workerpool1 train")
    rank = 0 if pool == "workerpool0" else index + 1
    return Node(rank=rank, count=1 + len(workers), main_host=primary.rsplit(":", 1)[0])


def train_command(config_path: Path, node: Node, gpus_per_node: int, port: int) -> list[str]:
    """``python -m ove_ros.training.train`` for one process; accelerate launch for several GPUs or nodes."""
    target = ["-m", "ove_ros.training.train", f"config={config_path}"]
    processes = max(1, gpus_per_node) * node.count
    if processes == 1:
        return [sys.executable, *target]
    launch = [sys.executable, "-m", "accelerate.commands.launch"]
    if node.count == 1:
        return [
            *launch,
            "--config_file",
            str(ACCELERATE_CONFIGS / "one_node.yaml"),
            "--num_processes",
            str(processes),
            "--main_process_port",
            str(port),
            *target,
        ]
    return [
        *launch, "--config_file", str(ACCELERATE_CONFIGS / "multi_node.yaml"),
        "--num_machines", str(node.count), "--num_processes", str(processes),
        "--machine_rank", str(node.rank), "--main_process_ip", node.main_host,
        "--main_process_port", str(port), *target,
    ]  # fmt: skip
