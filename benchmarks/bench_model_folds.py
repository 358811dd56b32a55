# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
r"""The main job's value model against its baselines and the causal ceiling, on every simulated episode.

    python benchmarks/bench_model_folds.py [sim_dataset=<LeRobot v3 folder>] [folds=4] [seeds=[0]] \
        [workers=2] [ensemble=false] [-- training overrides key=value ...]

The main job scores one model on its 12 held-out episodes, a small draw: on the benchmark run's 12 the
causal ceiling is 0.71, while over the 48 training episodes in 4 folds it is 0.85. This trains the main job's
default model (``training/configs/demo.yaml``, the main job's ``model_overrides`` and step count) on the
episodes outside each fold of the simulated dataset (``episodes[k::folds]``, the folds of
``bench_value_ceilings.py``), evaluates it on the fold with ``ove_ros.training.evaluate`` (the model and the
baselines fitted on the other folds, same frames and targets) and puts the causal ceiling and the
nearest-neighbour ceilings of the same fold beside it. Writes ``benchmarks/results/model_folds.json`` and a
bar chart beside it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_value_ceilings import evaluate_split, load_frames, sim_onsets  # noqa: E402
from benchmarks.machine_info import basic  # noqa: E402
from ove_ros import typed_cli  # noqa: E402
from ove_ros.main_job.config import DemoConfig  # noqa: E402
from ove_ros.training.checkpoint import atomic_save_file, atomic_write_text  # noqa: E402
from ove_ros.typed_config import setting  # noqa: E402

REPO_ID = "sim/metaworld_demo"
# What the table shows of the ceilings bench's figures, under shorter names.
CEILINGS = {
    "causal ceiling (first change)": "causal ceiling: outcome once the joints stray at their first change",
    "causal ceiling (> 0.01)": "causal ceiling: outcome once the joints stray > 0.01",
    "kNN image + clock": "kNN image + clock",
}


def train_and_evaluate(dataset: Path, work: Path, fold: list[int], name: str, seed: int,
                       overrides: tuple[str, ...]) -> dict[str, Any]:
    """Train on every episode outside ``fold`` (subprocess, one thread), evaluate on ``fold``."""
    cfg = DemoConfig()
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    run_dir = work / "ove_ros" / name
    log = work / f"{name}.log"
    train = [sys.executable, "-m", "ove_ros.training.train", f"config={cfg.train_config}", f"run_name={name}",
             f"output_root={work}", f"data.root={dataset}", f"data.repo_id={REPO_ID}",
             f"data.val_episodes={fold}", f"training.steps={cfg.train_steps}", f"training.seed={seed}",
             "training.num_threads=1", *cfg.training_args(), *overrides]
    with log.open("w") as f:
        code = subprocess.run(train, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"training failed (exit {code}) for {name}; see {log}")
    return {"seed": seed, **evaluate(run_dir, run_dir, work, fold, name)}


def evaluate(run_dir: Path, model: Path, work: Path, fold: list[int], name: str) -> dict[str, Any]:
    """``ove_ros.training.evaluate`` of ``model`` (a run or a bundle) on ``fold``, with the run's config."""
    env = dict(os.environ, OMP_NUM_THREADS="1", WANDB_MODE="disabled")
    log = work / f"{name}_eval.log"
    cmd = [sys.executable, "-m", "ove_ros.training.evaluate", f"config={run_dir / 'config.yaml'}",
           f"evaluate.checkpoint={model}", "evaluate.split=val", f"data.val_episodes={fold}",
           "evaluate.plot_episodes=0", "evaluate.video_episodes=0",
           f"evaluate.output_dir={work / (name + '_eval')}"]
    with log.open("w") as f:
        code = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    if code != 0:
        raise SystemExit(f"evaluation failed (exit {code}) for {name}; see {log}")
    report = json.loads((work / (name + "_eval") / "value_quality.json").read_text())
    if sorted(report["eval_episodes"]) != sorted(fold):
        raise SystemExit(f"{name}: evaluated episodes {report['eval_episodes']}, expected the fold {fold}")
    model = report["model"]
    return {"ev": model["ev"], "auroc_50": model.get("auroc_50"),
            "smoothness_ratio": model["mean_abs_dv"] / model["mean_abs_dtarget"],
            "best_baseline": report["best_baseline"], "best_baseline_ev": report["best_baseline_ev"],
            "margin_ev": report["margin_ev"],
            "baseline_ev": {k: v["ev"] for k, v in report["baselines"].items()}}


def evaluate_ensemble(work: Path, fold: list[int], k: int, seeds: list[int]) -> dict[str, Any]:
    """The fold's runs of every seed as one ensemble bundle (``ove_ros.training.convert members=``),
    evaluated like each of them."""
    runs = [work / "ove_ros" / f"fold{k}_seed{s}" for s in seeds]
    bundle = work / f"fold{k}_ensemble"
    cmd = [sys.executable, "-m", "ove_ros.training.convert", f"checkpoint={runs[0]}",
           f"members=[{','.join(map(str, runs[1:]))}]", f"output={bundle}"]
    done = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"convert failed for the ensemble of fold {k}: {done.stderr[-2000:]}")
    return {"seeds": seeds, **evaluate(runs[0], bundle, work, fold, f"fold{k}_ensemble")}


def plot(results: dict[str, Any], path: Path) -> None:
    """Per fold: the model's runs, the best baseline, kNN on images + clock and the causal ceilings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folds = results["folds"]
    series = {"model (each seed)": [[r["ev"] for r in f["runs"]] for f in folds],
              **({"ensemble of the seeds": [[f["ensemble"]["ev"]] for f in folds]} if "ensemble" in folds[0]
                 else {}),
              "best baseline": [[f["runs"][0]["best_baseline_ev"]] for f in folds],
              **{name: [[f["ceilings"][name]] for f in folds] for name in CEILINGS}}
    colors = ["tab:blue", *(["tab:cyan"] if "ensemble" in folds[0] else []), "tab:gray", "tab:green",
              "tab:olive", "tab:purple"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(series)
    for j, ((name, values), color) in enumerate(zip(series.items(), colors, strict=True)):
        for k, vals in enumerate(values):
            x = k + (j - (len(series) - 1) / 2) * width
            ax.bar(x, float(np.mean(vals)), width, color=color, label=name if k == 0 else None)
            if len(vals) > 1:
                ax.plot([x] * len(vals), vals, "k.", ms=4)
    ticks = [f"fold {k}\n({len(f['held_out'])} episodes)" for k, f in enumerate(folds)]
    ax.set_xticks(range(len(folds)), ticks)
    ax.set_ylabel("held-out EV")
    ax.set_ylim(0, 1.2)
    ax.axhline(0.8, color="k", ls=":", lw=1)
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    ax.set_title(f"simulated episodes, {len(folds)} folds: the model against its baselines and ceilings")
    fig.tight_layout()
    atomic_save_file(path, lambda tmp: fig.savefig(tmp, dpi=100), suffix=".png")
    plt.close(fig)


@dataclass
class Settings:
    """Which dataset, folds and seeds (``key=value``; ``--help`` lists the keys)."""

    sim_dataset: str | None = setting(None, "The simulated dataset (default: outputs/demo's).")
    folds: int = setting(4, "Folds by episode (as bench_value_ceilings.py).", ge=2)
    seeds: list[int] = setting([0], "Training seeds per fold.")
    workers: int = setting(2, "Trainings at a time (one thread each).", ge=1)
    output: str = setting(str(REPO / "benchmarks" / "results" / "model_folds.json"), "Result JSON.")
    ensemble: bool = setting(False, "Also evaluate each fold's seeds as one ensemble bundle (2+ seeds).")
    overrides: list[str] = setting([], "Training overrides (after --).")


def main(argv: list[str] | None = None) -> None:
    usage = "usage: python benchmarks/bench_model_folds.py [key=value ...] [-- training overrides ...]"
    args = typed_cli.parse_or_exit(Settings, argv, usage, __doc__.split("\n\n")[0], rest="overrides")
    start = time.perf_counter()
    root = Path(args.sim_dataset) if args.sim_dataset else Path(
        json.loads((REPO / "outputs" / "demo" / "summary.json").read_text())["dataset"])
    frames = load_frames(root, REPO_ID, (8, 8))
    frames.onsets = sim_onsets(root, frames)
    episodes = sorted(int(e) for e in np.unique(frames.episode))
    held = [episodes[k::args.folds] for k in range(args.folds)]
    ceilings = [evaluate_split(frames, [e for e in episodes if e not in h], h) for h in held]
    jobs = [(k, s) for k in range(args.folds) for s in args.seeds]
    with tempfile.TemporaryDirectory(prefix="bench_model_folds_") as tmp, \
            ThreadPoolExecutor(args.workers) as pool:
        futures = {(k, s): pool.submit(train_and_evaluate, root, Path(tmp), held[k], f"fold{k}_seed{s}", s,
                                       tuple(args.overrides)) for k, s in jobs}
        runs = {key: f.result() for key, f in futures.items()}
        mixed = {}
        if args.ensemble and len(args.seeds) > 1:
            mixed = dict(zip(range(args.folds), pool.map(
                lambda k: evaluate_ensemble(Path(tmp), held[k], k, list(args.seeds)), range(args.folds)),
                strict=True))
    folds = []
    for k in range(args.folds):
        model = [runs[(k, s)] for s in args.seeds]
        folds.append({"held_out": held[k], "runs": model,
                      "ceilings": {short: ceilings[k][long] for short, long in CEILINGS.items()}})
        if k in mixed:
            folds[-1]["ensemble"] = mixed[k]
    mean = {"model": float(np.mean([r["ev"] for f in folds for r in f["runs"]])),
            **({"ensemble": float(np.mean([f["ensemble"]["ev"] for f in folds]))} if mixed else {}),
            **{name: float(np.mean([f["runs"][0]["baseline_ev"][name] for f in folds]))
               for name in folds[0]["runs"][0]["baseline_ev"]},
            **{short: float(np.mean([f["ceilings"][short] for f in folds])) for short in CEILINGS}}
    results = {"what": __doc__.split("\n\n")[2].replace("\n", " "), "machine": basic(), "data": str(root),
               "episodes": len(episodes), "folds": folds, "mean_ev": mean, "overrides": list(args.overrides),
               "seconds": time.perf_counter() - start}
    out = Path(args.output)
    atomic_write_text(out, json.dumps(results, indent=1) + "\n")
    plot(results, out.with_suffix(".png"))
    for k, f in enumerate(folds):
        evs = " / ".join(f"{r['ev']:.3f}" for r in f["runs"])
        if "ensemble" in f:
            evs += f" (ensemble {f['ensemble']['ev']:.3f})"
        best = f["runs"][0]
        print(f"fold {k}: model {evs}; best baseline {best['best_baseline']} {best['best_baseline_ev']:.3f}; "
              + "; ".join(f"{n} {v:.3f}" for n, v in f["ceilings"].items()))
    print("mean EV: " + ", ".join(f"{n} {v:.3f}" for n, v in mean.items()))
    print(f"wrote {out} and {out.with_suffix('.png')} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
