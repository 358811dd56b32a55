# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""Several value models trained alike (other seeds, same data) valued as one: the mixture of their
distributions.

Each member's seed decides which of the ambiguous early frames it gets right; their errors are partly
independent, so the mean of their distributions is more accurate and better calibrated than any one of them
(the held-out figures are in the README). The ensemble has the interface of one model: the engine, the node,
the evaluation and the advantage labelling use it unchanged, at ``len(members)`` times the compute.

Members must agree on everything but their weights: architecture, tokenizer, cameras, joint names and
statistics. Members anchored on a frame-index prior are refused: the engine adds the prior after the heads,
and a mixture of anchored distributions is not the anchored mixture of the heads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


class ValueEnsemble(nn.Module):
    """``members`` (``ove_ros.model.OpenValueEstimator`` each) -> logits of the mean of their value
    distributions. Built by ``ove_ros.model.load_bundle`` for an ensemble bundle."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        problem = disagreement(members)
        if problem:
            raise ValueError(f"ensemble members disagree: {problem}; train every member on the same data "
                             "with the same model settings (only the seed may differ)")
        self.members = nn.ModuleList(members)

    def __getattr__(self, name: str) -> Any:
        # What the members share (config, tokenizer, statistics, prompt building) is read from the first.
        try:
            return super().__getattr__(name)
        except AttributeError:
            members = self.__dict__.get("_modules", {}).get("members")
            if members is None or name.startswith("__"):
                raise
            return getattr(members[0], name)

    @property
    def joint_names(self) -> list[str] | None:
        return self.members[0].joint_names

    @joint_names.setter
    def joint_names(self, names: Sequence[str] | None) -> None:
        for member in self.members:
            member.joint_names = None if names is None else list(names)

    def set_state_stats(self, low: Any, high: Any, joint_names: Sequence[str] | None = None) -> None:
        for member in self.members:
            member.set_state_stats(low, high, joint_names)

    def gradient_checkpointing_enable(self) -> None:
        for member in self.members:
            member.gradient_checkpointing_enable()

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("an ensemble has one hidden state per member; encode a member instead")

    @staticmethod
    def mix(logits: Sequence[torch.Tensor]) -> torch.Tensor:
        """Member logits ``[B, bins]`` each -> the log of the mean of their softmax (float32)."""
        stacked = torch.stack([torch.log_softmax(x.float(), dim=-1) for x in logits])
        return torch.logsumexp(stacked, dim=0) - math.log(len(logits))

    def forward_tensors(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        return self.mix([m.forward_tensors(pixel_values, input_ids, attention_mask) for m in self.members])

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.mix([m(batch) for m in self.members])

    @torch.inference_mode()
    def predict(self, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        return self.summarize(self(batch))

    def save_pretrained(self, path: Any, metadata: Any = None) -> Any:
        from ove_ros.bundle import BundleMetadata, save_bundle

        return save_bundle(path, self, metadata if metadata is not None else BundleMetadata.from_model(self))


def members_of(model: nn.Module) -> list[nn.Module]:
    """The single models inside ``model`` (itself when it is not an ensemble)."""
    return list(model.members) if isinstance(model, ValueEnsemble) else [model]


def disagreement(members: Sequence[nn.Module]) -> str | None:
    """How the members differ in anything but their weights (None when they agree)."""
    first = members[0]
    for i, other in enumerate(members[1:], start=1):
        if first.prior is not None or other.prior is not None:
            return ("members are anchored on a frame-index prior (value_prior), which the engine adds after "
                    "the heads; deploy one anchored model instead")
        mine, theirs = first.config.to_dict(), other.config.to_dict()
        if theirs != mine:
            keys = sorted(k for k, v in mine.items() if theirs.get(k) != v)
            return f"member {i}'s model config differs from member 0's in {keys}"
        if other.tokenizer.get_vocab() != first.tokenizer.get_vocab():
            return f"member {i}'s tokenizer differs from member 0's"
        for name in ("state_low", "state_high"):
            a = getattr(first, name).detach().cpu().numpy()
            b = getattr(other, name).detach().cpu().numpy()
            if a.shape != b.shape or not np.array_equal(a, b):
                return f"member {i}'s joint statistics ({name}) differ from member 0's (another dataset?)"
        if first.joint_names and other.joint_names and list(first.joint_names) != list(other.joint_names):
            return f"member {i}'s joint names {other.joint_names} differ from member 0's {first.joint_names}"
    return None
