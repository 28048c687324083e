"""Distance-seeded watershed shared by the vesicle and mitochondria recipes."""

from __future__ import annotations

from typing import Sequence

import edt
import numpy as np

from ._labels import face_components
from ._watershed import seeded_watershed

__all__ = ["interior_and_mask", "distance_seeded_instances"]


def interior_and_mask(foreground, boundary, foreground_threshold, boundary_threshold, mask_threshold):
    """Object interior and watershed mask from two probability maps.

    Returns
    -------
    inside : ndarray of bool
        ``(foreground > foreground_threshold) & (boundary < boundary_threshold)``.
    mask : ndarray of bool
        ``foreground + boundary > mask_threshold``.
    """
    foreground = np.asarray(foreground)
    boundary = np.asarray(boundary)
    inside = foreground > foreground_threshold
    inside &= boundary < boundary_threshold
    mask = np.add(foreground, boundary, dtype=np.float32) > mask_threshold
    return inside, mask


def distance_seeded_instances(
    inside: np.ndarray,
    mask: np.ndarray,
    voxel_size_nm: Sequence[float],
    seed_distance_nm: float,
    min_size: float,
    n_threads: int = 1,
) -> np.ndarray:
    """Seeded watershed of the interior distance transform.

    Parameters
    ----------
    inside : (Z, Y, X) or (Y, X) ndarray of bool
        Object interior (away from boundaries).
    mask : (Z, Y, X) or (Y, X) ndarray of bool
        Voxels that may be assigned to an object; should contain ``inside``.
    voxel_size_nm : sequence of float
        Voxel size per axis (nm), array order.
    seed_distance_nm : float
        Seeds are the face-connected components of interior voxels farther
        than this (nm) from the nearest non-interior voxel.
    min_size : float
        Instances with fewer voxels are removed.
    n_threads : int, optional
        Threads for the distance transform and the flooding.

    Returns
    -------
    ndarray of uint32
        Instance labels 1..N, 0 = background.
    """
    # Squared distances keep the watershed order and avoid a sqrt pass.
    binary = np.ascontiguousarray(inside, dtype=bool).view(np.uint8)  # no copy for edt
    distance_sq = edt.edtsq(binary, anisotropy=tuple(voxel_size_nm), black_border=False, parallel=n_threads)
    seeds, _ = face_components(distance_sq > np.float32(seed_distance_nm) ** 2)
    return seeded_watershed(distance_sq, seeds, mask, invert=True, min_size=min_size, n_threads=n_threads)
