# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Times of the main job: the simulator alone (ms per frame, with and without cameras), then every stage of
``python -m ove_ros.main_job`` (record, convert, train + bundle, live node, report) without the cache.

    python benchmarks/bench_main_job.py [episodes=N] [heldout=N] [train_steps=N] [seeds=N]
                                        [reuse=outputs/demo] [sim_only=true]
    python benchmarks/bench_main_job.py reuse=outputs/demo spread_only=true seeds=2 first_seed=0 \
        label=bins16 -- 'model.overrides={state_bins: 16}'

(defaults: the main job's own, ``ove_ros.main_job.config.DemoConfig``)

``seeds=N`` then retrains on the same recorded dataset with training seeds 1..N and values the same
held-out bags offline (the node's values equal the offline ones), so a single run's EV and AUROC come with
their spread.
``reuse`` takes the main job's output folder of an earlier run instead of running it again.
Training overrides after ``--`` (``key=value``, as ``ove_ros.training.train`` takes them) apply to every
retrained seed; each retrained seed is reported with the trivial baselines on the same held-out frames (the
best one and the model's EV margin over it). ``spread_only=true`` skips the simulator timings and appends the
runs to ``benchmarks/results/main_job_experiments.json`` (``override_sweep``) instead of writing
``main_job.json``.

Prints a table and writes JSON to ``benchmarks/results/main_job.json`` (stage seconds, EV, AUROC,
online-vs-offline agreement, the machine).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import machine_info  # noqa: E402

from ove_ros import typed_cli  # noqa: E402
from ove_ros.main_job.config import DemoConfig, jsonable  # noqa: E402
from ove_ros.main_job.report import offline_values  # noqa: E402
from ove_ros.main_job.sim_mode import run_demo  # noqa: E402
from ove_ros.sim.episodes import GL_BACKEND, SimConfig, SimWorld  # noqa: E402
from ove_ros.training.checkpoint import atomic_write_text  # noqa: E402
from ove_ros.typed_config import setting  # noqa: E402


def time_simulator(cameras: tuple[str, ...], image_size: int, episodes: int = 3) -> dict[str, float]:
    """Mean ms per frame over a few episodes (one per task), after the environments are built."""
    config = SimConfig(cameras=cameras, image_size=image_size)
    with SimWorld(config) as world:
        world.prepare()
        frames = 0
        start = time.perf_counter()
        for i in range(episodes):
            frames += len(world.rollout(config.tasks[i % len(config.tasks)], 500 + i).frames)
        seconds = time.perf_counter() - start
    return {"cameras": len(cameras), "image_size": image_size, "frames": frames,
            "ms_per_frame": 1e3 * seconds / frames}


def offline_mistake_report(summary: dict, meta, reward, episodes: list, values: list) -> dict:
    """The mistake report of ``main_job.report`` on the offline values: n-step advantages over every
    recorded frame (the node's on a lossless stream), scored on the pauses, early releases and wrong targets
    planned from each seed."""
    from ove_ros.main_job.report import mistake_report, planned_mistakes
    from ove_ros.values import episode_rewards, n_step_advantages

    sim_cfg = DemoConfig(**{k: v for k, v in summary["config"].items()
                            if k in DemoConfig.__dataclass_fields__}).sim_config()
    advantages = [n_step_advantages(episode_rewards(len(v), ep.success, reward) / meta.scale_for(ep.task), v,
                                    meta.n_step) for ep, v in zip(episodes, values, strict=True)]
    planned = planned_mistakes([ep.episode_id for ep in episodes], sim_cfg)
    return mistake_report(advantages, planned.pauses, [ep.task for ep in episodes], meta, planned.releases,
                          planned.wrong_targets)


def seed_spread(summary: dict, seeds: int, work: Path, overrides: tuple[str, ...] = (),
                first_seed: int = 1, ensemble: bool = False) -> list[dict]:
    """Held-out metrics of models trained with training seeds ``first_seed``.. (``seeds`` of them) on the
    run's own dataset with the training ``overrides``, each next to the trivial baselines; with
    ``ensemble``, also of the ensemble bundle of all of them (``ove_ros.ensemble``)."""
    from ove_ros.main_job.episode_bags import read_episode_bag
    from ove_ros.main_job.train_stage import train_and_bundle
    from ove_ros.sim.episodes import ROBOT_JOINTS

    # The run's model settings; a summary from before they were main-job settings trained the preset as is,
    # without joint noise or the image decoder.
    kept = {k: v for k, v in summary["config"].items() if k in ("train_steps", "train_config")}
    cfg = DemoConfig(**kept, model_overrides=summary["config"].get("model_overrides", {}),
                     state_noise=summary["config"].get("state_noise", 0.0),
                     aux_image_weight=summary["config"].get("aux_image_weight", 0.0), ensemble=1)
    cameras = summary["config"]["cameras"]
    episodes = [read_episode_bag(Path(e["bag"]), cameras, list(ROBOT_JOINTS), "value_estimator")
                for e in summary["report"]["episodes"]]
    rows, checkpoints = [], []
    for seed in range(first_seed, first_seed + seeds):
        start = time.perf_counter()
        bundle, info = train_and_bundle(cfg, Path(summary["dataset"]), work / "runs", f"seed{seed}",
                                        work / f"bundle_seed{seed}", work,
                                        ["data.repo_id=sim/metaworld_demo", *cfg.training_args(),
                                         f"training.seed={seed}", *overrides])
        checkpoints.append(info["checkpoint"])
        rows.append(bundle_row(summary, cfg, episodes, bundle, work / f"heldout_values_seed{seed}.npz",
                               {"training_seed": seed}, start))
    if ensemble and len(checkpoints) > 1:
        from ove_ros.training.convert import convert

        start = time.perf_counter()
        bundle = convert(checkpoints[0], work / "bundle_ensemble", members=checkpoints[1:])
        members = list(range(first_seed, first_seed + seeds))
        rows.append(bundle_row(summary, cfg, episodes, bundle, work / "heldout_values_ensemble.npz",
                               {"training_seed": None, "ensemble_of_seeds": members}, start))
    return rows


def bundle_row(summary: dict, cfg: DemoConfig, episodes: list, bundle: Path, values_file: Path,
               row: dict, start: float) -> dict:
    """One bundle's held-out metrics offline (values, baselines, mistakes, smoothness), printed and
    returned as a row of the spread."""
    import numpy as np

    from ove_ros.bundle import read_bundle_config
    from ove_ros.main_job.report import trivial_baselines
    from ove_ros.sim.metrics import EpisodeValues, normalized_targets, value_metrics
    from ove_ros.training.metrics import smoothness
    from ove_ros.values import RewardConfig

    _, meta = read_bundle_config(bundle)
    reward = RewardConfig.from_dict(meta.reward)
    values = offline_values(bundle, episodes)
    evaluated = [
        EpisodeValues(ep.episode_id, ep.task, ep.success, v,
                      normalized_targets(len(ep.stamps), ep.success, meta.scale_for(ep.task), reward))
        for ep, v in zip(episodes, values, strict=True)
    ]
    metrics = value_metrics(evaluated)
    mistakes = offline_mistake_report(summary, meta, reward, episodes, values)
    # Per-episode ratios, averaged (training.metrics.smoothness pools the frames of the episodes it gets).
    smooth = [smoothness(np.zeros(e.values.size), np.arange(e.values.size), e.values,
                         e.targets)["smoothness_ratio"] for e in evaluated]
    np.savez(values_file,
             **{f"{e.episode_id}:{k}": getattr(e, k) for e in evaluated for k in ("values", "targets")})
    base, _ = trivial_baselines(Path(summary["dataset"]), meta, reward, episodes, values, cfg.sim_config())
    best = base["best_baseline"]
    row = {**row, "ev": metrics["ev"], "auroc_mid": metrics["auroc_mid"],
           "mae": metrics["mae"], "best_baseline": best,
           "best_baseline_ev": base["baseline_ev"][best], "margin_ev": base["margin_ev"],
           "baseline_ev": base["baseline_ev"],
           "causal_ceiling_ev": base.get("causal_ceiling_ev"),
           "smoothness_ratio": float(np.mean(smooth)),
           "mistake_advantage_auroc": mistakes["auroc"],
           "release_advantage_auroc": mistakes["early_release"]["auroc"],
           "wrong_target_advantage_auroc": mistakes["wrong_target"]["auroc"],
           "mistake_advantage": mistakes,
           "seconds": time.perf_counter() - start}
    who = (f"training seed {row['training_seed']}" if row.get("training_seed") is not None
           else f"ensemble of seeds {row['ensemble_of_seeds']}")
    print(f"  {who}: held-out EV {metrics['ev']:.3f}, AUROC {metrics['auroc_mid']:.3f}, "
          f"advantage AUROC pauses {mistakes['auroc']:.3f} / early releases "
          f"{mistakes['early_release']['auroc']:.3f} / wrong targets "
          f"{mistakes['wrong_target']['auroc']:.3f}, smoothness {np.mean(smooth):.1f}; "
          f"best baseline {best} {base['baseline_ev'][best]:.3f}, margin {base['margin_ev']:+.3f}; "
          f"causal ceiling {base['causal_ceiling_ev']['first_change']:.3f}")
    return row


def append_sweep(path: Path, entry: dict) -> None:
    """Appends one setting's runs to the experiments file's ``override_sweep`` list (atomic rewrite)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault("override_sweep", []).append(jsonable(entry))
    atomic_write_text(path, json.dumps(data, indent=1) + "\n")


def spread_only(args: Settings, overrides: tuple[str, ...]) -> int:
    """Retrains on an earlier run's dataset with the overrides and appends the runs to the experiments."""
    summary = json.loads((Path(args.reuse) / "summary.json").read_text())
    with tempfile.TemporaryDirectory(prefix="bench_main_job_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp) / "seeds"
        work.mkdir(parents=True, exist_ok=True)
        runs = seed_spread(summary, args.seeds, work, overrides, args.first_seed, args.ensemble)
    entry = {"label": args.label or " ".join(overrides) or "default", "overrides": list(overrides),
             "dataset": summary["dataset"], "train_steps": summary["config"]["train_steps"],
             "heldout_episodes": len(summary["report"]["episodes"]), "runs": runs,
             "machine": {**machine_info.basic(), "load_avg_1min_end": os.getloadavg()[0]}}
    append_sweep(Path(args.experiments), entry)
    print(f"appended to {args.experiments}")
    return 0


USAGE = "usage: python benchmarks/bench_main_job.py [key=value ...] [-- training overrides key=value ...]"


@dataclass
class Settings:
    """What to run and where the figures go (``key=value``; ``--help`` lists the keys)."""

    episodes: int = setting(DemoConfig.episodes, "Training episodes of the main job.", ge=1)
    heldout: int = setting(DemoConfig.heldout, "Held-out episodes of the main job.", ge=1)
    train_steps: int = setting(DemoConfig.train_steps, "Optimizer steps of the main job.", ge=1)
    sim_only: bool = setting(False, "Only the simulator timings.")
    seeds: int = setting(2, "Extra training seeds for the spread (0: none).", ge=0)
    reuse: str | None = setting(None, "An earlier run's output folder (its summary.json).")
    first_seed: int = setting(1, "First retrained training seed.")
    spread_only: bool = setting(False, "Only retrain on reuse's dataset; append to experiments.")
    label: str = setting("", "Name of the setting in experiments.")
    keep: str | None = setting(None, "spread_only: keep runs, bundles and held-out values in this folder.")
    ensemble: bool = setting(False, "spread_only: also value the ensemble bundle of the retrained seeds.")
    output: str = setting(str(REPO / "benchmarks" / "results" / "main_job.json"), "Result JSON.")
    experiments: str = setting(str(REPO / "benchmarks" / "results" / "main_job_experiments.json"),
                               "The experiments file spread_only appends to.")
    overrides: list[str] = setting([], "Training overrides (after --, or a key=value with a key not listed).")


def main(argv: list[str] | None = None) -> int:
    args = typed_cli.parse_or_exit(Settings, argv, USAGE, __doc__.split("\n\n")[0], rest="overrides")
    overrides = tuple(args.overrides)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        typed_cli.fail(f"training overrides must be key=value, got {bad}; e.g. -- training.steps=400")
    if args.spread_only:
        if not args.reuse or args.seeds < 1:
            typed_cli.fail("spread_only=true needs reuse=<earlier run's output folder> and seeds >= 1")
        return spread_only(args, overrides)

    results: dict = {"machine": {**machine_info.basic(), "gl_backend": GL_BACKEND}}
    results["simulator"] = [time_simulator((), 64), time_simulator(("topview", "gripperPOV"), 64),
                            time_simulator(("topview", "gripperPOV"), 96)]
    for row in results["simulator"]:
        print(f"simulator {row['cameras']} camera(s) at {row['image_size']} px: "
              f"{row['ms_per_frame']:.1f} ms/frame")
    if not args.sim_only:
        with tempfile.TemporaryDirectory(prefix="bench_main_job_") as tmp:
            if args.reuse:
                summary = json.loads((Path(args.reuse) / "summary.json").read_text())
                results["reused"] = str(args.reuse)
            else:
                summary = run_demo(DemoConfig(output=Path(tmp) / "demo", cache_dir=Path(tmp) / "cache",
                                              use_cache=False, episodes=args.episodes, heldout=args.heldout,
                                              train_steps=args.train_steps))
            if args.seeds:
                work = Path(tmp) / "seeds"
                work.mkdir()
                own = summary["report"]["offline"]
                spread = [{"training_seed": 0, "ev": own["ev"], "auroc_mid": own["auroc_mid"]},
                          *seed_spread(summary, args.seeds, work, overrides, args.first_seed)]
                evs = [r["ev"] for r in spread]
                aurocs = [r["auroc_mid"] for r in spread]
                results["seed_spread"] = {
                    "runs": spread, "ev_mean": statistics.mean(evs), "ev_std": statistics.stdev(evs),
                    "auroc_mean": statistics.mean(aurocs), "auroc_std": statistics.stdev(aurocs),
                }
        results["stages_s"] = {k: v["seconds"] for k, v in summary["stages"].items()}
        results["total_s"] = summary["total_seconds"]
        results["metrics"] = {"online": summary["report"]["online"], "offline": summary["report"]["offline"],
                              "agreement": summary["report"]["agreement"],
                              "node_latency_ms_median": summary["report"]["node_latency_ms_median"],
                              "baselines": summary["report"]["baselines"],
                              "live_parity": summary["report"]["parity"]["live"]}
        kept = ("episodes", "heldout", "train_steps", "max_steps", "model_overrides", "state_noise",
                "aux_image_weight", "ensemble")
        results["config"] = {k: summary["config"].get(k) for k in kept}
        results["machine"]["load_avg_1min_end"] = os.getloadavg()[0]
        for stage, seconds in results["stages_s"].items():
            print(f"  {stage:60s} {seconds:7.1f} s")
        online = results["metrics"]["online"]
        ceiling = online.get("ev_ceiling_without_clock", float("nan"))
        print(f"  total {results['total_s']:.0f} s; held-out EV {online['ev']:.3f} (ceiling without a clock "
              f"{ceiling:.3f}), AUROC {online['auroc_mid']:.3f}, "
              f"max |online - offline| {results['metrics']['agreement']['max_abs_diff']:.2e}")
        if "seed_spread" in results:
            sp = results["seed_spread"]
            print(f"  over {len(sp['runs'])} training seeds: EV {sp['ev_mean']:.3f} +- {sp['ev_std']:.3f}, "
                  f"AUROC {sp['auroc_mean']:.3f} +- {sp['auroc_std']:.3f}")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(output, json.dumps(jsonable(results), indent=2))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
