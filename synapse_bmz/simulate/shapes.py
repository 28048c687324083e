"""Geometric primitives painted into voxel grids in physical units (nm).

Every helper works on a local bounding box around the object, so painting
costs scale with the object, not with the volume.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["box_around", "local_coords_nm", "ball_distance_nm", "segment_distance_nm", "smooth_noise"]


def box_around(
    center_nm: np.ndarray, half_extent_nm: np.ndarray, voxel_size_nm: tuple, shape: tuple
) -> tuple[slice, ...] | None:
    """Voxel slices covering ``center_nm +- half_extent_nm``, clipped to ``shape``.

    Returns ``None`` when the box lies outside the volume.
    """
    center = np.asarray(center_nm, float) / voxel_size_nm
    half = np.asarray(half_extent_nm, float) / voxel_size_nm
    lo = np.maximum(np.floor(center - half).astype(int), 0)
    hi = np.minimum(np.ceil(center + half).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def local_coords_nm(box: tuple[slice, ...], voxel_size_nm: tuple) -> tuple[np.ndarray, ...]:
    """Open (broadcastable) z, y, x voxel-centre coordinates in nm of ``box``."""
    axes = [np.arange(s.start, s.stop) * v for s, v in zip(box, voxel_size_nm)]
    return tuple(np.meshgrid(*axes, indexing="ij", sparse=True))


def ball_distance_nm(box: tuple[slice, ...], center_nm: np.ndarray, voxel_size_nm: tuple) -> np.ndarray:
    """Euclidean distance (nm) of every voxel in ``box`` to ``center_nm``."""
    z, y, x = local_coords_nm(box, voxel_size_nm)
    cz, cy, cx = center_nm
    return np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2)


def segment_distance_nm(
    box: tuple[slice, ...], start_nm: np.ndarray, end_nm: np.ndarray, voxel_size_nm: tuple
) -> np.ndarray:
    """Distance (nm) of every voxel in ``box`` to the segment ``start_nm``-``end_nm``."""
    z, y, x = local_coords_nm(box, voxel_size_nm)
    start = np.asarray(start_nm, float)
    direction = np.asarray(end_nm, float) - start
    length_sq = float(direction @ direction)
    rel = [z - start[0], y - start[1], x - start[2]]
    t = (rel[0] * direction[0] + rel[1] * direction[1] + rel[2] * direction[2]) / length_sq
    t = np.clip(t, 0.0, 1.0)
    return np.sqrt(sum((r - t * d) ** 2 for r, d in zip(rel, direction)))


def smooth_noise(shape: tuple, sigma_px: float | tuple, rng: np.random.Generator) -> np.ndarray:
    """Gaussian random field with zero mean and unit standard deviation.

    Parameters
    ----------
    shape : tuple of int
    sigma_px : float or tuple of float
        Correlation length (Gaussian sigma) in voxels, per axis.
    rng : numpy.random.Generator

    Returns
    -------
    field : ndarray of float32, shape ``shape``
    """
    field = rng.standard_normal(shape, dtype=np.float32)
    field = ndimage.gaussian_filter(field, sigma_px, mode="wrap")
    field -= field.mean()
    field /= max(float(field.std()), 1e-12)
    return field
