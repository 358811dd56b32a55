# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""What a cloud job runs on each node (the training image's command)::

    python -m ove_ros.training.cloud.entrypoint train|eval|sweep cloud.output_uri=gs://... [key=value ...]

The training config comes from the ``OVE_TRAIN_CONFIG`` environment variable (the launcher's resolved
config) or from ``config=<file>``. Steps: resolve ``OVE_SECRET_*`` references; copy (or mount) the gs://
dataset; restore the newest checkpoint of ``<output_uri>/<project>/<run_name>`` onto the node's disk;
run ``ove_ros.training.train`` with ``training.resume=true`` (accelerate launch across GPUs and nodes);
copy every
completed checkpoint to the bucket while it runs. A pre-empted job that Vertex AI restarts thus loses at
most ``training.save_every`` steps. Off the cloud, ``cloud.gcs_mount`` points at a local folder standing in
for the buckets.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ove_ros.training.checkpoint import atomic_write_text
from ove_ros.training.cloud import storage
from ove_ros.training.cloud.cluster import Node, node_from_cluster_spec, train_command
from ove_ros.training.cloud.config import CloudCli, CloudConfig, is_gcs, load_cloud_cli
from ove_ros.training.cloud.jobs import CONFIG_ENV, MODES
from ove_ros.training.cloud.secrets import SecretError, resolve_secrets
from ove_ros.training.config import Config, ConfigError

logger = logging.getLogger("ove_ros.training.cloud.entrypoint")


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_dataset(cfg: Config, cloud: CloudConfig) -> str | None:
    """The dataset path this node reads: a local copy of the gs:// root, or its mount path."""
    root = cfg.data.root
    if not root or not is_gcs(root):
        return root
    mounted = storage.gcs_path(root, cloud.gcs_mount)
    if not cloud.copy_dataset:
        return str(mounted)
    try:
        return str(storage.copy_dataset(mounted, Path(cloud.local_dir) / "data" / mounted.name))
    except FileNotFoundError as exc:
        raise ConfigError(f"data.root={root!r}: {exc}") from None


def remote_project_dir(cfg: Config, cloud: CloudConfig) -> Path:
    """``<output_uri>/<project>`` under the bucket mount: the runs' directories go below it."""
    if not cloud.output_uri:
        raise ConfigError("cloud.output_uri is not set: the job has nowhere to keep its outputs")
    return storage.gcs_path(cloud.output_uri, cloud.gcs_mount) / cfg.project


def _mounted(value: Any, mount: str) -> Any:
    """Every gs:// string of a config tree as its path under the bucket mount."""
    if isinstance(value, dict):
        return {k: _mounted(v, mount) for k, v in value.items()}
    if isinstance(value, list):
        return [_mounted(v, mount) for v in value]
    if isinstance(value, str) and is_gcs(value):
        return str(storage.gcs_path(value, mount))
    return value


def node_config(cfg: Config, cloud: CloudConfig, **changes: Any) -> Path:
    """Write the config this node runs with (local paths) and return its path."""
    data = _mounted(cfg.to_dict(), cloud.gcs_mount)  # gs:// weights, tokenizer, init/resume checkpoints
    data["output_root"] = str(Path(cloud.local_dir) / "outputs")
    data["data"]["root"] = local_dataset(cfg, cloud)
    data["data"]["cache_dir"] = str(Path(cloud.local_dir) / "cache")
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    from omegaconf import OmegaConf

    path = Path(cloud.local_dir) / f"config_{os.getpid()}.yaml"
    atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(data)))
    return path


class Child:
    """The training process; SIGTERM (Vertex AI's pre-emption notice) is passed on to it."""

    def __init__(self, cmd: list[str]) -> None:
        logger.info("running %s", " ".join(cmd))
        self.proc = subprocess.Popen(cmd)
        self._old = signal.signal(signal.SIGTERM, self._forward)

    def _forward(self, signum: int, frame: Any) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        """Stop forwarding; a child still running (the entry point itself failed) is terminated."""
        signal.signal(signal.SIGTERM, self._old)
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def exit_status(code: int) -> int:
    """A child killed by signal N (Popen: -N) exits like a shell reports it: 128 + N."""
    return code if code >= 0 else 128 - code


def run_and_mirror(
    cmd: list[str], local_root: Path, remote_root: Path, every_s: float, keep_last: int, mirror: bool
) -> int:
    """Run ``cmd``; meanwhile, and once more when it has ended, copy every run directory under
    ``local_root`` (only the primary node: ``mirror``). Returns the child's exit status."""

    def sync() -> None:
        if mirror and local_root.is_dir():
            for run in sorted(p for p in local_root.iterdir() if p.is_dir()):
                storage.mirror_run(run, remote_root / run.name, keep_last)

    child = Child(cmd)
    try:
        while (code := child.wait(every_s)) is None:
            sync()
    finally:
        child.close()
    sync()  # what the child wrote last, also after a forwarded SIGTERM
    return exit_status(code)


def train_mode(cli: CloudCli, node: Node) -> int:
    cfg, cloud = cli.config, cli.cloud
    run_name = str(cfg.run_name)
    remote = remote_project_dir(cfg, cloud) / run_name
    local_root = Path(cloud.local_dir) / "outputs" / cfg.project
    restored = storage.restore_run(remote, local_root / run_name)
    print(json.dumps({"event": "restore", "checkpoint": restored, "node": node.rank}), flush=True)
    path = node_config(cfg, cloud, **{"training.resume": True})
    cmd = train_command(path, node, gpu_count(), cloud.main_process_port)
    return run_and_mirror(
        cmd, local_root, remote.parent, cloud.sync_every_s, cfg.training.keep_last, node.is_primary
    )


def eval_mode(cli: CloudCli) -> int:
    cfg, cloud = cli.config, cli.cloud
    if not cfg.evaluate.checkpoint:
        raise ConfigError("evaluate.checkpoint is not set: name a gs:// checkpoint or run directory")
    checkpoint = storage.gcs_path(cfg.evaluate.checkpoint, cloud.gcs_mount)
    synced = storage.read_manifest(checkpoint)  # a run directory the entry point filled
    if synced:
        checkpoint = checkpoint / synced[-1]
    out = Path(cloud.local_dir) / "eval" / checkpoint.name
    path = node_config(
        cfg, cloud, **{"evaluate.checkpoint": str(checkpoint), "evaluate.output_dir": str(out)}
    )
    code = subprocess.call([sys.executable, "-m", "ove_ros.training.evaluate", f"config={path}"])
    if code == 0:
        dest = remote_project_dir(cfg, cloud) / str(cfg.run_name) / "eval" / checkpoint.name
        storage.copy_tree(out, dest)
        print(json.dumps({"event": "eval", "report": str(dest)}), flush=True)
    return code


def sweep_mode(cli: CloudCli) -> int:
    cfg, cloud = cli.config, cli.cloud
    if not cfg.sweep.wandb_sweep_id:
        raise ConfigError("sweep.wandb_sweep_id is not set: agents join an existing W&B sweep")
    path = node_config(cfg, cloud)
    local_root = Path(cloud.local_dir) / "outputs" / cfg.project
    remote_root = remote_project_dir(cfg, cloud)
    cmd = [sys.executable, "-m", "ove_ros.training.sweep", "--backend", "wandb", f"config={path}"]
    return run_and_mirror(cmd, local_root, remote_root, cloud.sync_every_s, cfg.training.keep_last, True)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in MODES:
        raise SystemExit(
            f"usage: python -m ove_ros.training.cloud.entrypoint {{{'|'.join(MODES)}}} [key=value ...]"
        )
    mode, rest = argv[0], argv[1:]
    try:
        set_vars = resolve_secrets()
        if set_vars:
            logger.info("credentials from secret references: %s", ", ".join(set_vars))
        cli = load_cloud_cli(rest, require_run_name=mode != "sweep", config_yaml=os.environ.get(CONFIG_ENV))
        Path(cli.cloud.local_dir).mkdir(parents=True, exist_ok=True)
        if mode == "train":
            code = train_mode(cli, node_from_cluster_spec(os.environ.get("CLUSTER_SPEC")))
        elif mode == "eval":
            code = eval_mode(cli)
        else:
            code = sweep_mode(cli)
    except (ConfigError, SecretError) as exc:
        raise SystemExit(f"error: {exc}") from None
    sys.exit(code)


if __name__ == "__main__":
    main()
