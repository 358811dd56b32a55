# Copyright 2026 The ove_ros Authors
# SPDX-License-Identifier: Apache-2.0
"""A resumable, distributed data order that is a pure function of (seed, micro-batch number).

The samples form an endless stream: epoch ``e`` is ``permutation_e(range(n))`` seeded by ``(seed, e)``, and
the epochs are concatenated. Global micro-batch ``b`` is ``stream[b * G : (b + 1) * G]`` with
``G = batch_size * world_size``; process ``r`` takes its ``r``-th slice of ``batch_size`` samples. Resuming
at optimizer step ``s`` restarts the stream at micro-batch ``s * accumulation``: same samples, same order,
whatever the number of epochs or DataLoader workers.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


def epoch_permutation(num_samples: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([int(seed), int(epoch)]).permutation(num_samples)


def global_batch(num_samples: int, global_size: int, seed: int, batch: int) -> np.ndarray:
    """Sample ids of global micro-batch ``batch`` (may span an epoch boundary)."""
    if num_samples < 1:
        raise ValueError("the training split has no samples")
    start = batch * global_size
    out = np.empty(global_size, dtype=np.int64)
    filled = 0
    pos = start
    while filled < global_size:
        epoch, offset = divmod(pos, num_samples)
        perm = epoch_permutation(num_samples, seed, epoch)
        take = min(global_size - filled, num_samples - offset)
        out[filled : filled + take] = perm[offset : offset + take]
        filled += take
        pos += take
    return out


class ResumableBatchSampler(Sampler[list[int]]):
    """Endless batch sampler for one process, starting at micro-batch ``start_batch``."""

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        self.num_samples = int(num_samples)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.start_batch = int(start_batch)
        if self.num_samples < 1:
            raise ValueError("the training split has no samples")

    def batch_indices(self, batch: int) -> list[int]:
        ids = global_batch(self.num_samples, self.batch_size * self.world_size, self.seed, batch)
        lo = self.rank * self.batch_size
        return ids[lo : lo + self.batch_size].tolist()

    def epoch_of(self, batch: int) -> float:
        """Fractional epoch reached after ``batch`` micro-batches."""
        return batch * self.batch_size * self.world_size / self.num_samples

    def __iter__(self) -> Iterator[list[int]]:
        b = self.start_batch
        while True:
            yield self.batch_indices(b)
            b += 1

    def __len__(self) -> int:  # DataLoader asks; the stream is endless
        return 1 << 62
