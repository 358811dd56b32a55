# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""LeRobot v3 datasets -> value-model samples with a Monte Carlo value target per frame.

Targets are computed once per dataset from the parquet columns (episode, task and reward; no frame is
decoded) with the functions of :mod:`ove_ros.values`, then cached as ``.npz`` keyed by the dataset files and
the reward configuration. :class:`ValueFrameDataset` serves the frames of a set of episodes: camera images
(resized to the model's size), the raw joint vector, the task text and the normalized target in ``[-1, 0]``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import Dataset

from ove_ros.training.checkpoint import atomic_save_file
from ove_ros.values import (
    RewardConfig,
    clip_counts,
    compute_task_normalizers,
    episode_rewards,
    mc_returns,
    normalize_returns,
    rewards_from_column,
)

logger = logging.getLogger(__name__)

IMAGES_PREFIX = "observation.images."
TARGETS_VERSION = 2  # bump when the cached arrays change meaning


# ---------------------------------------------------------------------------------------- opening data


def resolve_video_backend(requested: str | None) -> str:
    """``requested`` when given; otherwise torchcodec when its FFmpeg libraries load, else pyav."""
    if requested:
        return requested
    try:
        import torchcodec.decoders  # noqa: F401 -- loading it loads FFmpeg, which is what may fail
    except Exception:  # ImportError, RuntimeError (missing libavutil), OSError
        return "pyav"
    return "torchcodec"


def open_lerobot_dataset(
    repo_id: str,
    root: str | Path | None,
    episodes: Sequence[int] | None = None,
    video_backend: str | None = None,
) -> Any:
    """Open a local LeRobot v3 dataset with a clear error for missing or old-format datasets."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    if root is not None:
        info_path = Path(root) / "meta" / "info.json"
        if not info_path.is_file():
            raise FileNotFoundError(
                f"no LeRobot dataset at {root} ({info_path} is missing); data.root must be the dataset "
                "directory (the one holding meta/, data/ and videos/)"
            )
        version = json.loads(info_path.read_text()).get("codebase_version", "?")
        if not str(version).startswith("v3"):
            raise ValueError(
                f"dataset {root} is LeRobot {version}; this lerobot reads v3.0 only. Convert a copy with "
                "lerobot.datasets.v30.convert_dataset_v21_to_v30.convert_dataset(repo_id, root=<parent dir>, "
                "push_to_hub=False)"
            )
    return LeRobotDataset(
        repo_id,
        root=root,
        episodes=list(episodes) if episodes else None,
        video_backend=resolve_video_backend(video_backend),
    )


def camera_keys(dataset: Any, camera_names: Sequence[str]) -> list[str]:
    """Feature keys of the configured cameras (short or full names); all cameras when none are given."""
    available = list(dataset.meta.camera_keys)
    if not camera_names:
        if not available:
            raise ValueError(f"dataset {dataset.repo_id} has no camera features")
        return available
    keys = []
    for name in camera_names:
        key = name if name.startswith(IMAGES_PREFIX) else IMAGES_PREFIX + name
        if key not in available:
            raise ValueError(f"camera {name!r} is not in dataset {dataset.repo_id}; it has {available}")
        keys.append(key)
    return keys


def short_camera_name(key: str) -> str:
    return key[len(IMAGES_PREFIX) :] if key.startswith(IMAGES_PREFIX) else key


def joint_names(dataset: Any, state_key: str) -> list[str] | None:
    """Joint names of the state feature (LeRobot stores a list or ``{"axis": [...]}``)."""
    names = dataset.meta.features.get(state_key, {}).get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == 1 and isinstance(names[0], list):
        names = names[0]  # some converted datasets nest the list once more
    if not names or not all(isinstance(n, str) for n in names):
        return None
    return [str(n) for n in names]


def state_stats(dataset: Any, state_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-joint (min, max) of the state feature from the dataset's ``meta/stats.json``."""
    if state_key not in dataset.meta.features:
        raise ValueError(f"dataset {dataset.repo_id} has no {state_key!r} feature")
    stats = (dataset.meta.stats or {}).get(state_key)
    if stats is None or "min" not in stats or "max" not in stats:
        raise ValueError(
            f"dataset {dataset.repo_id} has no min/max statistics for {state_key!r} in meta/stats.json"
        )
    low = np.asarray(stats["min"], dtype=np.float64).reshape(-1)
    high = np.asarray(stats["max"], dtype=np.float64).reshape(-1)
    return low, high


def task_table(dataset: Any) -> dict[int, str]:
    """task_index -> task text."""
    tasks = dataset.meta.tasks
    return {int(idx): str(task) for task, idx in zip(tasks.index, tasks["task_index"], strict=True)}


# ------------------------------------------------------------------------------------------- targets


def _column(table: Any, name: str) -> np.ndarray:
    """One parquet column as a flat numpy array (``[1]``-shaped features are unwrapped)."""
    col = table.column(name)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if (
        pa.types.is_list(col.type)
        or pa.types.is_fixed_size_list(col.type)
        or pa.types.is_large_list(col.type)
    ):
        col = col.flatten()
    return col.to_numpy(zero_copy_only=False)


@dataclass
class ValueTargets:
    """Per-frame targets of a dataset, sorted by the dataset's absolute ``index``.

    ``rows`` are the positions of the frames in the opened dataset (what ``dataset[row]`` reads).
    """

    rows: np.ndarray
    index: np.ndarray
    episode_index: np.ndarray
    frame_index: np.ndarray
    task_index: np.ndarray
    rewards: np.ndarray
    returns: np.ndarray
    values: np.ndarray
    tasks: dict[int, str]
    normalizers: dict[str, float]
    episode_success: dict[int, bool] = field(default_factory=dict)  # complete episodes only
    # The episodes the normalizers were fitted on (None: every episode of the dataset, before a split).
    normalizer_episodes: list[int] | None = None
    # Episodes cut short without an outcome (reward 0, is_done false on the last frame): their returns stop at
    # the cut, so they are no value targets; their advantages bootstrap at the cut (values.n_step_advantages).
    truncated: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.rows.size)

    @property
    def episodes(self) -> np.ndarray:
        return np.unique(self.episode_index)

    @property
    def complete_episodes(self) -> np.ndarray:
        """The episodes with an outcome: what value targets (training, evaluation, baselines) come from."""
        eps = self.episodes
        return eps[~np.isin(eps, np.asarray(self.truncated, dtype=np.int64))]

    def frame_tasks(self, mask: np.ndarray | None = None) -> list[str]:
        ids = self.task_index if mask is None else self.task_index[mask]
        return [self.tasks[int(i)] for i in ids]

    def scales(self) -> np.ndarray:
        """Per-frame normalizer (the scale of the frame's episode task)."""
        return np.asarray([self.normalizers[t] for t in self._episode_tasks_per_frame()], dtype=np.float64)

    def normalized_rewards(self) -> np.ndarray:
        return self.rewards / self.scales()

    def _episode_tasks_per_frame(self) -> list[str]:
        first = self._episode_first_task()
        return [first[int(e)] for e in self.episode_index]

    def _episode_first_task(self) -> dict[int, str]:
        _, starts = np.unique(self.episode_index, return_index=True)
        return {int(self.episode_index[s]): self.tasks[int(self.task_index[s])] for s in starts}

    def episode_mask(self, episodes: Sequence[int]) -> np.ndarray:
        return np.isin(self.episode_index, np.asarray(list(episodes), dtype=np.int64))

    def fit_normalizers(self, episodes: Sequence[int]) -> None:
        """Refit the per-task scales on ``episodes`` only (the training split) and renormalize every frame.

        A scale fitted on validation episodes too would leak their lengths into the training targets. Tasks
        seen only outside ``episodes`` get the largest fitted scale (what a bundle uses for unknown tasks).
        """
        slices = self.episode_slices()
        first = self._episode_first_task()
        chosen = sorted(int(e) for e in episodes if int(e) in slices)
        if not chosen:
            raise ValueError(f"fit_normalizers: none of episodes {list(episodes)[:10]} is in the targets")
        norms = compute_task_normalizers(
            [self.returns[slices[e]] for e in chosen], [first[e] for e in chosen]
        )
        fallback = max(norms.values())
        for task in set(first.values()) - set(norms):
            norms[task] = fallback
        for ep, sl in slices.items():
            self.values[sl] = normalize_returns(self.returns[sl], norms[first[ep]])
        self.normalizers = norms
        self.normalizer_episodes = chosen

    def clip_counts(self, episodes: Sequence[int] | None = None) -> dict[str, int]:
        """Frames of ``episodes`` (all when None) whose normalized return falls outside [-1, 0] and is
        clipped: ``below`` (an episode longer or costlier than any the scale was fitted on), ``above``
        (a positive return), and ``frames`` in all."""
        mask = np.ones(len(self), dtype=bool) if episodes is None else self.episode_mask(episodes)
        below, above = clip_counts(self.returns[mask], self.scales()[mask])
        return {"below": below, "above": above, "frames": int(mask.sum())}

    def episode_slices(self) -> dict[int, slice]:
        """Episode -> slice of the (index-sorted) arrays; episodes are contiguous in index order."""
        eps, starts, counts = np.unique(self.episode_index, return_index=True, return_counts=True)
        return {int(e): slice(int(s), int(s + c)) for e, s, c in zip(eps, starts, counts, strict=True)}

    # -------------------------------------------------------------------------------------- caching

    def save(self, path: Path) -> None:
        meta = {
            "version": TARGETS_VERSION,
            "tasks": {str(k): v for k, v in self.tasks.items()},
            "normalizers": self.normalizers,
            "episode_success": {str(k): v for k, v in self.episode_success.items()},
            "truncated": [int(e) for e in self.truncated],
        }
        arrays = {
            name: getattr(self, name)
            for name in (
                "rows",
                "index",
                "episode_index",
                "frame_index",
                "task_index",
                "rewards",
                "returns",
                "values",
            )
        }

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)

        atomic_save_file(path, write, suffix=".npz")

    @classmethod
    def load(cls, path: Path) -> ValueTargets:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("version") != TARGETS_VERSION:
                raise ValueError(f"cached targets {path} have version {meta.get('version')}")
            arrays = {k: data[k] for k in data.files if k != "meta"}
        return cls(
            **arrays,
            tasks={int(k): v for k, v in meta["tasks"].items()},
            normalizers={k: float(v) for k, v in meta["normalizers"].items()},
            episode_success={int(k): bool(v) for k, v in meta["episode_success"].items()},
            truncated=[int(e) for e in meta.get("truncated", [])],
        )


def compute_value_targets(
    dataset: Any,
    reward: RewardConfig,
    reward_key: str = "reward",
    assume_success_without_reward: bool = False,
) -> ValueTargets:
    """Rewards, undiscounted returns and per-task normalized values of every frame of ``dataset``.

    Terminal-outcome mode reads only the sign of each episode's last reward; precomputed mode uses the
    column as is. A dataset without a reward column is accepted only with ``assume_success_without_reward``
    (demonstrations: every episode succeeds). In terminal-outcome mode an episode whose last frame has
    reward 0 and ``is_done`` false was cut short (the bag converter's ``truncated``): it costs the step
    penalty on every frame, is listed in ``truncated`` and fits no normalizer.
    """
    table = dataset.hf_dataset.data
    names = set(table.column_names)
    index = _column(table, "index").astype(np.int64)
    order = np.argsort(index, kind="stable")
    rows = np.arange(index.size, dtype=np.int64)[order]
    index = index[order]
    episode_index = _column(table, "episode_index").astype(np.int64)[order]
    frame_index = _column(table, "frame_index").astype(np.int64)[order]
    task_index = _column(table, "task_index").astype(np.int64)[order]
    if reward_key in names:
        reward_col = _column(table, reward_key).astype(np.float64)[order]
    elif assume_success_without_reward and not reward.precomputed_rewards:
        reward_col = None
    else:
        raise ValueError(
            f"dataset {dataset.repo_id} has no {reward_key!r} column. For demonstrations (every episode a "
            "success) set data.assume_success_without_reward=true; otherwise label the outcomes first "
            "(see ARCHITECTURE.md: reward +1/-1 on the last frame)"
        )
    if index.size == 0:
        raise ValueError(f"dataset {dataset.repo_id} has no frames")
    done_col = _column(table, "is_done").astype(bool)[order] if "is_done" in names else None

    # Episodes are contiguous runs of equal episode_index in index order.
    boundaries = np.flatnonzero(np.diff(episode_index)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [index.size]])
    if np.unique(episode_index).size != starts.size:
        raise ValueError(f"dataset {dataset.repo_id}: an episode's frames are not contiguous in index order")

    tasks = task_table(dataset)
    rewards = np.empty(index.size, dtype=np.float64)
    returns = np.empty(index.size, dtype=np.float64)
    ep_returns: list[np.ndarray] = []
    ep_tasks: list[str] = []
    success: dict[int, bool] = {}
    truncated: list[int] = []
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        ep = int(episode_index[s])
        if not np.array_equal(frame_index[s:e], np.arange(e - s)):
            raise ValueError(f"episode {ep} of {dataset.repo_id} has missing or unordered frame_index values")
        cut = (reward_col is not None and not reward.precomputed_rewards and done_col is not None
               and reward_col[e - 1] == 0 and not done_col[e - 1])
        if cut:
            r = episode_rewards(e - s, None, reward)
            truncated.append(ep)
        elif reward_col is None:
            r = episode_rewards(e - s, True, reward)
        else:
            try:
                r = rewards_from_column(reward_col[s:e], reward)
            except ValueError as exc:
                raise ValueError(f"episode {ep} of {dataset.repo_id}: {exc}") from exc
        rewards[s:e] = r
        g = mc_returns(r)
        returns[s:e] = g
        ep_returns.append(g)
        ep_tasks.append(tasks[int(task_index[s])])
        if not cut:
            success[ep] = bool(reward_col is None or reward_col[e - 1] > 0)

    if reward.precomputed_rewards:
        positive = int((returns > 0).sum())
        if positive:
            raise ValueError(
                f"dataset {dataset.repo_id}: data.precomputed_rewards=true, but {positive} of {index.size} "
                "frames have a positive return (e.g. a 0/+1 success reward); values live in [-1, 0], so "
                "they would all be clipped to 0 and the model would learn nothing. Set "
                "data.precomputed_rewards=false (terminal-outcome mode: the sign of each episode's last "
                "reward is its outcome), or store rewards <= 0 (costs) in the reward column"
            )
    cut = set(truncated)
    complete = [i for i, s in enumerate(starts.tolist()) if int(episode_index[s]) not in cut]
    if not complete:
        raise ValueError(
            f"dataset {dataset.repo_id}: every episode was cut short (reward 0 and is_done false on its last "
            "frame), so no frame has a value target; label at least one episode's outcome"
        )
    normalizers = compute_task_normalizers([ep_returns[i] for i in complete], [ep_tasks[i] for i in complete])
    for task in set(ep_tasks) - set(normalizers):  # a task seen only in cut-short episodes
        normalizers[task] = max(normalizers.values())
    if truncated:
        logger.info("%d episode(s) of %s were cut short without an outcome: no value targets, advantages "
                    "bootstrap at the cut (%s)", len(truncated), dataset.repo_id, truncated[:10])
    values = np.empty(index.size, dtype=np.float32)
    for (s, e), task in zip(zip(starts.tolist(), ends.tolist(), strict=True), ep_tasks, strict=True):
        values[s:e] = normalize_returns(returns[s:e], normalizers[task])
    return ValueTargets(
        rows=rows,
        index=index,
        episode_index=episode_index,
        frame_index=frame_index,
        task_index=task_index,
        rewards=rewards,
        returns=returns,
        values=values,
        tasks=tasks,
        normalizers=normalizers,
        episode_success=success,
        truncated=truncated,
    )


def _dataset_fingerprint(dataset: Any) -> dict[str, Any]:
    """What the targets depend on: the data files (name, size, mtime) and which episodes are loaded."""
    root = Path(dataset.root)
    files = sorted((root / "data").glob("*/*.parquet")) + [root / "meta" / "tasks.parquet"]
    return {
        "repo_id": dataset.repo_id,
        "root": str(root.resolve()),
        "episodes": sorted(int(e) for e in dataset.episodes) if dataset.episodes is not None else None,
        "files": [
            (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns) for p in files if p.exists()
        ],
    }


def targets_cache_path(
    dataset: Any, cache_dir: Path, reward: RewardConfig, reward_key: str, assume_success: bool
) -> Path:
    key = json.dumps(
        {
            "version": TARGETS_VERSION,
            "dataset": _dataset_fingerprint(dataset),
            "reward": reward.to_dict(),
            "reward_key": reward_key,
            "assume_success": assume_success,
        },
        sort_keys=True,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir) / "targets" / f"{dataset.repo_id.replace('/', '__')}-{digest}.npz"


def load_or_compute_targets(
    dataset: Any,
    reward: RewardConfig,
    cache_dir: str | Path | None,
    reward_key: str = "reward",
    assume_success_without_reward: bool = False,
) -> ValueTargets:
    """Targets from the cache when the dataset and reward settings are unchanged, else compute and cache."""
    if cache_dir is None:
        return compute_value_targets(dataset, reward, reward_key, assume_success_without_reward)
    path = targets_cache_path(dataset, Path(cache_dir), reward, reward_key, assume_success_without_reward)
    if path.is_file():
        try:
            targets = ValueTargets.load(path)
            if len(targets) == len(dataset.hf_dataset):
                logger.info("value targets from cache %s", path)
                return targets
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("ignoring unreadable target cache %s: %s", path, exc)
    targets = compute_value_targets(dataset, reward, reward_key, assume_success_without_reward)
    targets.save(path)
    return targets


def fit_split_normalizers(targets: ValueTargets, train_episodes: Sequence[int],
                          val_episodes: Sequence[int] = ()) -> dict[str, dict[str, int]]:
    """Fit the per-task scales on the training episodes only, count the targets that clipping changes, and
    warn once when there are any. Returns ``{"train": counts, "val": counts}`` (see
    :meth:`ValueTargets.clip_counts`)."""
    targets.fit_normalizers(train_episodes)
    counts = {"train": targets.clip_counts(train_episodes)}
    if val_episodes:
        counts["val"] = targets.clip_counts(val_episodes)
    for split, c in counts.items():
        if c["below"] or c["above"]:
            logger.warning(
                "%d of %d %s targets fall outside [-1, 0] after normalizing with the training episodes' "
                "scales (%d below -1: episodes longer or costlier than any training episode; %d above 0: "
                "positive returns) and are clipped. Put such episodes in the training split, or check the "
                "reward settings", c["below"] + c["above"], c["frames"], split, c["below"], c["above"],
            )
    return counts


# --------------------------------------------------------------------------------------------- splits


def split_episodes(
    episodes: Sequence[int], val_fraction: float, seed: int, val_episodes: Sequence[int] = ()
) -> tuple[list[int], list[int]]:
    """Seeded train/validation split by episode (explicit ``val_episodes`` win over the fraction)."""
    eps = sorted(int(e) for e in episodes)
    if val_episodes:
        val = sorted(int(e) for e in val_episodes)
        unknown = sorted(set(val) - set(eps))
        if unknown:
            raise ValueError(f"validation episodes {unknown} are not in the dataset")
        train = [e for e in eps if e not in set(val)]
    else:
        n_val = int(round(val_fraction * len(eps)))
        if val_fraction > 0 and len(eps) >= 2:
            n_val = min(max(n_val, 1), len(eps) - 1)
        perm = np.random.default_rng(seed).permutation(len(eps))
        val = sorted(eps[i] for i in perm[:n_val])
        train = sorted(eps[i] for i in perm[n_val:])
    if not train:
        raise ValueError("the split leaves no training episode; lower data.val_fraction")
    return train, val


# ---------------------------------------------------------------------------------------------- frames


def resize_images(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """``[..., 3, H, W]`` float in [0, 1] -> square ``size`` with the model's interpolation (see model.py)."""
    if size is None or tuple(images.shape[-2:]) == (size, size):
        return images
    from ove_ros.model import preprocess_images

    return preprocess_images(images, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), torch.float32)


class ValueFrameDataset(Dataset):
    """The frames of some episodes as model samples.

    Each item: ``observation.images`` ``[N, 3, S, S]`` float in [0, 1] (cameras in ``camera_keys`` order),
    ``observation.state`` ``[D]`` float32 (raw), ``task`` str, ``target`` float32 (normalized value),
    plus ``index``, ``episode_index`` and ``frame_index`` for bookkeeping. With ``pair_gap > 0`` also
    ``pair`` (the same keys for the frame ``pair_gap`` later in the episode, for the consistency term) and
    ``pair_valid`` (False near an episode's end, where there is no such frame; ``pair`` is then the frame
    itself).
    """

    def __init__(
        self,
        dataset: Any,
        targets: ValueTargets,
        episodes: Sequence[int] | None,
        camera_keys: Sequence[str],
        state_key: str = "observation.state",
        image_size: int | None = None,
        pair_gap: int = 0,
    ) -> None:
        self.dataset = dataset
        self.camera_keys = list(camera_keys)
        self.state_key = state_key
        self.image_size = image_size
        mask = np.ones(len(targets), dtype=bool) if episodes is None else targets.episode_mask(episodes)
        self.rows = targets.rows[mask]
        self.targets = targets.values[mask].astype(np.float32)
        self.index = targets.index[mask]
        self.episode_index = targets.episode_index[mask]
        self.frame_index = targets.frame_index[mask]
        self.tasks = targets.frame_tasks(mask)
        self.partner = np.full(self.rows.size, -1, dtype=np.int64)
        if pair_gap > 0:
            where = {(int(e), int(f)): i for i, (e, f) in enumerate(zip(self.episode_index, self.frame_index,
                                                                       strict=True))}
            for i, (e, f) in enumerate(zip(self.episode_index, self.frame_index, strict=True)):
                self.partner[i] = where.get((int(e), int(f) + int(pair_gap)), -1)
        self.pair_gap = int(pair_gap)

    def __len__(self) -> int:
        return int(self.rows.size)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = self._sample(i)
        if self.pair_gap > 0:
            j = int(self.partner[i])
            sample["pair"] = self._sample(j if j >= 0 else i)
            sample["pair_valid"] = torch.tensor(j >= 0)
        return sample

    def _sample(self, i: int) -> dict[str, Any]:
        item = self.dataset[int(self.rows[i])]
        images = torch.stack([resize_images(item[k].float(), self.image_size) for k in self.camera_keys])
        return {
            "observation.images": images,
            "observation.state": item[self.state_key].float(),
            "task": self.tasks[i],
            "target": torch.tensor(self.targets[i], dtype=torch.float32),
            "index": int(self.index[i]),
            "episode_index": int(self.episode_index[i]),
            "frame_index": int(self.frame_index[i]),
        }
