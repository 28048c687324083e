"""Ribbon synapse structures: ribbon, presynaptic density (PD), membrane.

Output is one label volume: ``RIBBON = 1``, ``PRESYNAPTIC_DENSITY = 2``,
``MEMBRANE = 3``, 0 = background.
"""

from __future__ import annotations

from typing import Sequence

import edt
import numpy as np
from scipy import ndimage
from skimage.graph import MCP_Geometric

from ._components import threshold_components
from ._units import as_voxel_size, check_same_shape

__all__ = ["segment_ribbon", "RIBBON", "PRESYNAPTIC_DENSITY", "MEMBRANE"]

RIBBON, PRESYNAPTIC_DENSITY, MEMBRANE = 1, 2, 3


def _distance_to(mask, voxel):
    """Distance (nm) of every voxel to ``mask``; inf everywhere if it is empty."""
    if not mask.any():
        return np.full(mask.shape, np.inf, dtype=np.float32)
    return edt.edt(~mask, anisotropy=voxel, black_border=False)


def _pick_ribbon(ribbons, vesicles, voxel, vesicle_distance_nm):
    """Label of the ribbon component with most vesicle centres nearby."""
    n = int(ribbons.max())
    if vesicles is None or not vesicles.any():
        return int(np.argmax(np.bincount(ribbons.ravel(), minlength=n + 1)[1:])) + 1
    ids = np.unique(vesicles[vesicles > 0])
    centers = np.round(ndimage.center_of_mass(vesicles > 0, vesicles, ids)).astype(int)
    counts = np.zeros(n + 1, dtype=np.int64)
    for label in range(1, n + 1):
        distance = _distance_to(ribbons == label, voxel)
        counts[label] = int((distance[tuple(centers.T)] <= vesicle_distance_nm).sum())
    sizes = np.bincount(ribbons.ravel(), minlength=n + 1)
    # Most vesicles first, the larger ribbon on ties.
    return int(np.lexsort((sizes[1:], counts[1:]))[-1]) + 1


def _geodesic_band(membrane, start, voxel, max_distance_nm):
    """Membrane voxels within a geodesic distance (nm, inside membrane) of ``start``."""
    starts = np.argwhere(start & membrane)
    if starts.size == 0:
        return np.zeros(membrane.shape, bool)
    costs = np.where(membrane, 1.0, np.inf)
    mcp = MCP_Geometric(costs, sampling=voxel)
    distance, _ = mcp.find_costs(starts)
    return membrane & (distance <= max_distance_nm)


def segment_ribbon(
    ribbon: np.ndarray,
    presynaptic_density: np.ndarray,
    membrane: np.ndarray,
    voxel_size_nm: Sequence[float] | float,
    *,
    vesicles: np.ndarray | None = None,
    threshold: float = 0.5,
    min_volume_nm3: float = 5_000.0,
    vesicle_distance_nm: float = 100.0,
    contact_distance_nm: float = 20.0,
    membrane_distance_nm: float = 500.0,
) -> np.ndarray:
    """Keep the ribbon, its presynaptic density and the nearby membrane.

    Parameters
    ----------
    ribbon, presynaptic_density, membrane : (Z, Y, X) or (Y, X) ndarray of float
        Probabilities in [0, 1] (channels 0, 1, 2), same shape.
    voxel_size_nm : float or sequence of float
        Voxel size in nm per axis, array order.
    vesicles : ndarray of int, optional
        Vesicle labels of the same shape. The ribbon component with the most
        vesicle centres within ``vesicle_distance_nm`` is kept; without
        vesicles (e.g. through the recipe dispatcher) the largest one.
    threshold : float, optional
        Probability threshold for all three channels. Default 0.5.
    min_volume_nm3 : float, optional
        Ribbon and PD components of smaller volume (nm^3; nm^2 in 2D) are
        ignored. Default 5,000 nm^3.
    vesicle_distance_nm : float, optional
        Radius (nm) around the ribbon in which vesicle centres are counted.
    contact_distance_nm : float, optional
        Membrane voxels within this distance (nm) of the PD start the
        geodesic distance. Default 20 nm.
    membrane_distance_nm : float, optional
        Membrane voxels within this geodesic distance (nm, measured inside
        the membrane) of the PD contact are kept. Default 500 nm.

    Returns
    -------
    (Z, Y, X) or (Y, X) ndarray of uint32
        1 = ribbon, 2 = presynaptic density, 3 = membrane, 0 = background.
        Where structures overlap, the lower value wins.
    """
    shape = check_same_shape(
        ribbon=ribbon, presynaptic_density=presynaptic_density, membrane=membrane
    )
    voxel = as_voxel_size(voxel_size_nm, len(shape))
    out = np.zeros(shape, dtype=np.uint32)
    ribbons = threshold_components(ribbon, voxel, threshold, min_volume_nm3)
    if ribbons.max() == 0:
        return out
    chosen = ribbons == _pick_ribbon(ribbons, vesicles, voxel, vesicle_distance_nm)
    densities = threshold_components(presynaptic_density, voxel, threshold, min_volume_nm3)
    membrane_mask = np.asarray(membrane) > threshold
    if densities.max() > 0:
        distance = _distance_to(chosen, voxel)
        minima = ndimage.minimum(distance, densities, np.arange(1, densities.max() + 1))
        pd = densities == int(np.argmin(minima)) + 1
        contact = _distance_to(pd, voxel) <= contact_distance_nm
        band = _geodesic_band(membrane_mask, contact, voxel, membrane_distance_nm)
        out[band] = MEMBRANE
        out[pd] = PRESYNAPTIC_DENSITY
    out[chosen] = RIBBON
    return out
