# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Run directories between a node's disk and the output bucket.

Vertex AI mounts every bucket the job may read at ``/gcs/<bucket>`` (Cloud Storage FUSE), so ``gs://b/p`` is
the path ``/gcs/b/p``. Training writes to the node's disk (checkpoints are assembled by directory renames,
which the bucket mount does not support) and the entry point copies each completed checkpoint to the
bucket. ``sync.json`` in the bucket's run directory lists the checkpoints whose copy finished; it is
rewritten (file rename) after a copy, so a pre-emption mid-copy never makes a partial checkpoint look
complete. A restarted job copies the newest listed checkpoint back and resumes from it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from ove_ros.training import checkpoint as ckpt

logger = logging.getLogger("ove_ros.training.cloud.storage")

MANIFEST = "sync.json"


def gcs_path(uri: str, mount: str | Path) -> Path:
    """``gs://bucket/path`` -> ``<mount>/bucket/path``; other values are local paths already."""
    if uri.startswith("gs://"):
        return Path(mount) / uri[len("gs://") :].strip("/")
    return Path(uri)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a file or directory tree (files written beside their final name, then renamed)."""
    if src.is_dir():
        dst.mkdir(parents=True, exist_ok=True)
        # The checkpoint's metadata file last: it is what marks a checkpoint directory complete.
        for child in sorted(src.iterdir(), key=lambda c: (c.name == ckpt.META_FILE, c.name)):
            copy_tree(child, dst / child.name)
    else:
        ckpt.atomic_save_file(dst, lambda tmp: shutil.copyfile(src, tmp), suffix=src.suffix)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
        if path.suffix == ".safetensors":
            shutil.rmtree(ckpt.state_dir(path), ignore_errors=True)


def _copy_checkpoint(src: Path, dst: Path) -> None:
    """One checkpoint: an older step folder, or a weights file with its state folder (copied first, so a
    listed weights file always has its state)."""
    if src.is_file():
        copy_tree(ckpt.state_dir(src), ckpt.state_dir(dst))
    copy_tree(src, dst)


def _is_run_file(item: Path) -> bool:
    """Run-level files the bucket mirrors besides the checkpoints (config, metrics, W&B id, tokenizer)."""
    if item.name.startswith("."):
        return False
    if item.is_dir():
        return item.name == ckpt.TOKENIZER_DIR
    return not (item.name.startswith("checkpoint_") and item.suffix == ".safetensors")


def read_manifest(remote_run: Path) -> list[str]:
    """Run-relative paths of the checkpoints completely copied to the bucket, oldest first."""
    path = Path(remote_run) / MANIFEST
    if not path.is_file():
        return []
    return list(json.loads(path.read_text()).get("checkpoints", []))


def mirror_run(local_run: Path, remote_run: Path, keep_last: int = 0) -> list[str]:
    """Copy the run's files and its new completed checkpoints to the bucket, keeping the newest
    ``keep_last`` there (0 = all). Returns the manifest (run-relative checkpoint paths, oldest first).
    """
    local_run, remote_run = Path(local_run), Path(remote_run)
    if not local_run.is_dir():
        return read_manifest(remote_run)
    synced = read_manifest(remote_run)
    local = [p.relative_to(local_run).as_posix() for p in ckpt.list_checkpoints(local_run)]
    new = []
    for rel in (rel for rel in local if rel not in synced):
        try:
            _copy_checkpoint(local_run / rel, remote_run / rel)
        except FileNotFoundError:  # training pruned it while it was being copied
            _remove(remote_run / rel)
            continue
        new.append(rel)
    # Run-level files (config, metrics, W&B run id) follow the checkpoints they describe.
    for item in sorted(local_run.iterdir()):
        if _is_run_file(item):
            copy_tree(item, remote_run / item.name)
    kept = synced + new
    if keep_last > 0:
        kept = kept[-keep_last:]
    if kept != synced:
        ckpt.atomic_write_json(remote_run / MANIFEST, {"checkpoints": kept})
        for rel in synced:
            if rel not in kept:
                _remove(remote_run / rel)
    if new:
        logger.info("copied checkpoint(s) %s to %s", new, remote_run)
    return kept


def restore_run(remote_run: Path, local_run: Path) -> str | None:
    """Copy the newest completely copied checkpoint and the run's files to the node's disk.

    Returns the run-relative path of the restored checkpoint, or None when the bucket holds none.
    """
    remote_run, local_run = Path(remote_run), Path(local_run)
    synced = [rel for rel in read_manifest(remote_run) if (remote_run / rel).exists()]
    if not synced:
        return None
    newest = synced[-1]
    for item in sorted(remote_run.iterdir()):  # a node's own files (same VM restarted) are at least as new
        if _is_run_file(item) and item.name != MANIFEST:
            if not (local_run / item.name).exists():
                copy_tree(item, local_run / item.name)
    if not (local_run / newest).exists():
        _copy_checkpoint(remote_run / newest, local_run / newest)
    logger.info("restored %s from %s", newest, remote_run)
    return newest


def copy_dataset(remote: Path, local: Path) -> Path:
    """Copy a dataset directory once per node (a marker file says the copy finished)."""
    marker = local / ".ove_copy_complete"
    if marker.is_file():
        return local
    if not remote.is_dir():
        raise FileNotFoundError(f"dataset {remote} does not exist (is the bucket path right?)")
    _remove(local)
    copy_tree(remote, local)
    marker.write_text(str(remote) + "\n")
    return local
