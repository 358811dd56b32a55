# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The real dataset re-encoded at training resolution, with the reward / is_done columns training reads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ove_ros.main_job.video import decode_video


def training_copy(root: Path, repo_id: str, out: Path, width: int) -> Path:
    """A LeRobot v3 copy at training resolution: cameras as small PNG frames, plus the reward / is_done
    columns of the seed convention (demonstrations: every episode a success)."""
    import pandas as pd
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from ove_ros.training.bag_to_lerobot import label_episode

    info = json.loads((root / "meta" / "info.json").read_text())
    cams = [k for k, f in info["features"].items() if f["dtype"] == "video"]
    meta_files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
    episodes = pd.concat([pd.read_parquet(p) for p in meta_files])
    data = pd.concat([pd.read_parquet(p) for p in sorted((root / "data").rglob("*.parquet"))])
    tasks = pd.read_parquet(root / "meta" / "tasks.parquet")
    task_of = {int(i): str(t) for t, i in zip(tasks.index, tasks["task_index"], strict=True)}
    src_h, src_w = info["features"][cams[0]]["shape"][:2]
    height = int(round(width * src_h / src_w))
    decoded: dict[tuple[str, str], tuple[np.ndarray, list[np.ndarray]]] = {}
    features = {k: {"dtype": "image", "shape": (height, width, 3), "names": ["height", "width", "channels"]}
                for k in cams}
    for key in ("observation.state", "action"):
        if key in info["features"]:
            src = info["features"][key]
            features[key] = {"dtype": src["dtype"], "shape": tuple(src["shape"]), "names": src["names"]}
    features["reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    features["is_done"] = {"dtype": "bool", "shape": (1,), "names": None}
    partial = out.with_name(out.name + ".partial")  # renamed into place only when complete
    shutil.rmtree(partial, ignore_errors=True)
    dataset = LeRobotDataset.create(repo_id, info["fps"], features=features, root=partial, use_videos=False,
                                    robot_type=info.get("robot_type"), image_writer_threads=1)
    for _, ep in episodes.sort_values("episode_index").iterrows():
        rows = data[data["episode_index"] == ep["episode_index"]].sort_values("frame_index")
        images = {}
        for cam in cams:
            file = root / info["video_path"].format(
                video_key=cam, chunk_index=int(ep[f"videos/{cam}/chunk_index"]),
                file_index=int(ep[f"videos/{cam}/file_index"]))
            if (cam, str(file)) not in decoded:
                decoded[(cam, str(file))] = decode_video(file, width, height)
            times, frames = decoded[(cam, str(file))]
            wanted = float(ep[f"videos/{cam}/from_timestamp"]) + rows["timestamp"].to_numpy()
            images[cam] = [frames[int(np.argmin(np.abs(times - t)))] for t in wanted]
        for i, (_, row) in enumerate(rows.iterrows()):
            frame = {cam: images[cam][i] for cam in cams}
            for key in ("observation.state", "action"):
                if key in features:
                    frame[key] = np.asarray(row[key], dtype=np.float32)
            frame["reward"] = np.zeros(1, dtype=np.float32)  # set for the whole episode by label_episode
            frame["is_done"] = np.zeros(1, dtype=bool)
            frame["task"] = task_of[int(row["task_index"])]
            dataset.add_frame(frame)
        label_episode(dataset.episode_buffer, "success")
        dataset.save_episode()
    dataset.finalize()
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    return out
