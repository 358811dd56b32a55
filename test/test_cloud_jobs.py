# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Cloud launchers: the Vertex AI requests they build (SDK types, field by field), the dry run and the
missing-credentials report. No cloud is reachable here: nothing is submitted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ove_ros.training.cloud.cluster import ACCELERATE_CONFIGS, Node, node_from_cluster_spec, train_command
from ove_ros.training.cloud.config import CloudConfig, load_cloud_cli, secret_resource
from ove_ros.training.config import ConfigError

v1 = pytest.importorskip(
    "google.cloud.aiplatform_v1",
    reason="google-cloud-aiplatform is not installed (pip install 'ove_ros[cloud]'); the requests need it",
)

from ove_ros.training.cloud import eval as cloud_eval  # noqa: E402
from ove_ros.training.cloud import launch, sweep  # noqa: E402
from ove_ros.training.cloud.jobs import CONFIG_ENV, custom_job, request_json  # noqa: E402
from ove_ros.training.cloud.submit import NO_CREDENTIALS, Credentials, common_missing, find_credentials  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "training" / "configs" / "tiny.yaml")
READY = [
    "cloud.project=proj-1",
    "cloud.region=europe-west4",
    "cloud.image_uri=europe-docker.pkg.dev/proj-1/ove/train:3",
    "cloud.staging_bucket=gs://bkt/staging",
    "cloud.output_uri=gs://bkt/runs",
    "cloud.service_account=trainer@proj-1.iam.gserviceaccount.com",
    "data.root=gs://bkt/datasets/pick",
]


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """An environment in which google.auth finds no credentials (and does not probe a metadata server)."""
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))
    return dict(os.environ)


@pytest.fixture
def service_account_key(tmp_path, monkeypatch):
    """A well-formed service-account key file (its own fresh RSA key; never valid at Google)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    path = tmp_path / "key.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "key-project",
                "private_key_id": "0" * 40,
                "private_key": pem,
                "client_email": "trainer@key-project.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    return path


def _cli(*args, require_run_name=True):
    return load_cloud_cli([f"config={TINY}", *args], require_run_name=require_run_name)


# ------------------------------------------------------------------------------------------------ config


def test_cloud_keys_come_from_the_yaml_section_and_the_command_line(tmp_path):
    base = yaml.safe_load(Path(TINY).read_text())
    base["cloud"] = {"machine_type": "a3-highgpu-8g", "accelerator_count": 8, "labels": {"team": "arm"}}
    path = tmp_path / "with_cloud.yaml"
    path.write_text(yaml.safe_dump(base))
    cli = load_cloud_cli(
        [f"config={path}", "run_name=r", "cloud.accelerator_count=4", "data.batch_size=7", "--dry-run"]
    )
    assert cli.cloud.machine_type == "a3-highgpu-8g"
    assert cli.cloud.accelerator_count == 4  # the command line wins over the file
    assert cli.cloud.labels == {"team": "arm"}
    assert cli.config.data.batch_size == 7 and cli.dry_run
    assert cli.cloud.region == CloudConfig().region  # untouched keys keep their single default


def test_the_remote_side_rebuilds_the_same_settings_from_the_job_arguments():
    cli = _cli("run_name=r", "cloud.env.OMP_NUM_THREADS=4", "cloud.spot=true", "data.batch_size=3")
    again = load_cloud_cli(cli.cloud.to_args(), config_yaml=cli.config.to_yaml())
    assert again.cloud == cli.cloud
    assert again.config == cli.config


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["cloud.output_uri=/local/out"], "must be a gs:// URI"),
        (["cloud.replica_count=0"], "replica_count"),
        (["cloud.env.HF_TOKEN=abc"], "Secret Manager"),
        (["cloud.hf_token_secret=hf_" + "a" * 34], "looks like the credential itself"),
        (["cloud.wandb_api_key_secret=bad/ref"], "secret reference"),
        (["cloud.no_such_key=1"], "no_such_key"),
        (["data.no_such_key=1"], "no_such_key"),
        (["training.steps=many"], "steps"),
    ],
)
def test_bad_cloud_settings_are_rejected_by_name(args, words):
    with pytest.raises(ConfigError, match=words.replace("/", ".")):
        _cli("run_name=r", *args)


def test_secret_references_expand_to_full_resource_names():
    assert secret_resource("hf-token", "p") == "projects/p/secrets/hf-token/versions/latest"
    assert secret_resource("hf-token:3", "p") == "projects/p/secrets/hf-token/versions/3"
    full = "projects/other/secrets/wandb/versions/7"
    assert secret_resource(full, "p") == full


# ---------------------------------------------------------------------------------------------- requests


def test_training_request_is_built_from_sdk_types_field_by_field():
    cli = _cli(
        "run_name=big_run",
        *READY,
        "cloud.machine_type=a3-highgpu-8g",
        "cloud.accelerator_type=NVIDIA_H100_80GB",
        "cloud.accelerator_count=8",
        "cloud.replica_count=3",
        "cloud.spot=true",
        "cloud.timeout_hours=12",
        "cloud.boot_disk_size_gb=500",
        "cloud.hf_token_secret=hf-token",
        "cloud.wandb_api_key_secret=projects/secrets-proj/secrets/wandb/versions/2",
        "cloud.env.NCCL_DEBUG=WARN",
        "cloud.labels.team=arm",
    )
    plans, missing = launch.build(cli, "proj-1")
    assert missing == [] and len(plans) == 1
    request = plans[0].request
    assert isinstance(request, v1.CreateCustomJobRequest)
    assert request.parent == "projects/proj-1/locations/europe-west4"
    job = request.custom_job
    assert isinstance(job, v1.CustomJob)
    assert job.display_name == "ove-train-big_run"
    assert dict(job.labels) == {"ove_ros": "train", "run": "big_run", "team": "arm"}
    spec = job.job_spec
    assert isinstance(spec, v1.CustomJobSpec)
    assert spec.service_account == "trainer@proj-1.iam.gserviceaccount.com"
    assert spec.base_output_directory.output_uri_prefix == "gs://bkt/staging/ove-train-big_run"
    assert spec.scheduling.strategy == v1.Scheduling.Strategy.SPOT
    assert spec.scheduling.restart_job_on_worker_restart is True
    assert spec.scheduling.timeout.total_seconds() == 12 * 3600
    pools = list(spec.worker_pool_specs)
    assert [p.replica_count for p in pools] == [1, 2]  # primary + 2 workers = 3 nodes
    for pool in pools:
        assert isinstance(pool, v1.WorkerPoolSpec)
        m = pool.machine_spec
        assert isinstance(m, v1.MachineSpec)
        assert (m.machine_type, m.accelerator_type, m.accelerator_count) == (
            "a3-highgpu-8g",
            v1.AcceleratorType.NVIDIA_H100_80GB,
            8,
        )
        assert (pool.disk_spec.boot_disk_type, pool.disk_spec.boot_disk_size_gb) == ("pd-ssd", 500)
        c = pool.container_spec
        assert isinstance(c, v1.ContainerSpec)
        assert c.image_uri == "europe-docker.pkg.dev/proj-1/ove/train:3"
        assert list(c.command) == ["python", "-m", "ove_ros.training.cloud.entrypoint"]
        assert c.args[0] == "train"
        assert "cloud.output_uri=gs://bkt/runs" in c.args
        env = {e.name: e.value for e in c.env}
        assert env["OVE_SECRET_HF_TOKEN"] == "projects/proj-1/secrets/hf-token/versions/latest"
        assert env["OVE_SECRET_WANDB_API_KEY"] == "projects/secrets-proj/secrets/wandb/versions/2"
        assert env["NCCL_DEBUG"] == "WARN"
        assert "HF_TOKEN" not in env and "WANDB_API_KEY" not in env  # references only, never values
        carried = yaml.safe_load(env[CONFIG_ENV])
        assert carried["run_name"] == "big_run" and carried["data"]["root"] == "gs://bkt/datasets/pick"
    # The remote entry point parses exactly these arguments and this config back.
    c = pools[0].container_spec
    remote = load_cloud_cli(list(c.args[1:]), config_yaml=env[CONFIG_ENV])
    assert remote.config == cli.config
    assert remote.cloud.output_uri == "gs://bkt/runs"
    # The JSON is the SDK's own serialization of this request and parses back to it.
    assert v1.CreateCustomJobRequest.from_json(request_json(request)) == request


def test_cpu_only_jobs_carry_no_accelerator_and_default_scheduling():
    job = custom_job(
        "train", _cli("run_name=r", "cloud.accelerator_type=NONE").cloud, _cli("run_name=r").config, "r", "p"
    )
    pool = job.job_spec.worker_pool_specs[0]
    assert pool.machine_spec.accelerator_type == v1.AcceleratorType.ACCELERATOR_TYPE_UNSPECIFIED
    assert pool.machine_spec.accelerator_count == 0
    assert len(job.job_spec.worker_pool_specs) == 1
    assert job.job_spec.scheduling.strategy == v1.Scheduling.Strategy.ON_DEMAND
    with pytest.raises(ConfigError, match="accelerator_type"):
        custom_job(
            "train",
            _cli("run_name=r", "cloud.accelerator_type=GTX_480").cloud,
            _cli("run_name=r").config,
            "r",
            "p",
        )


def test_eval_request_runs_the_evaluation_mode_on_one_node():
    cli = _cli("run_name=r1", *READY, "cloud.replica_count=4", "evaluate.checkpoint=gs://bkt/runs/ove_ros/r1")
    plans, missing = cloud_eval.build(cli, "proj-1")
    assert missing == []
    job = plans[0].request.custom_job
    assert job.display_name == "ove-eval-r1"
    assert [p.replica_count for p in job.job_spec.worker_pool_specs] == [1]
    args = list(job.job_spec.worker_pool_specs[0].container_spec.args)
    assert args[0] == "eval"
    env = {e.name: e.value for e in job.job_spec.worker_pool_specs[0].container_spec.env}
    assert yaml.safe_load(env[CONFIG_ENV])["evaluate"]["checkpoint"] == "gs://bkt/runs/ove_ros/r1"
    _, missing = cloud_eval.build(_cli("run_name=r1", *READY, "evaluate.checkpoint=outputs/x"), "proj-1")
    assert len(missing) == 1 and "evaluate.checkpoint" in missing[0]


def test_sweep_submits_n_agent_jobs_joining_one_sweep():
    cli = _cli(
        *READY,
        "sweep.wandb_sweep_id=ent/proj/abc123",
        "cloud.sweep_agents=3",
        "cloud.wandb_api_key_secret=wandb-key",
        require_run_name=False,
    )
    plans, missing = sweep.build(cli, "proj-1")
    assert missing == []
    assert [p.request.custom_job.display_name for p in plans] == [
        f"ove-sweep-abc123-agent{i}" for i in range(3)
    ]
    for plan in plans:
        c = plan.request.custom_job.job_spec.worker_pool_specs[0].container_spec
        assert c.args[0] == "sweep" and c.args[-1] == "sweep.wandb_sweep_id=ent/proj/abc123"
        env = {e.name: e.value for e in c.env}
        assert env["OVE_SECRET_WANDB_API_KEY"] == "projects/proj-1/secrets/wandb-key/versions/latest"
    _, missing = sweep.build(_cli(*READY, require_run_name=False), "proj-1")
    assert any("sweep.wandb_sweep_id" in m for m in missing)
    assert any("wandb_api_key_secret" in m for m in missing)


# ------------------------------------------------------------------------------------- credentials, cli


def test_without_credentials_the_problem_is_named(no_credentials):
    creds = find_credentials()
    assert creds.credentials is None and creds.problem.startswith(NO_CREDENTIALS)


def test_a_service_account_key_provides_credentials_and_project(service_account_key):
    creds = find_credentials()
    assert creds.problem is None and creds.project == "key-project"
    assert creds.credentials.service_account_email == "trainer@key-project.iam.gserviceaccount.com"
    cli = _cli("run_name=r", *READY[1:])  # no cloud.project: the key's project is used
    assert common_missing(cli, creds, cli.cloud.project or creds.project) == []


def test_missing_pieces_are_each_listed():
    cli = _cli("run_name=r", "data.root=outputs/local_ds")
    missing = common_missing(cli, Credentials(None, None, NO_CREDENTIALS), None)
    text = "\n".join(missing)
    for key in (
        "credentials",
        "cloud.project",
        "cloud.image_uri",
        "cloud.staging_bucket",
        "cloud.output_uri",
        "data.root='outputs/local_ds' is not a gs:// URI",
    ):
        assert key in text
    assert len(missing) == 6


def _run_launcher(module, args, env, cwd):
    return subprocess.run(
        [sys.executable, "-m", module, f"config={TINY}", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_launch_without_credentials_writes_the_request_and_says_what_is_missing(no_credentials, tmp_path):
    out = tmp_path / "requests"
    proc = _run_launcher(
        "ove_ros.training.cloud.launch", ["run_name=r2", *READY[1:], f"cloud.request_dir={out}"],
        no_credentials, REPO,
    )
    assert proc.returncode == 2, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["submitted"] == []
    assert summary["missing"][0].startswith(NO_CREDENTIALS)
    assert any(m.startswith("cloud.project") for m in summary["missing"])
    assert "not submitted" in proc.stderr and "to submit, provide:" in proc.stderr
    path = out / "ove-train-r2.json"
    assert summary["requests"] == [str(path)]
    request = v1.CreateCustomJobRequest.from_json(path.read_text())
    assert request.custom_job.job_spec.worker_pool_specs[0].container_spec.image_uri.endswith("train:3")
    raw = json.loads(path.read_text())  # proto JSON with enum names, as the REST API takes it
    assert raw["customJob"]["jobSpec"]["workerPoolSpecs"][0]["machineSpec"]["acceleratorType"] == (
        "NVIDIA_TESLA_A100"
    )


def test_explicit_dry_run_with_everything_set_exits_zero_and_submits_nothing(service_account_key, tmp_path):
    out = tmp_path / "requests"
    env = dict(os.environ)
    proc = _run_launcher(
        "ove_ros.training.cloud.sweep",
        [
            *READY,
            "sweep.wandb_sweep_id=abc",
            "cloud.sweep_agents=2",
            "cloud.wandb_api_key_secret=k",
            f"cloud.request_dir={out}",
            "--dry-run",
        ],
        env,
        REPO,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary == {
        "requests": [str(out / "ove-sweep-abc-agent0.json"), str(out / "ove-sweep-abc-agent1.json")],
        "missing": [],
        "submitted": [],
    }
    assert proc.stderr.startswith("dry run: wrote 2 job request(s)")


def test_a_bad_setting_is_one_error_line(no_credentials, tmp_path):
    proc = _run_launcher(
        "ove_ros.training.cloud.eval", ["run_name=r", "cloud.output_uri=/x"], no_credentials, REPO
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "error: cloud.output_uri='/x' must be a gs:// URI (e.g. gs://my-bucket/ove)"
    ]


# ------------------------------------------------------------------------------------------ multi-node


def test_cluster_spec_gives_each_node_its_rank_and_the_primary_address():
    spec = {
        "cluster": {"workerpool0": ["10.0.0.2:2222"], "workerpool1": ["10.0.0.3:2222", "10.0.0.4:2222"]},
        "task": {"type": "workerpool1", "index": 1},
        "environment": "cloud",
    }
    assert node_from_cluster_spec(json.dumps(spec)) == Node(rank=2, count=3, main_host="10.0.0.2")
    spec["task"] = {"type": "workerpool0", "index": 0}
    assert node_from_cluster_spec(json.dumps(spec)).is_primary
    assert node_from_cluster_spec(None) == Node()
    with pytest.raises(ValueError, match="CLUSTER_SPEC"):
        node_from_cluster_spec('{"cluster": {}}')


def test_train_command_scales_from_one_process_to_accelerate_multi_node(tmp_path):
    cfg = tmp_path / "c.yaml"
    assert train_command(cfg, Node(), 0, 29500)[1:] == ["-m", "ove_ros.training.train", f"config={cfg}"]
    one = train_command(cfg, Node(), 8, 29500)
    assert one[one.index("--config_file") + 1] == str(ACCELERATE_CONFIGS / "one_node.yaml")
    assert one[one.index("--num_processes") + 1] == "8"
    multi = train_command(cfg, Node(rank=2, count=3, main_host="10.0.0.2"), 8, 29555)
    flags = dict(zip(multi[3:-3:2], multi[4:-3:2], strict=True))
    assert flags == {
        "--config_file": str(ACCELERATE_CONFIGS / "multi_node.yaml"),
        "--num_machines": "3",
        "--num_processes": "24",
        "--machine_rank": "2",
        "--main_process_ip": "10.0.0.2",
        "--main_process_port": "29555",
    }
    assert multi[-3:] == ["-m", "ove_ros.training.train", f"config={cfg}"]
