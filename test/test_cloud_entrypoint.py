# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The cloud entry point off the cloud: a local folder stands in for the buckets (``cloud.gcs_mount``, as
Vertex AI's /gcs mount), and a job killed after its first checkpoint resumes from the bucket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ove_ros.training import checkpoint as ckpt
from ove_ros.training.cloud import storage
from ove_ros.training.cloud.secrets import SecretError, resolve_secrets
from ove_ros.training.train import train

from dataset_fixtures import learnable_dataset, synthetic_dataset, tiny_config  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "training" / "configs" / "tiny.yaml")
# Generous: a tiny run on a busy 2-core machine; the waits end as soon as the awaited file appears.
WAIT_S = 600


def _step(checkpoint: Path) -> int:
    return int(ckpt.read_meta(checkpoint)["step"])


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_weights(checkpoint, use_ema=False)[0]


@pytest.fixture
def bucket(tmp_path, learnable_dataset):  # noqa: F811
    """``<tmp>/gcs`` standing in for /gcs, holding gs://bkt/datasets/ds (a copy of the learnable dataset)."""
    mount = tmp_path / "gcs"
    shutil.copytree(learnable_dataset, mount / "bkt" / "datasets" / "ds")
    return mount


def test_gs_uris_map_onto_the_mount():
    assert storage.gcs_path("gs://bkt/a/b/", "/gcs") == Path("/gcs/bkt/a/b")
    assert storage.gcs_path("relative/dir", "/gcs") == Path("relative/dir")


def test_mirror_lists_only_complete_copies_and_restore_takes_the_newest(tmp_path, learnable_dataset):  # noqa: F811
    cfg = tiny_config(
        tmp_path / "local",
        learnable_dataset,
        run_name="m",
        **{
            "training.steps": 4,
            "training.save_every": 2,
            "training.keep_last": 3,
            "training.val_every": 0,
            "training.warmup_steps": 1,
            "data.batch_size": 4,
        },
    )
    run = train(cfg).run_dir
    local = [p.relative_to(run).as_posix() for p in ckpt.list_checkpoints(run)]
    assert len(local) == 2
    remote = tmp_path / "bucket" / "m"
    assert storage.mirror_run(run, remote, keep_last=3) == local
    assert (remote / "metrics.jsonl").read_bytes() == (run / "metrics.jsonl").read_bytes()
    for rel in local:
        assert ckpt.is_checkpoint(remote / rel)
    assert storage.mirror_run(run, remote, keep_last=3) == local  # nothing new: nothing changes

    node = tmp_path / "node" / "m"
    assert storage.restore_run(remote, node) == local[-1]
    restored = ckpt.latest_checkpoint(node)
    assert restored is not None and _step(restored) == 4
    for key, value in _weights(run / local[-1]).items():
        assert torch.equal(value, _weights(restored)[key])

    # A copy cut short by a pre-emption is not in the manifest: the restore falls back to the previous one.
    ckpt.atomic_write_json(remote / storage.MANIFEST, {"checkpoints": local[:1]})
    node2 = tmp_path / "node2" / "m"
    assert storage.restore_run(remote, node2) == local[0]
    assert _step(ckpt.latest_checkpoint(node2)) == 2

    # The bucket keeps the newest keep_last checkpoints.
    ckpt.atomic_write_json(remote / storage.MANIFEST, {"checkpoints": local})
    assert storage.mirror_run(run, remote, keep_last=1) == local[-1:]
    assert not (remote / local[0]).exists() and ckpt.is_checkpoint(remote / local[-1])
    assert storage.restore_run(tmp_path / "bucket" / "empty", tmp_path / "node3") is None


def test_secret_references_become_environment_variables(tmp_path):
    (tmp_path / "hf").write_text("hf_secret_value\n")
    env = {
        "OVE_SECRET_HF_TOKEN": f"file:{tmp_path / 'hf'}",
        "OVE_SECRET_WANDB_API_KEY": "file:/x",
        "WANDB_API_KEY": "already-set",
    }
    assert resolve_secrets(env) == ["HF_TOKEN"]
    assert env["HF_TOKEN"] == "hf_secret_value" and env["WANDB_API_KEY"] == "already-set"
    with pytest.raises(SecretError, match="does not exist"):
        resolve_secrets({"OVE_SECRET_X": f"file:{tmp_path / 'missing'}"})
    with pytest.raises(SecretError, match="neither"):
        resolve_secrets({"OVE_SECRET_X": "plain-value"})


def _entrypoint(mode, bucket, node_dir, *args, env_extra=None):
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONUNBUFFERED="1", **(env_extra or {}))
    env.pop("CLUSTER_SPEC", None)
    cmd = [
        sys.executable,
        "-m",
        "ove_ros.training.cloud.entrypoint",
        mode,
        f"config={TINY}",
        "data.root=gs://bkt/datasets/ds",
        "data.repo_id=synthetic/values",
        "data.num_workers=0",
        "cloud.output_uri=gs://bkt/runs",
        f"cloud.gcs_mount={bucket}",
        f"cloud.local_dir={node_dir}",
        "cloud.sync_every_s=0.1",
        "wandb.mode=disabled",
        "training.num_threads=1",
        "training.log_every=1",
        *args,
    ]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _finish(proc):
    out, _ = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, out[-4000:]
    return out


def _wait_for(path, proc, limit=WAIT_S):
    deadline = time.monotonic() + limit
    while not path.is_file():
        if proc.poll() is not None:
            out = proc.stdout.read()
            pytest.fail(f"the job ended (status {proc.returncode}) before {path} appeared:\n{out[-4000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{path} did not appear within {limit} s")
        time.sleep(0.05)


def _restore_event(out):
    events = [json.loads(line) for line in out.splitlines() if line.startswith('{"event": "restore"')]
    assert len(events) == 1, out[-4000:]
    return events[0]


RUN = [
    "run_name=pre",
    "training.steps=40",
    "training.save_every=5",
    "training.keep_last=2",
    "training.val_every=0",
    "training.warmup_steps=2",
    "training.ema_decay=0.9",
    "data.batch_size=4",
]


def test_a_killed_job_restarts_from_the_newest_bucket_checkpoint(tmp_path, bucket):
    remote_run = bucket / "bkt" / "runs" / "ove_ros" / "pre"
    manifest = remote_run / storage.MANIFEST

    # First node: killed outright (SIGKILL to the whole process group, like a lost VM) once the bucket
    # holds its first checkpoint.
    first = _entrypoint("train", bucket, tmp_path / "node1", *RUN)
    _wait_for(manifest, first)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=WAIT_S)
    first.stdout.close()
    synced = storage.read_manifest(remote_run)
    assert synced, "the manifest lists no checkpoint"
    killed_at = _step(remote_run / synced[-1])
    assert 5 <= killed_at < 40, f"the first job was not interrupted mid-run (newest checkpoint {killed_at})"
    local_records = [
        json.loads(x)
        for x in (tmp_path / "node1" / "outputs" / "ove_ros" / "pre" / "metrics.jsonl")
        .read_text()
        .splitlines()
    ]
    assert max(r["step"] for r in local_records) < 40

    # Restarted job on a fresh node: restores that checkpoint and runs to the end.
    out = _finish(_entrypoint("train", bucket, tmp_path / "node2", *RUN))
    event = _restore_event(out)
    assert event["checkpoint"] == synced[-1]
    assert f"at step {killed_at}" in out  # ove_ros.training.train's "resuming <ckpt> at step N"
    final = remote_run / storage.read_manifest(remote_run)[-1]
    assert _step(final) == 40
    records = [json.loads(x) for x in (remote_run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["split"] == "train"]
    assert steps == list(range(1, 41))  # no step lost or logged twice in the bucket's metrics

    # Same weights as a run that was never interrupted.
    whole = tiny_config(
        tmp_path / "whole",
        bucket / "bkt" / "datasets" / "ds",
        **{k: v for k, v in (a.split("=", 1) for a in RUN)},
    )
    result = train(whole)
    reference = _weights(result.checkpoint)
    resumed = _weights(final)
    for key, value in reference.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=1e-6, msg=key)


def test_eval_mode_reads_the_bucket_run_and_copies_the_report_back(tmp_path, bucket):
    _finish(
        _entrypoint(
            "train",
            bucket,
            tmp_path / "node",
            "run_name=ev",
            "training.steps=3",
            "training.save_every=3",
            "training.val_every=0",
            "training.warmup_steps=1",
            "data.batch_size=4",
        )
    )
    remote_run = bucket / "bkt" / "runs" / "ove_ros" / "ev"
    newest = remote_run / storage.read_manifest(remote_run)[-1]
    out = _finish(
        _entrypoint(
            "eval",
            bucket,
            tmp_path / "eval_node",
            "run_name=ev",
            "evaluate.checkpoint=gs://bkt/runs/ove_ros/ev",
            "evaluate.split=all",
            "evaluate.plot_episodes=0",
            "evaluate.video_episodes=0",
        )
    )
    report = remote_run / "eval" / newest.name / "metrics.json"
    assert report.is_file(), out[-3000:]
    metrics = json.loads(report.read_text())
    assert "ev" in json.dumps(metrics) and "loss" in json.dumps(metrics)


def test_node_config_points_every_gs_uri_at_the_mount_and_keeps_outputs_local(tmp_path, bucket):
    import yaml

    from ove_ros.training.cloud.config import load_cloud_cli
    from ove_ros.training.cloud.entrypoint import node_config

    cli = load_cloud_cli(
        [
            f"config={TINY}",
            "run_name=n",
            "data.root=gs://bkt/datasets/ds",
            "model.init_from=gs://bkt/bundles/b1",
            "model.pretrained_vision=gs://bkt/weights/siglip",
            f"cloud.gcs_mount={bucket}",
            f"cloud.local_dir={tmp_path / 'node'}",
            "cloud.copy_dataset=false",
        ]
    )
    written = yaml.safe_load(node_config(cli.config, cli.cloud, **{"training.resume": True}).read_text())
    assert written["model"]["init_from"] == str(bucket / "bkt" / "bundles" / "b1")
    assert written["model"]["pretrained_vision"] == str(bucket / "bkt" / "weights" / "siglip")
    assert written["data"]["root"] == str(bucket / "bkt" / "datasets" / "ds")  # read through the mount
    assert written["output_root"] == str(tmp_path / "node" / "outputs")
    assert written["training"]["resume"] is True


def test_launcher_without_the_sdk_says_how_to_install_it(tmp_path):
    # The SDK made unimportable for this one process (None in sys.modules blocks the import).
    code = (
        "import sys; sys.modules['google.cloud.aiplatform_v1'] = None; "
        "from ove_ros.training.cloud.launch import main; main(sys.argv[1:])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, f"config={TINY}", "run_name=r", f"cloud.request_dir={tmp_path}"],
        cwd=REPO, env=dict(os.environ, NO_GCE_CHECK="True"), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: google-cloud-aiplatform is not installed: pip install 'ove_ros[cloud]' (or "
        "pip install google-cloud-aiplatform)"
    )
    assert list(tmp_path.iterdir()) == []


def test_sigterm_reaches_training_and_the_last_checkpoint_is_copied_first(tmp_path, bucket):
    remote_run = bucket / "bkt" / "runs" / "ove_ros" / "pre"
    job = _entrypoint("train", bucket, tmp_path / "node", *RUN)
    _wait_for(remote_run / storage.MANIFEST, job)
    job.send_signal(signal.SIGTERM)  # to the entry point only, as Vertex AI signals the container
    out, _ = job.communicate(timeout=WAIT_S)
    assert job.returncode == 128 + signal.SIGTERM, out[-4000:]
    with pytest.raises(ProcessLookupError):  # the training process ended too: nothing is left behind
        os.killpg(job.pid, 0)
    local_run = tmp_path / "node" / "outputs" / "ove_ros" / "pre"
    newest_local = ckpt.latest_checkpoint(local_run)
    assert storage.read_manifest(remote_run)[-1] == newest_local.relative_to(local_run).as_posix()
    assert _step(newest_local) < 40


def test_a_missing_dataset_or_secret_is_one_error_line(tmp_path, bucket):
    job = _entrypoint("train", bucket, tmp_path / "node", "run_name=x", "data.root=gs://bkt/datasets/nope")
    out, _ = job.communicate(timeout=WAIT_S)
    assert job.returncode == 1
    assert out.strip().splitlines()[-1] == (
        f"error: data.root='gs://bkt/datasets/nope': dataset {bucket}/bkt/datasets/nope does not exist "
        "(is the bucket path right?)"
    )
    job = _entrypoint("train", bucket, tmp_path / "node", "run_name=x",
                      env_extra={"OVE_SECRET_HF_TOKEN": f"file:{tmp_path}/absent", "HF_TOKEN": ""})
    out, _ = job.communicate(timeout=WAIT_S)
    assert job.returncode == 1
    assert out.strip().splitlines()[-1] == f"error: secret file {tmp_path}/absent does not exist"
