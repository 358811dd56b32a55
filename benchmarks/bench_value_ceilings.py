# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""What a per-frame predictor can know: held-out value EV from each kind of input, no model involved.

    python benchmarks/bench_value_ceilings.py [g1=true] [sim=true] [sim_dataset=<LeRobot v3 folder>]

A value model is compared with trivial baselines; this asks the question underneath: how much of the
held-out targets' variance do the inputs explain at all, to a predictor fitted on the training episodes
only? Nearest neighbours (k = 10) on the clock, the joints, their per-frame change, small images (16x12 or
8x8 px per camera, first principal components) and their combinations; the frame-index mean with a
nearest-neighbour correction of its residual; on all-success data, how well each input tells the fraction
of the episode done (phase EV); the "clock and outcome" oracle (the frame-index mean per task and
episode outcome, the outcome given), which shows how much of the variance is the outcome; and on the
simulated episodes the causal ceiling (``training.ceiling``): the outcome known only from the frame where
the fatal mistake moves the joints away from the same episode without it (by any amount, or by more than
0.01 / 0.03 / 0.1 rad or m), hedged with the training episodes' share of successes before that.

- ``g1``: the real G1 episodes (``../shared/data/g1_pick_bottle_train30`` at 64 px, as
  ``bench_value_quality.py``), trained on episodes 0-19, held out 20-29.
- ``sim``: the simulated demo's dataset (``outputs/demo/summary.json`` -> ``dataset`` unless given),
  ``folds``-fold cross-validation by episode.

Targets are the training code's (per-task normalizers fitted on the training episodes of each split).
Writes ``benchmarks/results/value_ceilings.json`` and a bar chart beside it.
"""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.machine_info import basic  # noqa: E402
from ove_ros import typed_cli  # noqa: E402
from ove_ros.training.checkpoint import atomic_save_file, atomic_write_text  # noqa: E402
from ove_ros.typed_config import setting  # noqa: E402

HELD_OUT_G1 = list(range(20, 30))
PCA_COMPONENTS = 8


@dataclass
class Frames:
    """Every frame of a dataset, one row each, in episode order."""

    episode: np.ndarray
    frame: np.ndarray
    task: np.ndarray
    state: np.ndarray
    images: np.ndarray  # [N, pixels of every camera], values in [0, 1]
    targets: Any  # training.dataset.ValueTargets (normalizers refitted per split)
    onsets: dict[int, Any] | None = None  # sim: episode -> sim.episodes.MistakeOnset

    def target(self, train_episodes: list[int]) -> np.ndarray:
        from ove_ros.training.dataset import fit_split_normalizers

        fit_split_normalizers(self.targets, train_episodes)
        return self.targets.values.astype(np.float64)

    def success(self) -> np.ndarray:
        return np.asarray([self.targets.episode_success.get(int(e), True) for e in self.episode])


def load_frames(root: Path, repo_id: str, image_size: tuple[int, int]) -> Frames:
    """States, small images and the training code's targets of every frame of a v3 dataset with images
    stored in its parquet files."""
    import pandas as pd
    from PIL import Image
    from tqdm import tqdm

    from ove_ros.training.dataset import compute_value_targets, open_lerobot_dataset
    from ove_ros.values import RewardConfig

    dataset = open_lerobot_dataset(repo_id, root, video_backend="pyav")
    targets = compute_value_targets(dataset, RewardConfig())
    table = pd.concat([pd.read_parquet(p) for p in sorted((root / "data").rglob("*.parquet"))])
    table = table.set_index("index").loc[targets.index]
    cameras = sorted(c for c in table.columns if c.startswith("observation.images."))
    pixels = []
    for cam in cameras:
        cells = table[cam].tolist()
        pixels.append(np.stack([
            np.asarray(Image.open(io.BytesIO(c["bytes"])).convert("RGB").resize(image_size, Image.BILINEAR),
                       dtype=np.float32).ravel() / 255.0
            for c in tqdm(cells, desc=f"decode {cam}", leave=False)]))
    states = np.stack(table["observation.state"].to_numpy()).astype(np.float64)
    return Frames(targets.episode_index, targets.frame_index, np.asarray(targets.frame_tasks(), dtype=object),
                  states, np.concatenate(pixels, 1), targets)


def _block(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Centre on the training rows and scale the block to unit total variance there (equal weight per
    block in a distance)."""
    x = x - x[train].mean(0)
    return x / max(float(np.sqrt(x[train].var(0).sum())), 1e-9)


MOTION_FRAMES = 5


def _frames_back(episode: np.ndarray, frame: np.ndarray, back: int) -> np.ndarray:
    """Row of the frame ``back`` frames earlier in the same episode (its first frame near the start); rows
    are in episode order, frame by frame."""
    rows = np.arange(episode.size)
    starts = rows - frame
    if (starts < 0).any() or (episode[starts] != episode).any() or (frame[starts] != 0).any():
        raise ValueError("frames are not in episode order, frame by frame from 0")
    return rows - np.minimum(frame, back)


def features(f: Frames, train: np.ndarray) -> dict[str, np.ndarray]:
    lo, hi = f.state[train].min(0), f.state[train].max(0)
    state = (f.state - lo) / np.maximum(hi - lo, 1e-9)
    first = np.r_[True, f.episode[1:] != f.episode[:-1]]
    velocity = np.vstack([np.zeros((1, state.shape[1])), np.diff(state, axis=0)])
    velocity[first] = 0.0
    motion = state - state[_frames_back(f.episode, f.frame, MOTION_FRAMES)]  # a short history of the joints
    centred = f.images - f.images[train].mean(0)
    _, _, vt = np.linalg.svd(centred[train], full_matrices=False)
    image = centred @ vt[:PCA_COMPONENTS].T
    tasks = np.unique(f.task)
    task = (f.task[:, None] == tasks[None, :]).astype(np.float64) * 10.0  # never a neighbour across tasks
    clock = f.frame[:, None].astype(np.float64)
    b = {name: _block(x, train) for name, x in
         {"clock": clock, "state": state, "velocity": velocity, "motion": motion, "image": image}.items()}
    sets = {
        "clock": [b["clock"]],
        "state": [b["state"]],
        "state + clock": [b["state"], b["clock"]],
        "state + velocity + clock": [b["state"], b["velocity"], b["clock"]],
        f"state + motion over {MOTION_FRAMES} frames + clock": [b["state"], b["motion"], b["clock"]],
        "image": [b["image"]],
        "image + clock": [b["image"], b["clock"]],
        "image + state + clock": [b["image"], b["state"], b["clock"]],
    }
    return {name: np.hstack([task, *parts]) for name, parts in sets.items()}


ONSET_TOLERANCES = (1e-9, 0.01, 0.03, 0.1)  # rad / m: from the first change to a clearly visible one


def evaluate_split(f: Frames, train_eps: list[int], test_eps: list[int]) -> dict[str, float]:
    from ove_ros.sim.metrics import explained_variance as ev
    from ove_ros.training.baselines import FrameSet, frame_index_mean, knn_regress

    y = f.target(train_eps)
    train, test = np.isin(f.episode, train_eps), np.isin(f.episode, test_eps)

    def frame_set(mask: np.ndarray) -> FrameSet:
        return FrameSet(episode=f.episode[mask], frame=f.frame[mask], task=f.task[mask],
                        state=f.state[mask], target=y[mask])

    out: dict[str, float] = {}
    prior_train = frame_index_mean(frame_set(train), frame_set(train))
    prior_test = frame_index_mean(frame_set(train), frame_set(test))
    out["frame-index mean"] = ev(prior_test, y[test])
    sets = features(f, train)
    for name, x in sets.items():
        out[f"kNN {name}"] = ev(knn_regress(x[train], y[train], x[test]), y[test])
    for name in ("state", "image"):
        x = sets[name]
        correction = knn_regress(x[train], y[train] - prior_train, x[test], k=30)
        out[f"frame-index mean + kNN correction from {name}"] = ev(prior_test + correction, y[test])
    success = f.success()
    if success[train].all() and success[test].all():
        length = np.bincount(f.episode)[f.episode]
        phase = f.frame / np.maximum(length - 1, 1)
        for name in ("state", "image"):
            x = sets[name]
            out[f"phase EV from {name}"] = ev(knn_regress(x[train], phase[train], x[test]), phase[test])
    else:
        oracle = np.empty(int(test.sum()))
        rows = np.flatnonzero(test)
        for outcome in (True, False):
            pick_train, pick_test = train & (success == outcome), success[rows] == outcome
            if pick_test.any():
                test_set = frame_set(test)
                sub = FrameSet(episode=test_set.episode[pick_test], frame=test_set.frame[pick_test],
                               task=test_set.task[pick_test], state=test_set.state[pick_test],
                               target=test_set.target[pick_test])
                oracle[pick_test] = frame_index_mean(frame_set(pick_train), sub)
        out["oracle: clock and outcome"] = ev(oracle, y[test])
        if f.onsets is not None:
            from ove_ros.training.ceiling import causal_ceiling

            outcome = {int(e): bool(s) for e, s in zip(f.episode, success, strict=True)}
            train_set, test_set = frame_set(train), frame_set(test)
            train_set.success = test_set.success = outcome
            for tol in ONSET_TOLERANCES:
                onsets = {e: o.onset(tol) for e, o in f.onsets.items()}
                when = "at their first change" if tol < 1e-6 else f"> {tol:g}"
                out[f"causal ceiling: outcome once the joints stray {when}"] = ev(
                    causal_ceiling(train_set, test_set, onsets), y[test])
    return out


def g1_ceilings(args: Settings) -> dict[str, Any]:
    from benchmarks.bench_value_quality import G1, REPO_ID, prepare

    root = prepare(G1, 64)
    f = load_frames(root, REPO_ID, (16, 12))
    episodes = sorted(int(e) for e in np.unique(f.episode))
    train = [e for e in episodes if e not in HELD_OUT_G1]
    return {"data": str(G1), "split": {"train": train, "held_out": HELD_OUT_G1},
            "frames": int(f.episode.size), "image": "cam_high at 16x12 px",
            "ev": evaluate_split(f, train, HELD_OUT_G1)}


def sim_onsets(root: Path, f: Frames) -> dict[int, Any]:
    """Each recorded episode's mistake onset, from running its ``(task, seed)`` again without cameras with
    the main job's simulator settings; refuses a dataset those settings do not reproduce."""
    from ove_ros.main_job.config import DemoConfig
    from ove_ros.sim.episodes import mistake_onsets

    meta = json.loads((root / "meta" / "ove_ros_episodes.json").read_text())["episodes"]
    index = [int(m["episode_index"]) for m in meta]
    specs = []
    for m in meta:
        task, seed = m["episode_id"].rsplit("/seed", 1)
        specs.append((task, int(seed)))
    onsets = dict(zip(index, mistake_onsets(specs, DemoConfig().sim_config()), strict=True))
    for e, o in onsets.items():
        recorded = int((f.episode == e).sum())
        if recorded != o.frames:
            raise SystemExit(f"episode {e} ({specs[index.index(e)]}) has {recorded} frames in {root} but "
                             f"{o.frames} when run again: the dataset was not made with the main job's "
                             "default simulator settings")
    return onsets


def sim_ceilings(args: Settings) -> dict[str, Any]:
    root = Path(args.sim_dataset) if args.sim_dataset else Path(
        json.loads((REPO / "outputs" / "demo" / "summary.json").read_text())["dataset"])
    f = load_frames(root, "sim/metaworld_demo", (8, 8))
    f.onsets = sim_onsets(root, f)
    episodes = sorted(int(e) for e in np.unique(f.episode))
    held = [episodes[k::args.folds] for k in range(args.folds)]
    folds = [evaluate_split(f, [e for e in episodes if e not in h], h) for h in held]
    return {"data": str(root), "split": f"{args.folds}-fold by episode", "frames": int(f.episode.size),
            "episodes": len(episodes), "image": "every camera at 8x8 px",
            "ev": {k: float(np.mean([fold[k] for fold in folds])) for k in folds[0]},
            "ev_per_fold": {k: [float(fold[k]) for fold in folds] for k in folds[0]}}


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in ("g1", "sim") if n in results]
    fig, axes = plt.subplots(1, len(names), figsize=(7 * len(names), 5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        ev = results[name]["ev"]
        labels = list(ev)
        values = [max(ev[k], -0.5) for k in labels]
        colors = ["tab:gray" if k == "frame-index mean" else "tab:green" if k.startswith(("oracle", "causal"))
                  else "tab:purple" if k.startswith("phase") else "tab:blue" for k in labels]
        ax.barh(labels, values, color=colors)
        ax.axvline(ev["frame-index mean"], color="tab:gray", ls="--", lw=1)
        ax.set_xlim(-0.5, 1.0)
        ax.invert_yaxis()
        ax.set_title(f"{name}: held-out EV per input (bars cut at -0.5)")
        for i, v in enumerate(ev.values()):
            ax.text(max(v, -0.5) + 0.01, i, f"{v:.3f}", va="center", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_file(path, lambda tmp: fig.savefig(tmp, dpi=100), suffix=".png")
    plt.close(fig)


@dataclass
class Settings:
    """Which datasets and where the figures go (``key=value``; ``--help`` lists the keys)."""

    g1: bool = setting(True, "Measure the real G1 episodes (../shared/data/g1_pick_bottle_train30).")
    sim: bool = setting(True, "Measure the simulated demo's dataset.")
    sim_dataset: str | None = setting(None, "The simulated dataset (default: outputs/demo's).")
    folds: int = setting(4, "Cross-validation folds on the simulated episodes.", ge=2)
    output: str = setting(str(REPO / "benchmarks" / "results" / "value_ceilings.json"), "Result JSON.")


def main(argv: list[str] | None = None) -> None:
    args = typed_cli.parse_or_exit(Settings, argv, "usage: python benchmarks/bench_value_ceilings.py "
                                   "[key=value ...]", __doc__.split("\n\n")[0])
    start = time.perf_counter()
    results: dict[str, Any] = {"what": __doc__.split("\n\n")[2].replace("\n", " "), "machine": basic()}
    if args.g1:
        results["g1"] = g1_ceilings(args)
    if args.sim:
        results["sim"] = sim_ceilings(args)
    results["seconds"] = time.perf_counter() - start
    out = Path(args.output)
    atomic_write_text(out, json.dumps(results, indent=1) + "\n")
    plot(results, out.with_suffix(".png"))
    for name in ("g1", "sim"):
        for k, v in results.get(name, {}).get("ev", {}).items():
            print(f"{name:4s} {k:50s} {v:7.3f}")
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
