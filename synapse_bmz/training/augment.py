"""Patch augmentation: flips, 90-degree in-plane rotations, intensity, noise, blur.

Works for 2D (Y, X) and 3D ([Z,] Y, X) patches: every axis may flip, rotations
and blur act in the (Y, X) plane only (z of anisotropic ssTEM is ~10x coarser).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..normalise import zero_mean_unit_variance


def flip_rotate(raw: np.ndarray, target: np.ndarray, rng: np.random.Generator):
    """Random flips along every axis and a random 90-degree in-plane rotation (square patches).

    Parameters
    ----------
    raw : ndarray, shape ([Z,] Y, X)
    target : ndarray, shape (C, [Z,] Y, X)
        Transformed exactly like ``raw``.
    rng : numpy Generator

    Returns
    -------
    raw, target : contiguous float32 ndarrays (Y and X swap only for square patches)
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
    return np.ascontiguousarray(raw, dtype=np.float32), np.ascontiguousarray(target, dtype=np.float32)


def intensity(raw: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random contrast and brightness, in-plane Gaussian blur (p = 0.3) and noise (p = 0.3).

    Parameters
    ----------
    raw : ndarray, shape ([Z,] Y, X), float32, zero mean / unit variance

    Returns
    -------
    ndarray, float32, same shape
    """
    nd = raw.ndim
    raw = raw * rng.uniform(0.75, 1.33) + rng.uniform(-0.3, 0.3)
    if rng.random() < 0.3:
        sigma = [0.0] * (nd - 2) + [rng.uniform(0.3, 1.0)] * 2
        raw = ndi.gaussian_filter(raw, sigma)
    if rng.random() < 0.3:
        raw = raw + rng.normal(0, rng.uniform(0.05, 0.3), raw.shape).astype(np.float32)
    return raw.astype(np.float32)


def degrade_resolution(raw: np.ndarray, rng: np.random.Generator, max_factor: float = 3.0) -> np.ndarray:
    """Lose detail as a coarser acquisition would: zoom out by a random factor, zoom back.

    A model trained on crisp simulated tomograms sees real data of coarser
    voxel size (FIB-SEM at 5 nm, binned tomograms) resampled up to its own
    grid, i.e. smooth; this shows it such images. Also adds an in-plane blur
    of the same scale and renormalises to zero mean, unit variance.

    Parameters
    ----------
    raw : ndarray, shape ([Z,] Y, X), float32
    max_factor : float
        Largest down-sampling factor per axis (drawn uniformly from [1.5, max_factor]).

    Returns
    -------
    ndarray, float32, same shape
    """
    factor = rng.uniform(1.5, max_factor)
    small = ndi.zoom(raw, 1.0 / factor, order=1)
    back = ndi.zoom(small, [s / t for s, t in zip(raw.shape, small.shape)], order=1)
    back = back[tuple(slice(0, s) for s in raw.shape)]
    if back.shape != raw.shape:  # rounding in zoom: pad by edge values
        back = np.pad(back, [(0, s - b) for s, b in zip(raw.shape, back.shape)], mode="edge")
    return zero_mean_unit_variance(back, eps=0.0)  # as `training.data.normalise`


def zoom_window(raw: np.ndarray, target: np.ndarray, patch, rng: np.random.Generator,
                zoom_range=(0.6, 3.0)):
    """A random window of ``raw``/``target`` resampled to ``patch``: objects change size.

    The factor ``s`` (apparent size / true size) is drawn log-uniformly from
    ``zoom_range`` and clipped so the window (``patch / s`` voxels per axis)
    fits the image. A model trained at one voxel size sees real data through
    the voxel size it is told; told 4 nm for a 1.6 nm tomogram, the runner
    shows it vesicles 2.5x their size, and told too little, too small.
    Raw is resampled linearly and renormalised; targets by nearest neighbour,
    so boundaries keep their share of each object.

    Parameters
    ----------
    raw : ndarray, shape ([Z,] Y, X), float32
    target : ndarray, shape (C, [Z,] Y, X)
    patch : sequence of int
        Output size per spatial axis.
    zoom_range : (float, float)
        Smallest and largest size factor.

    Returns
    -------
    raw : ndarray, shape ``patch``, float32, zero mean / unit variance
    target : ndarray, shape (C, *patch), float32
    """
    patch = [int(p) for p in patch]
    low = max(float(zoom_range[0]), *(p / s for p, s in zip(patch, raw.shape)))
    high = max(float(zoom_range[1]), low)
    factor = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    window = [min(s, max(2, int(round(p / factor)))) for p, s in zip(patch, raw.shape)]
    corner = [int(rng.integers(s - w + 1)) for s, w in zip(raw.shape, window)]
    sl = tuple(slice(c, c + w) for c, w in zip(corner, window))
    scale = [p / w for p, w in zip(patch, window)]
    r = ndi.zoom(raw[sl], scale, order=1)
    t = ndi.zoom(target[(slice(None),) + sl], [1.0] + scale, order=0)
    return zero_mean_unit_variance(r.astype(np.float32), eps=0.0), t.astype(np.float32)


def augment_pair(raw: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                 degrade_probability: float = 0.0):
    """Augment one normalised patch and its target consistently (`flip_rotate`, then `intensity`).

    ``degrade_probability``: chance of `degrade_resolution` before the intensity changes.

    Parameters
    ----------
    raw : ndarray, shape ([Z,] Y, X), float32, zero mean / unit variance
    target : ndarray, shape (C, [Z,] Y, X)
    rng : numpy Generator

    Returns
    -------
    raw, target : ndarrays of the same shapes (Y and X swap only for square patches)
    """
    raw, target = flip_rotate(raw, target, rng)
    if degrade_probability and rng.random() < degrade_probability:
        raw = degrade_resolution(raw, rng)
    return intensity(raw, rng), target
