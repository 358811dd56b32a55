# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Stage 6: the live node's values against the same bundle offline, metrics, trivial baselines, the summary.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ove_ros.main_job.config import AGREEMENT_TARGET, DemoConfig
from ove_ros.main_job.episode_bags import RecordedEpisode
from ove_ros.main_job.media import plot_curves, write_overlay_media
from ove_ros.sim.metrics import (
    EpisodeValues,
    agreement,
    mid_value,
    mistake_advantage_auroc,
    normalized_targets,
    value_metrics,
)


def offline_values(bundle: Path, episodes: Sequence[RecordedEpisode]) -> list[np.ndarray]:
    """The bundle evaluated on the recorded frames with the node's engine settings (CPU, float32)."""
    from ove_ros.engine import EngineConfig, InferenceEngine

    # resize "float": training's filter, as the live node is configured in this job (live stage).
    engine = InferenceEngine.from_bundle(bundle, EngineConfig(device="cpu", dtype="float32", num_threads=1,
                                                              warmup_iters=0, resize="float"))
    cams = list(engine.camera_names)
    out = []
    for ep in episodes:
        # Frame i of the episode is the node's frame i (a model with elapsed time as an input reads it).
        values = [engine.infer([ep.images[c][i] for c in cams], ep.states[i], ep.task, frame_index=i).value
                  for i in range(len(ep.stamps))]
        out.append(np.asarray(values, dtype=np.float64))
    return out


def build_report(cfg: DemoConfig, bundle: Path, episodes: list[RecordedEpisode], out: Path,
                 dataset: Path | None = None) -> dict[str, Any]:
    """Online and offline metrics, agreement, plots and overlay media."""
    from ove_ros.bundle import read_bundle_config
    from ove_ros.values import RewardConfig

    _, meta = read_bundle_config(bundle)
    reward = RewardConfig.from_dict(meta.reward)
    offline = offline_values(bundle, episodes)
    planned = planned_mistakes([ep.episode_id for ep in episodes], cfg.sim_config())
    online_eps, offline_eps, rows, pairs = [], [], [], ([], [])
    per_episode, live_advantages = [], []
    for ep, off, plan in zip(episodes, offline, planned.plans, strict=True):
        target = normalized_targets(len(ep.stamps), ep.success, meta.scale_for(ep.task), reward)
        online = np.full(len(ep.stamps), np.nan)
        for i in range(len(ep.stamps)):
            tick = ep.online.get(i)  # the node's frame i of the episode: the recorded frame i on the grid
            if tick is not None:
                online[i] = tick["value"]
                pairs[0].append(tick["value"])
                pairs[1].append(off[i])
        online_eps.append(EpisodeValues(ep.episode_id, ep.task, ep.success, online, target))
        offline_eps.append(EpisodeValues(ep.episode_id, ep.task, ep.success, off, target))
        mistake = plan.failure if plan is not None else ""
        adv = np.full(len(ep.stamps), np.nan)
        for record in ep.advantages:
            if 0 <= record["tick"] < adv.size:
                adv[record["tick"]] = record["advantage"]
        live_advantages.append(adv)
        outcome = "success" if ep.success else "failure"
        rows.append({"title": f"{ep.episode_id}: {outcome}" + (f" ({mistake})" if mistake else ""),
                     "success": ep.success, "target": target, "offline": off, "online": online})
        per_episode.append({"episode_id": ep.episode_id, "task": ep.task, "success": ep.success,
                            "mistake": mistake, "frames": len(ep.stamps),
                            "valued_by_node": int(np.isfinite(online).sum()),
                            "mid_value_online": mid_value(online), "mid_value_offline": mid_value(off),
                            "bag": ep.bag})
    baselines, curves = (trivial_baselines(dataset, meta, reward, episodes, offline, cfg.sim_config(),
                                           known_onsets=planned.onsets) if dataset else (None, {}))
    for i, row in enumerate(rows):  # the trivial predictor to beat and the ceiling, beside the model
        row["references"] = {f"{name} ({baselines['best_baseline']})" if name == "best baseline" else name:
                             values[i] for name, values in curves.items()}
    plots = [str(plot_curves(out / "value_curves.png", rows))]
    for row, ep in zip(rows, episodes, strict=True):
        name = ep.episode_id.replace("/", "_")
        plots.append(str(plot_curves(out / "plots" / f"{name}.png", [row])))
    latencies = [t["latency"] for ep in episodes for t in ep.online.values()]
    media = write_overlay_media(out, episodes, cfg.live_rate_hz)
    agree = agreement(*pairs)
    return {
        "online": value_metrics(online_eps),
        "offline": value_metrics(offline_eps),
        "agreement": {**agree.to_dict(), "target": AGREEMENT_TARGET,
                      "ok": bool(agree.frames > 0 and agree.max_abs_diff <= AGREEMENT_TARGET)},
        "node_latency_ms_median": float(np.median(latencies) * 1e3) if latencies else None,
        # A value model is judged against the trivial predictors, fitted on the training episodes only.
        "baselines": baselines,
        "mistake_advantage": mistake_report(live_advantages, planned.pauses, [ep.task for ep in episodes],
                                            meta, planned.releases, planned.wrong_targets),
        "episodes": per_episode,
        "plots": plots,
        "overlay": media,
    }


@dataclass
class PlannedMistakes:
    """Per held-out episode: its mistake plan (None for an id without a seed) and where its mistakes are."""

    plans: list
    pauses: list[list[int]]  # first frame of each pause
    releases: list[int | None]  # early release: the frame whose action opened the gripper
    wrong_targets: list[int | None]  # wrong target: the first frame its joints differ from the clean run's
    onsets: dict  # episode id -> sim.episodes.MistakeOnset, for the failures replayed here


def planned_mistakes(episode_ids: Sequence[str], sim_cfg) -> PlannedMistakes:
    """The mistakes of episodes ``"<task>/seed<n>"``, their onsets found by replaying each seed without
    cameras, with and without its fatal mistake (``sim.episodes.mistake_onsets``)."""
    from ove_ros.sim.episodes import mistake_onsets, plan_mistakes

    plans, specs = [], {}  # specs: position -> (task, seed) of the simulated episodes
    for i, episode_id in enumerate(episode_ids):
        task, _, seed = episode_id.partition("/seed")
        plans.append(plan_mistakes(task, int(seed), sim_cfg) if seed.isdigit() else None)
        if plans[-1] is not None and plans[-1].failure:
            specs[i] = (task, int(seed))
    found = dict(zip(specs, mistake_onsets(list(specs.values()), sim_cfg), strict=True))

    def onset(i: int, failure: str) -> int | None:
        return found[i].onset() if i in found and found[i].failure == failure else None

    return PlannedMistakes(
        plans=plans,
        pauses=[[start for start, _ in plan.pauses] if plan is not None else [] for plan in plans],
        releases=[None if (o := onset(i, "early_release")) is None else o - 1 for i in range(len(plans))],
        wrong_targets=[onset(i, "wrong_target") for i in range(len(plans))],
        onsets={episode_ids[i]: o for i, o in found.items()},
    )


RELEASE_WINDOW = 5  # frames: the early-releasing expert opens the gripper over five frames
WRONG_TARGET_WINDOW = 10  # frames: a wrong target's arm is 0.1 rad or m off the clean run's by frame 10-13


def mistake_report(advantages: list[np.ndarray], pauses: list[list[int]], tasks: list[str], meta,
                   releases: Sequence[int | None] | None = None,
                   wrong_targets: Sequence[int | None] | None = None) -> dict[str, Any]:
    """How well the n-step advantages single out the frames right after a mistake.

    The injected pauses (2-5 frames, planned from the episode's seed): a pause wastes a few frames, so the
    advantages of its frames should rank below those of clean stretches. The cost is small (a few steps'
    penalty), so value noise of the same size hides it. Early releases (``releases``, the frame whose action
    opened the gripper): the episode turns from a success into a failure there, so its first
    ``RELEASE_WINDOW`` frames should have the lowest advantages of all (under ``early_release``). Wrong
    targets (``wrong_targets``, the first frame the arm strays, frame 1 or 2): the episode is lost from
    there, and its first ``WRONG_TARGET_WINDOW`` frames, while the arm steers away, are scored the same way
    (under ``wrong_target``)."""
    thresholds = [meta.advantage_thresholds.get(t, 0.0) for t in tasks]
    out = mistake_advantage_auroc(advantages, pauses, window=2, thresholds=thresholds,
                                  margin_before=meta.n_step)
    report = {**out, "mistakes": "pauses (first 2 frames of each)", "episodes_with_pauses":
              sum(bool(p) for p in pauses)}
    for key, onsets, window, what in (("early_release", releases, RELEASE_WINDOW, "early releases"),
                                      ("wrong_target", wrong_targets, WRONG_TARGET_WINDOW, "wrong targets")):
        if onsets is None:
            continue
        marks = [[] if m is None else [int(m)] for m in onsets]
        scored = mistake_advantage_auroc(advantages, marks, window=window, thresholds=thresholds,
                                         margin_before=meta.n_step)
        report[key] = {**scored, "mistakes": f"{what} (first {window} frames)",
                       "episodes": sum(bool(m) for m in marks)}
    return report


SIM_EV_TARGET = 0.8  # held-out EV asked of the simulated demo (the real G1 episodes are asked 0.9)
CEILING_TOLERANCES = {"first_change": 1e-9, "joints_0.01": 0.01}  # rad / m (sim.episodes.MistakeOnset)


def trivial_baselines(dataset: Path, meta, reward, episodes: Sequence[RecordedEpisode],
                      offline: Sequence[np.ndarray], sim_cfg=None, known_onsets: dict | None = None,
                      ) -> tuple[dict[str, Any], dict[str, list]]:
    """The offline values of the held-out episodes next to the trivial predictors (frame index, state-only,
    state + frame index, training mean), fitted on the training dataset's episodes only; with ``sim_cfg``
    (the simulator that recorded them) also the causal ceiling (``training.ceiling``): the EV of the best
    estimate that knows a failure only from the frame its mistake first changes the joints (or moves them
    by more than 0.01; ``known_onsets``, episode id -> ``MistakeOnset``, are not replayed again). Returns
    the figures and, per held-out episode, the curves of the best baseline and of the ceiling
    (``{"best baseline": [...], "causal ceiling": [...]}``, for the plots)."""
    import pyarrow.parquet as pq

    from ove_ros.training.baselines import FrameSet, baseline_report, fit_baselines

    table = pq.read_table(sorted((dataset / "data").rglob("*.parquet")),
                          columns=["episode_index", "frame_index", "observation.state", "reward",
                                   "task_index"]).to_pandas()
    tasks = pq.read_table(dataset / "meta" / "tasks.parquet").to_pandas()
    task_of = {int(i): str(t) for t, i in zip(tasks.index, tasks["task_index"], strict=True)}
    train = []
    for ep, rows in table.groupby("episode_index"):
        rows = rows.sort_values("frame_index")
        success = float(np.ravel(rows["reward"].iloc[-1])[0]) > 0
        task = task_of[int(rows["task_index"].iloc[0])]
        train.append({"episode": int(ep), "task": task, "success": success,
                      "states": np.stack([np.asarray(s, np.float64) for s in rows["observation.state"]]),
                      "targets": normalized_targets(len(rows), success, meta.scale_for(task), reward)})
    held = [{"episode": 100_000 + i, "task": ep.task, "success": ep.success, "states": ep.states,
             "targets": normalized_targets(len(ep.stamps), ep.success, meta.scale_for(ep.task), reward)}
            for i, ep in enumerate(episodes)]
    train_set, held_set = FrameSet.from_episodes(train), FrameSet.from_episodes(held)
    predictions = fit_baselines(train_set, held_set)
    report = baseline_report(train_set, held_set, np.concatenate(list(offline)), predictions=predictions)
    out = {k: report[k] for k in ("best_baseline", "margin_ev", "beats_every_baseline", "frames")} | {
        "model_ev": report["model"]["ev"],
        "baseline_ev": {name: b["ev"] for name, b in report["baselines"].items()}}
    splits = np.cumsum([len(h["targets"]) for h in held])[:-1]
    curves = {"best baseline": np.split(predictions[out["best_baseline"]], splits)}
    ids_file = dataset / "meta" / "ove_ros_episodes.json"
    if sim_cfg is None or not ids_file.exists():
        return out, curves
    from ove_ros.sim.episodes import mistake_onsets
    from ove_ros.sim.metrics import explained_variance
    from ove_ros.training.ceiling import causal_ceiling

    ids = {int(e["episode_index"]): e["episode_id"] for e in json.loads(ids_file.read_text())["episodes"]}
    ids |= {h["episode"]: ep.episode_id for h, ep in zip(held, episodes, strict=True)}
    keys = sorted(ids)
    specs = [ids[k].partition("/seed") for k in keys]
    if not all(task in sim_cfg.tasks and seed.isdigit() for task, _, seed in specs):
        return out, curves  # episodes the simulator did not record: no onsets to replay
    known = known_onsets or {}
    replay = [(k, (t, int(s))) for k, (t, _, s) in zip(keys, specs, strict=True) if ids[k] not in known]
    found = {k: known[ids[k]] for k in keys if ids[k] in known}
    found |= dict(zip([k for k, _ in replay], mistake_onsets([spec for _, spec in replay], sim_cfg),
                      strict=True))
    ceilings = {name: causal_ceiling(train_set, held_set, {k: o.onset(tol) for k, o in found.items()})
                for name, tol in CEILING_TOLERANCES.items()}
    out["causal_ceiling_ev"] = {name: explained_variance(c, held_set.target) for name, c in ceilings.items()}
    curves["causal ceiling"] = np.split(ceilings["first_change"], splits)
    return out, curves


def print_summary(summary: dict[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title="Main job: held-out episodes")
    table.add_column("metric")
    table.add_column("live node", justify="right")
    table.add_column("offline", justify="right")
    table.add_column("target", justify="right")

    def fmt(v: Any) -> str:
        return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4f}"

    on, off = summary["report"]["online"], summary["report"]["offline"]
    table.add_row("episodes (success/failure)", f"{on['episodes']} ({on.get('successes', 0)}/"
                  f"{on.get('failures', 0)})", "", "")
    table.add_row("frames valued", str(on["frames"]), str(off["frames"]), "")
    table.add_row("EV", fmt(on["ev"]), fmt(off["ev"]), f">= {SIM_EV_TARGET:g}")
    table.add_row("AUROC failure @ mid-episode", fmt(on["auroc_mid"]), fmt(off["auroc_mid"]), ">= 0.95")
    agree = summary["report"]["agreement"]
    table.add_row("max |online - offline|", fmt(agree["max_abs_diff"]), f"{agree['frames']} frames",
                  f"<= {AGREEMENT_TARGET:g}")
    table.add_row("node latency median (ms)", fmt(summary["report"]["node_latency_ms_median"]), "", "")
    base = summary["report"].get("baselines")
    if base:
        table.add_row(f"EV of the best trivial predictor ({base['best_baseline']})",
                      "", fmt(base["baseline_ev"][base["best_baseline"]]), "model above it")
        ceiling = base.get("causal_ceiling_ev")
        if ceiling:
            table.add_row("EV ceiling of any causal estimate (failure known from its first change / "
                          "from 0.01 off)", "",
                          f"{fmt(ceiling['first_change'])} / {fmt(ceiling['joints_0.01'])}", "model below it")
    mistakes = summary["report"].get("mistake_advantage")
    if mistakes:
        table.add_row("AUROC of -A on paused frames vs clean ones", fmt(mistakes["auroc"]),
                      f"{mistakes['frames_after_mistake']}/{mistakes['frames_clean']} frames", ">= 0.9")
        for key, what in (("early_release", "early-release"), ("wrong_target", "wrong-target")):
            scored = mistakes.get(key)
            if scored:
                table.add_row(f"AUROC of -A on {what} frames vs clean ones", fmt(scored["auroc"]),
                              f"{scored['frames_after_mistake']}/{scored['frames_clean']} frames", ">= 0.9")
    for name, run in summary["report"].get("parity", {}).items():
        table.add_row(f"{name}: max |dV| / |dA| vs training code", fmt(run["value_max_abs_diff"]),
                      fmt(run["advantage_max_abs_diff"]), f"<= {run['tolerance']:g}")
        table.add_row(f"{name}: frames valued, advantages, sign flips",
                      f"{run['valued']}/{run['frames']}", str(run["advantages"]), str(run["sign_flips"]))
    console.print(table)
    timing = Table(title="Stage times (s)")
    timing.add_column("stage")
    timing.add_column("seconds", justify="right")
    timing.add_column("note")
    for stage, info in summary["stages"].items():
        timing.add_row(stage, f"{info['seconds']:.1f}", info.get("note", ""))
    console.print(timing)


def fmt_diff(v: Any) -> str:
    return "-" if v is None else f"{v:.2e}"
