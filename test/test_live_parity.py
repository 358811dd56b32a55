# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The live node's values and advantages equal the training code's, frame by frame, through the dataset.

One recording (a raw rgb8 camera and a JPEG camera at 30 Hz, joint states at 50 Hz, START/END events) is
converted with the bag converter (lossless frames) into a 10 fps dataset; a tiny model trained on it for a few
steps is exported as a bundle whose head is scaled so its values spread; the training code labels the dataset
with values and n-step advantages. The same recording is then played into the live node, once at recorded
speed and once as fast as possible (the model cannot keep up: frames are skipped), and every value and
advantage the node publishes is compared with the training code's for the same dataset frame. The camera rate
(30 Hz) is a multiple of the dataset's (10 fps), so the node must place ticks on the dataset's grid.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402

from ove_ros.child_process import stop_child  # noqa: E402
from ove_ros.msg import Advantage, ValueEstimate  # noqa: E402
from ove_ros.training import ros_types  # noqa: E402
from ove_ros.values import episode_rewards, window_advantage  # noqa: E402

from bag_fixtures import START_NS, BagSpec, CameraSpec, EventSpec, write_bag  # noqa: E402
from conftest import REPO_ROOT, installed_executable, ros_env  # noqa: E402
from dataset_fixtures import tiny_config  # noqa: E402

FPS = 10
N_STEP = 5
CAMERAS = [
    CameraSpec(name="front", topic="/cam/front/image_raw", encoding="rgb8", width=64, height=48),
    CameraSpec(name="wrist", topic="/cam/wrist/image_raw/compressed", encoding="jpeg", compressed=True,
               width=64, height=48),
]
WAIT = 300.0
START_S = 0.35  # the START event, seconds into the recording


def _wait(condition, timeout: float, what: str, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a process exited ({p.returncode}) while waiting for {what}")
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """The recording, its dataset, the bundle and the training code's per-frame values and advantages."""
    import torch

    from ove_ros.bundle import read_bundle_config, save_bundle
    from ove_ros.model import load_bundle
    from ove_ros.training.advantage import label_dataset
    from ove_ros.training.bag_config import load_config
    from ove_ros.training.bag_to_lerobot import convert_bags
    from ove_ros.training.convert import convert
    from ove_ros.training.train import train

    root = tmp_path_factory.mktemp("parity")
    events = [EventSpec(START_S, ros_types.EVENT_START, task="pick"),
              EventSpec(5.5, ros_types.EVENT_END, ros_types.OUTCOME_SUCCESS, task="pick")]
    bag = write_bag(root / "rec", BagSpec(duration_s=6.0, cameras=CAMERAS, joint_rate_hz=50.0,
                                          action_topic=None, events=events, pattern="scene"))
    cams = ", ".join(f"{{name: {c.name}, topic: {c.topic}}}" for c in CAMERAS)
    conv = load_config(None, [f"fps={FPS}", "task=pick", f"cameras=[{cams}]",
                              "state={topic: /joint_states, joints: [j1, j2, j3]}", "progress=false",
                              "video.use_videos=false"])
    dataset = root / "dataset"
    convert_bags([bag], dataset, "parity/rec", conv)
    cfg = tiny_config(root / "runs", dataset, repo_id="parity/rec", run_name="parity",
                      **{"training.steps": 2, "training.warmup_steps": 1, "training.val_every": 0,
                         "training.save_every": 2, "data.batch_size": 4, "data.val_fraction": 0.0,
                         "model.overrides": "{image_size: 224}"})
    result = train(cfg)
    bundle = convert(result.checkpoint, root / "bundle")
    # A few training steps leave the values nearly constant. The head's last layer is replaced by one that
    # tilts the distribution along the main direction in which the frames' features differ: the values then
    # spread smoothly over the episode, and a difference in what the node sees shows in them.
    _, meta = read_bundle_config(bundle)
    model = load_bundle(bundle)[0]
    last = [m for m in model.head.modules() if isinstance(m, torch.nn.Linear)][-1]
    features = _head_inputs(model, last, dataset)
    mean = features.mean(0)
    direction = torch.linalg.svd(features - mean, full_matrices=False).Vh[0]
    spread = ((features - mean) @ direction).std()
    centers = torch.linspace(-1.0, 1.0, last.out_features, dtype=torch.float64)
    weight = torch.outer(centers, direction) * (4.0 / spread)
    with torch.no_grad():
        last.weight.copy_(weight.to(last.weight.dtype))
        last.bias.copy_((-weight @ mean).to(last.bias.dtype))
    save_bundle(bundle, model, meta)
    assert meta.fps == FPS and meta.images and set(meta.images) == {c.name for c in CAMERAS}
    label_cfg = tiny_config(root / "runs", dataset, repo_id="parity/rec",
                            **{"advantage.checkpoint": str(bundle), "advantage.mode": "n_step",
                               "advantage.n_step": N_STEP, "advantage.output_root": str(root / "labelled")})
    label_dataset(label_cfg)
    table = pq.read_table(sorted((root / "labelled" / "data").rglob("*.parquet"))).to_pandas()
    table = table.sort_values("index")
    values = np.asarray([float(np.asarray(v).reshape(-1)[0]) for v in table["value"]])
    advantages = np.asarray([float(np.asarray(a).reshape(-1)[0]) for a in table["advantage"]])
    assert values.max() - values.min() > 0.05, "the scaled head must spread the values"
    scale = json.loads((bundle / "config.json").read_text())["metadata"]["task_normalizers"]["pick"]
    return {"bag": bag, "bundle": bundle, "values": values, "advantages": advantages, "scale": scale,
            "frames": len(values)}


def _head_inputs(model, layer, dataset):
    """What ``layer`` (the head's last) receives on every frame of the dataset (float64)."""
    import torch
    from torch.utils.data import default_collate

    from ove_ros.training.dataset import (
        IMAGES_PREFIX,
        ValueFrameDataset,
        compute_value_targets,
        open_lerobot_dataset,
    )
    from ove_ros.values import RewardConfig

    ds = open_lerobot_dataset("parity/rec", dataset)
    frames = ValueFrameDataset(ds, compute_value_targets(ds, RewardConfig()), None,
                               [IMAGES_PREFIX + c for c in model.config.camera_names],
                               image_size=model.config.image_size)
    seen = []
    hook = layer.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach().double()))
    try:
        with torch.no_grad():
            for start in range(0, len(frames), 16):
                model(default_collate([frames[i] for i in range(start, min(start + 16, len(frames)))]))
    finally:
        hook.remove()
    return torch.cat(seen)


class Listener:
    def __init__(self):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("parity_probe", context=self.context)
        self.values: list[ValueEstimate] = []
        self.advantages: list[Advantage] = []
        qos = QoSProfile(depth=1000)
        self.node.create_subscription(ValueEstimate, "/value_estimator/value", self.values.append, qos)
        self.node.create_subscription(Advantage, "/value_estimator/advantage", self.advantages.append, qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def close(self):
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)
        self.thread.join(5)


def _live_run(offline, tmp_path, rate: float):
    """Play the recording into the node; returns the episode's values and advantages by frame."""
    listener = Listener()
    log = open(tmp_path / "node.log", "w")  # noqa: SIM115
    topics = ", ".join(c.topic for c in CAMERAS)
    node = subprocess.Popen(
        [sys.executable, str(installed_executable("value_estimator")), "--ros-args",
         "--params-file", str(REPO_ROOT / "config" / "value_estimator.yaml"),
         "-p", f"checkpoint:={offline['bundle']}", "-p", f"camera_topics:=[{topics}]",
         "-p", "camera_transports:=[raw, compressed]", "-p", "task:=pick", "-p", "num_threads:=1",
         "-p", f"n_step:={N_STEP}",
         "-p", "resize:=float", "-p", "sync.max_age:=0.0", "-p", "input_qos.reliability:=reliable",
         "-p", "input_qos.depth:=1000", "-p", "input_qos.durability:=transient_local",
         "-p", "diagnostics_period:=0.5"],
        env=ros_env(), stdout=log, stderr=subprocess.STDOUT)
    player = None
    try:
        done = tmp_path / "played"
        player = subprocess.Popen(
            [sys.executable, "-m", "ove_ros.sim.bag_player", str(offline["bag"]),
             "--rate", str(rate), "--done-file", str(done)],
            env=ros_env(), stdout=log, stderr=subprocess.STDOUT)
        _wait(done.exists, WAIT, "the recording to be played", (node,))
        # The END closes the episode once its frames are decided: a terminal advantage marks the flush.
        _wait(lambda: any(a.terminal for a in listener.advantages), WAIT, "the episode's last advantages",
              (node,))
        _wait(lambda: player.poll() is not None, WAIT, "the player to exit")
    finally:
        stop_child(node, grace=15.0)
        if player is not None and player.poll() is None:
            stop_child(player, grace=5.0)
        log.close()
        listener.close()
    # Before the START the node ran an episode of its own (inputs started, no event yet), which the START
    # truncated; frames of it can still be stamped after the START when the event arrived late. The
    # dataset's episode is the node's episode that began at the START: the last one with frames after it.
    start = START_NS + round(START_S * 1e9)
    serial = max(v.episode for v in listener.values if v.in_episode and _ns(v.header.stamp) >= start)
    episode = {v.tick: v for v in listener.values if v.in_episode and v.episode == serial}
    advantages = [a for a in listener.advantages if a.episode == serial]
    assert min(_ns(v.header.stamp) for v in episode.values()) >= start
    assert not any(a.truncated for a in advantages), "the END's outcome must end this episode"
    return episode, advantages


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


@pytest.mark.parametrize("rate", [1.0, 0.0], ids=["recorded-speed", "faster-than-the-model"])
def test_live_values_and_advantages_equal_the_training_codes(offline, tmp_path, rate):
    episode, advantages = _live_run(offline, tmp_path, rate)
    frames = offline["frames"]
    values, expected = offline["values"], offline["advantages"]
    assert episode and max(episode) < frames and min(episode) >= 0
    diffs = [abs(episode[t].value - values[t]) for t in episode]
    assert max(diffs) < 1e-3, f"max |live - training| value {max(diffs):.2e} over {len(diffs)} frames"
    assert advantages, "no advantage was published"
    rewards = episode_rewards(frames, True) / offline["scale"]
    for a in advantages:
        t = a.tick
        if a.n_step == N_STEP or a.terminal:
            offline_adv = expected[t]  # the training code's column
        else:  # bootstrapped from a neighbour of t + N: the offline advantage with that horizon
            offline_adv = window_advantage(list(rewards[t:t + a.n_step]), values[t], values[t + a.n_step])[0]
        assert abs(a.advantage - offline_adv) < 1e-3, f"frame {t}: live {a.advantage} vs {offline_adv}"
        assert a.reward_sum == pytest.approx(float(np.sum(rewards[t:t + a.n_step])), abs=1e-6)
    # With bootstrap_tolerance 0, exactly the valued frames whose frame t+N was valued (or lies past the
    # episode's end) have an advantage, whichever frames the model had to skip.
    valued = set(episode)
    expected = sorted(t for t in valued if t + N_STEP >= frames or t + N_STEP in valued)
    assert sorted(a.tick for a in advantages) == expected
    if rate == 0.0:
        assert len(episode) < frames, "the fast replay was meant to make the node skip frames"
