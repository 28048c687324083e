"""Endless augmented training batches for DataLoader workers (the CUDA path of `loop.train`).

A module of its own because it subclasses a torch class at import time; `loop`
imports it only when a run asks for loader workers.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import sample_batch


class PatchStream(torch.utils.data.IterableDataset):
    """Batches of `synapse_bmz.training.data.sample_batch` as tensors, without end.

    Each DataLoader worker draws its own seeded stream, ``[seed, start, worker id]``.

    Parameters
    ----------
    data : SliceDataset
    train : OptimConfig
        ``patch``, ``batch_size``, ``reject_empty_probability``, ``degrade_probability``.
    seed, start : int
        The run's seed and the iteration it starts (or resumes) at.
    """

    def __init__(self, data, train, seed: int, start: int):
        super().__init__()
        self.data, self.train, self.seed, self.start = data, train, seed, start

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, self.start, info.id if info is not None else 0])
        t = self.train
        while True:
            x, y = sample_batch(self.data, t.patch, t.batch_size, rng, t.reject_empty_probability,
                                t.degrade_probability, t.zoom_probability, t.zoom_range)
            yield torch.from_numpy(x), torch.from_numpy(y)
