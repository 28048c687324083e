"""Thresholded connected components with a physical size filter."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from ._labels import full_structure, size_filter

__all__ = ["threshold_components"]


def threshold_components(
    probability: np.ndarray,
    voxel_size_nm: Sequence[float],
    threshold: float,
    min_volume_nm3: float,
    full_connectivity: bool = True,
) -> np.ndarray:
    """Connected components of ``probability > threshold`` above a size.

    Parameters
    ----------
    probability : (Z, Y, X) or (Y, X) ndarray of float
    voxel_size_nm : sequence of float
        Voxel size per axis (nm).
    threshold : float
    min_volume_nm3 : float
        Minimum volume in nm^3 (area in nm^2 for 2D).
    full_connectivity : bool, optional
        26 (3D) / 8 (2D) connectivity if True, else face connectivity.

    Returns
    -------
    ndarray of uint32
        Labels 1..N in raster order of first voxel, 0 = background.
    """
    probability = np.asarray(probability)
    structure = full_structure(probability.ndim) if full_connectivity else None
    labels, _ = ndimage.label(probability > threshold, structure=structure)
    return size_filter(labels, min_volume_nm3 / float(np.prod(voxel_size_nm)))
