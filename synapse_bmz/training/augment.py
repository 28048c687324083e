"""Patch augmentation: flips, 90-degree in-plane rotations, intensity, noise, blur."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def augment_pair(raw: np.ndarray, target: np.ndarray, rng: np.random.Generator):
    """Augment one normalised patch and its target consistently.

    Parameters
    ----------
    raw : ndarray, shape ([Z,] Y, X), float32, zero mean / unit variance
    target : ndarray, shape (C, [Z,] Y, X)
    rng : numpy Generator

    Returns
    -------
    raw, target : ndarrays of the same shapes (Y and X swap only for square patches)
    """
    nd = raw.ndim
    for ax in range(nd):
        if rng.random() < 0.5:
            raw = np.flip(raw, ax)
            target = np.flip(target, ax + 1)
    if raw.shape[-1] == raw.shape[-2]:
        k = int(rng.integers(4))
        raw = np.rot90(raw, k, axes=(nd - 2, nd - 1))
        target = np.rot90(target, k, axes=(nd - 1, nd))
    raw = np.ascontiguousarray(raw, dtype=np.float32)
    target = np.ascontiguousarray(target, dtype=np.float32)
    # intensity: contrast and brightness
    raw = raw * rng.uniform(0.75, 1.33) + rng.uniform(-0.3, 0.3)
    if rng.random() < 0.3:
        sigma = [0.0] * (nd - 2) + [rng.uniform(0.3, 1.0)] * 2
        raw = ndi.gaussian_filter(raw, sigma)
    if rng.random() < 0.3:
        raw = raw + rng.normal(0, rng.uniform(0.05, 0.3), raw.shape).astype(np.float32)
    return raw.astype(np.float32), target
