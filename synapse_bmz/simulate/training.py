"""Training pairs (raw, targets) drawn from the simulators."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from skimage.segmentation import find_boundaries

from ..normalise import zero_mean_unit_variance

from .sstem import simulate_sstem_neuropil
from .tomogram import simulate_cryo_tomogram, simulate_tomogram

__all__ = ["training_pairs", "TRAINING_KINDS"]

#: Simulator per ``kind`` of :func:`training_pairs`.
TRAINING_KINDS = {
    "tomogram": lambda shape, seed: simulate_tomogram(shape, seed=seed),
    "ribbon": lambda shape, seed: simulate_tomogram(shape, seed=seed, ribbon=True),
    "cryo": lambda shape, seed: simulate_cryo_tomogram(shape, seed=seed),
    "sstem": lambda shape, seed: simulate_sstem_neuropil(shape, seed=seed),
}

_INSTANCE_TARGETS = ("vesicles", "mitochondria", "compartments", "neurons", "dense_core_vesicles")


def training_pairs(kind: str, seeds: Iterable[int], shape: tuple) -> Iterator[tuple[np.ndarray, dict]]:
    """Yield simulated training pairs, one per seed.

    Parameters
    ----------
    kind : {'tomogram', 'ribbon', 'cryo', 'sstem'}
        Which simulator to draw from.
    seeds : iterable of int
        One simulation per seed (reproducible).
    shape : (Z, Y, X) tuple of int
        Shape of every sample.

    Yields
    ------
    raw : (Z, Y, X) ndarray of float32
        Zero mean, unit standard deviation.
    targets : dict of str to ndarray
        Every label of the simulation (instances uint32, masks float32 in
        {0, 1}), plus ``'<name>_foreground'`` and ``'<name>_boundaries'``
        (float32) for each instance label, the usual targets of
        foreground/boundary networks, and ``'voxel_size_nm'``.
    """
    if kind not in TRAINING_KINDS:
        raise ValueError(f"`kind` must be one of {sorted(TRAINING_KINDS)}, got {kind!r}")
    simulate = TRAINING_KINDS[kind]
    for seed in seeds:
        sim = simulate(tuple(shape), int(seed))
        raw = zero_mean_unit_variance(sim.raw, eps=0.0)  # as `training.data.normalise`
        targets: dict = {"voxel_size_nm": np.asarray(sim.voxel_size_nm)}
        for name, label in sim.labels.items():
            if name in _INSTANCE_TARGETS:
                targets[name] = label
                targets[f"{name}_foreground"] = (label > 0).astype(np.float32)
                targets[f"{name}_boundaries"] = find_boundaries(label, mode="inner").astype(np.float32)
            else:
                targets[name] = label.astype(np.float32)
        yield raw, targets
