"""Synaptic cleft instances (CREMI style) from a cleft probability map."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._components import threshold_components
from ._units import as_voxel_size, check_same_shape

__all__ = ["segment_clefts"]


def segment_clefts(
    cleft: np.ndarray,
    voxel_size_nm: Sequence[float] | float,
    *,
    threshold: float = 0.5,
    min_volume_nm3: float = 20_000.0,
) -> np.ndarray:
    """Threshold, label connected components (26-connectivity), size filter.

    Parameters
    ----------
    cleft : (Z, Y, X) or (Y, X) ndarray of float
        Cleft probability in [0, 1] (channel 0).
    voxel_size_nm : float or sequence of float
        Voxel size in nm per axis, array order (CREMI: (40, 4, 4)).
    threshold : float, optional
        Probability threshold. Default 0.5.
    min_volume_nm3 : float, optional
        Components with smaller volume (nm^3; nm^2 in 2D) are removed.
        Default 20,000 nm^3 (about 31 CREMI voxels).

    Returns
    -------
    (Z, Y, X) or (Y, X) ndarray of uint32
        Cleft labels 1..N, 0 = background.
    """
    shape = check_same_shape(cleft=cleft)
    voxel = as_voxel_size(voxel_size_nm, len(shape))
    return threshold_components(cleft, voxel, threshold, min_volume_nm3)
