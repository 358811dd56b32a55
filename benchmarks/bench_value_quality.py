# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""Value quality of the tiny model on a fixed episode split, against the baselines, one experiment at a time.

    python benchmarks/bench_value_quality.py name=time10 seeds=[0,1,2] \
        change="elapsed time as an input, 10 frames per bin" -- "model.overrides={time_bin_frames: 10}"

Trains (``ove_ros.training.train``, ``training/configs/demo.yaml`` plus the overrides after ``--``) on every
episode of the real G1 copy but ``val_episodes`` and evaluates the held-out episodes with
``ove_ros.training.evaluate``
(the model next to baselines fitted on the training episodes only). Each experiment is appended to
``results`` (failures included) with the machine, the split and the figures of every seed.

The G1 data is LeRobot v2.1 with 640x480 AV1 video; the first run makes the v3 copy at 64 px width that
the runs read (one decoding pass, cached under outputs/cache/demo, as ``python -m ove_ros.main_job real``).
"""

from __future__ import annotations

import json
import os
import subprocess
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
from ove_ros.training.checkpoint import atomic_write_text  # noqa: E402
from ove_ros.typed_cli import REQUIRED  # noqa: E402
from ove_ros.typed_config import setting  # noqa: E402

G1 = REPO.parent / "shared" / "data" / "g1_pick_bottle_train30"
REPO_ID = "local/g1_pick_bottle_train30"
HELD_OUT = list(range(20, 30))
RESULTS = "value_quality_g1.json"
KEYS = ("ev", "mae", "rmse", "spearman_within_episode", "smoothness_ratio", "sign_flip_fraction",
        "coverage_10_90")


def prepare(data: Path, width: int) -> Path:
    """The v3 training-resolution copy of ``data`` (made once)."""
    from ove_ros.main_job.config import RealConfig
    from ove_ros.main_job.real_mode import prepare_real_dataset
    from ove_ros.main_job.reencode import training_copy

    cfg = RealConfig(data=data.resolve(), cache_dir=REPO / "outputs" / "cache" / "demo")
    root, repo_id, _ = prepare_real_dataset(cfg)
    small = root.parents[1] / f"w{width}" / repo_id
    if not (small / "meta" / "info.json").is_file():
        training_copy(root, repo_id, small, width)
    return small


def run(cmd: list[str], log: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        code = subprocess.run(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    if code:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed ({code}); see {log}")


def evaluate(args: Settings, common: list[str], ckpt: Path, eval_dir: Path, log: Path,
             reuse: bool) -> dict[str, Any]:
    if not reuse:
        run([sys.executable, "-m", "ove_ros.training.evaluate", *common, f"evaluate.checkpoint={ckpt}",
             "evaluate.split=val", f"evaluate.output_dir={eval_dir}", "evaluate.video_episodes=0",
             "evaluate.plot_episodes=0", "training.num_threads=1"], log)
    report = json.loads((eval_dir / "value_quality.json").read_text())
    return {
        "model": {k: report["model"].get(k) for k in (*KEYS, "auroc_50")},
        "best_baseline": report["best_baseline"],
        "best_baseline_ev": report["best_baseline_ev"],
        "margin_ev": report["margin_ev"],
        "baselines_ev": {k: v["ev"] for k, v in report["baselines"].items()},
        "baseline_train_episodes": report["baseline_train_episodes"],
        "eval_target_clipping": report["eval_target_clipping"],
        "picture": str((eval_dir / "value_quality.png").relative_to(REPO)),
    }


def one_seed(args: Settings, root: Path, seed: int, overrides: list[str]) -> list[dict[str, Any]]:
    """Train one seed and evaluate its last checkpoint on the held-out episodes; with ``--select-best K``
    the run trains on the train split but its last K episodes, validates on those every 100 steps, and the
    checkpoint with the best validation EV is evaluated too."""
    out = REPO / "outputs" / "vq"
    name = f"{args.name}_s{seed}"
    common = [f"config={args.config}", f"data.repo_id={REPO_ID}", f"data.root={root}",
              f"data.val_episodes=[{','.join(map(str, args.val_episodes))}]"]
    train_args = list(common)
    if args.select_best:
        train_eps = [e for e in range(args.episodes) if e not in args.val_episodes]
        inner = train_eps[-args.select_best:]
        train_args += [f"data.episodes=[{','.join(map(str, train_eps))}]",
                       f"data.val_episodes=[{','.join(map(str, inner))}]", "training.val_every=100",
                       "training.save_every=100", "training.keep_last=100"]
    run_dir = out / "ove_ros" / name
    eval_dir = out / f"eval_{name}"
    reuse = args.reuse and (eval_dir / "value_quality.json").is_file()
    started = time.perf_counter()
    if not reuse:
        subprocess.run(["rm", "-rf", str(run_dir)], check=True)
        run([sys.executable, "-m", "ove_ros.training.train", *train_args, f"run_name={name}",
             f"output_root={out}",
             f"training.seed={seed}", *overrides], out / f"{name}.train.log")
    train_s = time.perf_counter() - started
    records = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_ev = [r.get("ev") for r in records if r.get("split") == "train"]
    base = {"seed": seed, "train_seconds": None if reuse else round(train_s, 1),
            "train_ev_last_logged": train_ev[-1] if train_ev else None}
    from ove_ros.training.checkpoint import checkpoint_file, list_checkpoints

    ckpts = list_checkpoints(run_dir)
    results = [{**base, "checkpoint": "last",
                **evaluate(args, common, ckpts[-1], eval_dir, out / f"{name}.eval.log", reuse)}]
    if args.select_best:
        val = {r["step"]: r["ev"] for r in records if r.get("split") == "val"}
        step = max(val, key=val.get)
        best = checkpoint_file(run_dir, step)
        best_dir = out / f"eval_{name}_best"
        again = args.reuse and (best_dir / "value_quality.json").is_file()
        results.append({**base, "checkpoint": f"best on validation EV (step {step}, EV {val[step]:.3f})",
                        "validation_ev_by_step": val,
                        **evaluate(args, common, best, best_dir, out / f"{name}.best.log", again)})
    return results


def write_json(path: Path, doc: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2, default=float) + "\n")


def analyze(name: str, seeds: list[int], best: bool = False) -> dict[str, Any]:
    """Post-hoc, from the runs' predictions: the EV of the mean of the seeds' E[V] (an ensemble) and of a
    causal running mean of each run's curve (what a live node could apply), on the same held-out frames;
    ``best``: of the best-validation checkpoints (``--select-best`` runs)."""
    import csv

    from ove_ros.training.metrics import explained_variance

    preds, target, episode, frame = [], None, None, None
    for seed in seeds:
        path = REPO / "outputs" / "vq" / f"eval_{name}_s{seed}{'_best' if best else ''}" / "predictions.csv"
        rows = list(csv.DictReader(path.open()))
        preds.append(np.array([float(r["pred"]) for r in rows]))
        target = np.array([float(r["target"]) for r in rows])
        episode = np.array([int(r["episode_index"]) for r in rows])
        frame = np.array([int(r["frame_index"]) for r in rows])

    def causal_mean(p: np.ndarray, k: int) -> np.ndarray:
        out = np.empty_like(p)
        for ep in np.unique(episode):
            idx = np.flatnonzero(episode == ep)
            idx = idx[np.argsort(frame[idx])]
            c = np.concatenate([[0.0], np.cumsum(p[idx])])
            n = np.arange(1, idx.size + 1)
            lo = np.maximum(0, n - k)
            out[idx] = (c[n] - c[lo]) / (n - lo)
        return out

    return {
        "name": name + (" (best-validation checkpoints)" if best else ""),
        "seeds": seeds,
        "ev_per_seed": [explained_variance(p, target) for p in preds],
        "ev_ensemble_mean_of_seeds": explained_variance(np.mean(preds, axis=0), target),
        "ev_causal_running_mean": {
            str(k): float(np.mean([explained_variance(causal_mean(p, k), target) for p in preds]))
            for k in (5, 15, 30)
        },
    }


USAGE = "usage: python benchmarks/bench_value_quality.py name=<experiment> [key=value ...] [-- overrides ...]"


@dataclass
class Settings:
    """One experiment (``key=value``; ``--help`` lists the keys; training overrides after ``--``)."""

    name: str = setting(REQUIRED, "Required. The experiment's name in the results.")
    change: str = setting("", "What this experiment changes, in words.")
    seeds: list[int] = setting([0], "Training seeds.")
    data: str = setting(str(G1), "The G1 LeRobot dataset.")
    width: int = setting(64, "Training copy's image width.", ge=8)
    config: str = setting("training/configs/demo.yaml", "Training config file.")
    val_episodes: list[int] = setting(HELD_OUT, "Held-out episodes.")
    results: str = setting(str(REPO / "benchmarks" / "results" / RESULTS), "Results JSON (appended to).")
    episodes: int = setting(30, "Episodes in the dataset.", ge=1)
    select_best: int = setting(
        0, "K > 0: validate on the last K training episodes and also evaluate the best checkpoint.", ge=0
    )
    reuse: bool = setting(False, "Reuse a finished run of the same name and seed.")
    analyze: bool = setting(False, "Only add the ensemble / causal-smoothing analysis of finished runs.")
    analyze_best: bool = setting(False, "With analyze: of the runs' best-validation checkpoints.")
    overrides: list[str] = setting([], "Training overrides (after --, or a key=value with a key not listed).")


def main(argv: list[str] | None = None) -> None:
    args = typed_cli.parse_or_exit(Settings, argv, USAGE, __doc__.split("\n\n")[0], rest="overrides")
    results = Path(args.results)
    if args.analyze:
        doc = json.loads(results.read_text())
        found = analyze(args.name, args.seeds, args.analyze_best)
        doc["analyses"] = [a for a in doc.get("analyses", []) if a["name"] != found["name"]] + [found]
        write_json(results, doc)
        print(json.dumps(found, default=float))
        return
    root = prepare(Path(args.data), args.width)
    entry: dict[str, Any] = {"name": args.name, "change": args.change, "overrides": args.overrides,
                             "machine": basic(), "runs": []}
    try:
        for seed in args.seeds:
            for result in one_seed(args, root, seed, list(args.overrides)):
                entry["runs"].append(result)
                print(json.dumps(result, default=float), flush=True)
    except Exception as exc:  # a failed experiment is recorded too
        entry["error"] = str(exc)
    for kind, runs in (("last", [r for r in entry["runs"] if r["checkpoint"] == "last"]),
                       ("best", [r for r in entry["runs"] if r["checkpoint"] != "last"])):
        if runs:
            evs = [r["model"]["ev"] for r in runs]
            suffix = "" if kind == "last" else "_best_checkpoint"
            entry[f"heldout_ev_mean{suffix}"] = float(np.mean(evs))
            entry[f"heldout_ev_min_max{suffix}"] = [float(np.min(evs)), float(np.max(evs))]
    if entry["runs"]:
        entry["best_baseline_ev"] = entry["runs"][0]["best_baseline_ev"]
        entry["best_baseline"] = entry["runs"][0]["best_baseline"]
    doc = json.loads(results.read_text()) if results.is_file() else {
        "what": "tiny value model (training/configs/demo.yaml + overrides) on the real G1 pick-bottle "
                "episodes (../shared/data/g1_pick_bottle_train30 at 64x48 px); trained on the train split, "
                "evaluated on the held-out split against baselines fitted on the train split only",
        "split": {"train": [e for e in range(30) if e not in args.val_episodes],
                  "held_out": list(args.val_episodes)},
        "experiments": [],
    }
    doc["experiments"] = [e for e in doc["experiments"] if e["name"] != args.name] + [entry]
    write_json(results, doc)
    print(f"{args.name}: held-out EV {entry.get('heldout_ev_mean')} vs {entry.get('best_baseline')} "
          f"{entry.get('best_baseline_ev')}" + (f" ERROR {entry['error']}" if "error" in entry else ""))


if __name__ == "__main__":
    main()
