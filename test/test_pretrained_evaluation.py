# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""The value-quality evaluation runs unchanged on a model whose towers come from local pretrained folders
(``model.pretrained_vision`` / ``model.pretrained_text``, as the full preset is trained on a robot), from its
training checkpoint and from the bundle made of it."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file
from transformers import Gemma3ForCausalLM, Gemma3TextConfig, SiglipConfig, SiglipModel

from ove_ros.model import ValueModelConfig
from ove_ros.tokenizer import build_local_tokenizer
from ove_ros.training.baselines import BASELINES
from ove_ros.training.config import config_from_dict

from dataset_fixtures import learnable_dataset, synthetic_dataset, tiny_config  # noqa: F401


def local_backbones(root):
    """SigLIP and Gemma-3 folders in the hub's layout, at the tiny preset's sizes."""
    cfg = ValueModelConfig.tiny()
    torch.manual_seed(11)
    siglip = SiglipModel(SiglipConfig(vision_config=dict(cfg.vision), text_config={
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "vocab_size": 64}))
    siglip.save_pretrained(root / "siglip")
    gemma = Gemma3ForCausalLM(Gemma3TextConfig(**cfg.text))
    gemma.save_pretrained(root / "gemma")
    build_local_tokenizer().save_pretrained(root / "gemma")
    return siglip, gemma


def test_evaluation_runs_unchanged_on_pretrained_towers(learnable_dataset, tmp_path):  # noqa: F811
    from ove_ros.training.convert import convert
    from ove_ros.training.evaluate import evaluate
    from ove_ros.training.train import train

    siglip, gemma = local_backbones(tmp_path)
    cfg = tiny_config(tmp_path / "runs", learnable_dataset, run_name="pretrained", **{
        "model.pretrained_vision": str(tmp_path / "siglip"), "model.pretrained_text": str(tmp_path / "gemma"),
        "training.steps": 2, "training.warmup_steps": 1, "training.val_every": 0, "training.save_every": 2,
        "training.learning_rate": 1e-9, "training.ema_decay": 0.0, "data.batch_size": 4,
        "data.val_episodes": [0, 1]})
    result = train(cfg)

    # The run started from the local towers (a learning rate of 1e-9 leaves them as they were).
    weights = load_file(str(result.checkpoint))
    fc1 = next(k for k in weights if k.endswith("encoder.layers.1.mlp.fc1.weight"))
    torch.testing.assert_close(weights[fc1], siglip.vision_model.encoder.layers[1].mlp.fc1.weight.detach(),
                               atol=1e-5, rtol=0)
    k_proj = next(k for k in weights if k.endswith("layers.0.self_attn.k_proj.weight") and "text" in k)
    torch.testing.assert_close(weights[k_proj], gemma.model.layers[0].self_attn.k_proj.weight.detach(),
                               atol=1e-5, rtol=0)

    data = cfg.to_dict()
    data["run_name"] = None
    bundle = convert(result.checkpoint, tmp_path / "bundle")
    reports = {}
    for name, source in (("checkpoint", result.checkpoint), ("bundle", bundle)):
        data["evaluate"].update(checkpoint=str(source), split="val", plot_episodes=0, video_episodes=0,
                                output_dir=str(tmp_path / f"eval_{name}"))
        evaluate(config_from_dict(data))
        reports[name] = json.loads((tmp_path / f"eval_{name}" / "value_quality.json").read_text())
    for report in reports.values():
        assert report["eval_episodes"] == [0, 1]
        assert set(report["baselines"]) == set(BASELINES) and report["best_baseline"] in BASELINES
        assert {"ev", "mae", "rmse", "smoothness_ratio", "coverage_10_90"} <= set(report["model"])
    # The bundle values the frames as its checkpoint does.
    assert abs(reports["bundle"]["model"]["mae"] - reports["checkpoint"]["model"]["mae"]) < 1e-4
