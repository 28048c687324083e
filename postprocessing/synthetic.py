"""Ideal network outputs for tests and benchmarks, built in code.

Functions here draw objects with known ground-truth instances and the
probability maps a perfect network would predict for them. Noise can be
added by the caller.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["place_balls", "vesicle_prediction"]


def place_balls(
    shape: Sequence[int],
    n: int,
    radius_range: tuple[float, float],
    rng: np.random.Generator,
    *,
    gap: float = 1.0,
    max_tries: int = 200_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Place up to ``n`` non-overlapping balls by random sequential addition.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape in voxels, (Z, Y, X) or (Y, X).
    n : int
        Number of balls wanted; fewer are returned if ``max_tries``
        candidates do not fit.
    radius_range : (float, float)
        Uniform range of radii in voxels.
    rng : numpy.random.Generator
    gap : float, optional
        Minimum distance between ball surfaces in voxels (default 1).
    max_tries : int, optional

    Returns
    -------
    centers : (N, ndim) ndarray of float
        Ball centres in voxel coordinates (inside the volume).
    radii : (N,) ndarray of float
    """
    shape = np.asarray(shape, dtype=float)
    centers = np.empty((n, shape.size))
    radii = np.empty(n)
    count = 0
    batch = 4096
    tries = 0
    while count < n and tries < max_tries:
        cand_c = rng.uniform(0, 1, (batch, shape.size)) * (shape - 1)
        cand_r = rng.uniform(*radius_range, batch)
        tries += batch
        for c, r in zip(cand_c, cand_r):
            if count:
                dist = np.sqrt(((centers[:count] - c) ** 2).sum(axis=1))
                if np.any(dist < radii[:count] + r + gap):
                    continue
            centers[count], radii[count] = c, r
            count += 1
            if count == n:
                break
    return centers[:count], radii[:count]


def vesicle_prediction(
    shape: Sequence[int],
    centers: np.ndarray,
    radii: np.ndarray,
    *,
    boundary_width: float = 2.0,
    voxel_size: Sequence[float] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ideal foreground/boundary probabilities and true labels of balls.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape (Z, Y, X) or (Y, X) in voxels.
    centers : (N, ndim) ndarray of float
        Centres in voxel coordinates.
    radii : (N,) ndarray of float
        Radii in units of ``voxel_size`` (voxels if not given).
    boundary_width : float, optional
        Thickness of the boundary shell ``r - boundary_width < d <= r``
        inside each ball (same unit as ``radii``), so that foreground plus
        boundary is exactly the true object. Default 2.
    voxel_size : sequence of float, optional
        Physical voxel size per axis, for anisotropic balls.

    Returns
    -------
    foreground : ndarray of float32
        1 inside balls (``d <= r``), else 0.
    boundary : ndarray of float32
        1 on the shell, else 0; the interior ``foreground & ~boundary`` is
        the ball of radius ``r - boundary_width``.
    labels : ndarray of uint32
        Ball ``i`` has label ``i + 1``.
    """
    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    spacing = np.ones(ndim) if voxel_size is None else np.asarray(voxel_size, float)
    foreground = np.zeros(shape, np.float32)
    boundary = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint32)
    for i, (c, r) in enumerate(zip(centers, radii)):
        extent = (r + 1) / spacing
        lo = np.maximum(np.floor(c - extent).astype(int), 0)
        hi = np.minimum(np.ceil(c + extent).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        d = np.sqrt(sum(((g - cc) * s) ** 2 for g, cc, s in zip(grids, c, spacing)))
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        ball = d <= r
        foreground[box][ball] = 1.0
        labels[box][ball] = i + 1
        boundary[box][ball & (d > r - boundary_width)] = 1.0
    return foreground, boundary, labels
