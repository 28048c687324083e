"""Active-zone instances from an active-zone probability map."""

from __future__ import annotations

from typing import Sequence

import edt
import numpy as np
from scipy import ndimage

from ._components import threshold_components
from ._units import as_voxel_size, check_same_shape

__all__ = ["segment_active_zone", "compartment_membrane"]


def compartment_membrane(
    compartments: np.ndarray,
    vesicles: np.ndarray,
    voxel_size_nm: Sequence[float],
    membrane_width_nm: float,
) -> np.ndarray:
    """Membrane band of the compartment that holds most vesicles.

    Parameters
    ----------
    compartments : (Z, Y, X) or (Y, X) ndarray of int
        Compartment labels, 0 = outside.
    vesicles : (Z, Y, X) or (Y, X) ndarray of int
        Vesicle labels, 0 = background.
    voxel_size_nm : sequence of float
        Voxel size per axis (nm).
    membrane_width_nm : float
        Half-width of the band around the compartment border (nm): voxels
        within this distance of the border, on either side, are membrane.

    Returns
    -------
    ndarray of bool
        The membrane band; all False if no vesicle lies in a compartment.
    """
    centers = ndimage.center_of_mass(vesicles > 0, vesicles, np.unique(vesicles[vesicles > 0]))
    counts = np.zeros(int(compartments.max()) + 1, dtype=np.int64)
    for center in centers:
        index = tuple(int(round(c)) for c in center)
        counts[compartments[index]] += 1
    counts[0] = 0
    if counts.sum() == 0:
        return np.zeros(compartments.shape, bool)
    chosen = compartments == int(np.argmax(counts))
    voxel = tuple(voxel_size_nm)
    inner = edt.edt(chosen, anisotropy=voxel, black_border=False)
    outer = edt.edt(~chosen, anisotropy=voxel, black_border=False)
    return (chosen & (inner <= membrane_width_nm)) | (~chosen & (outer <= membrane_width_nm))


def segment_active_zone(
    active_zone: np.ndarray,
    voxel_size_nm: Sequence[float] | float,
    *,
    threshold: float = 0.5,
    min_volume_nm3: float = 10_000.0,
    compartments: np.ndarray | None = None,
    vesicles: np.ndarray | None = None,
    membrane_width_nm: float = 15.0,
) -> np.ndarray:
    """Threshold, label (26-connectivity) and size-filter the active zone.

    Parameters
    ----------
    active_zone : (Z, Y, X) or (Y, X) ndarray of float
        Active-zone probability in [0, 1] (channel 0).
    voxel_size_nm : float or sequence of float
        Voxel size in nm per axis, array order.
    threshold : float, optional
        Probability threshold. Default 0.5.
    min_volume_nm3 : float, optional
        Components with smaller volume (nm^3; nm^2 in 2D) are removed.
        Default 10,000 nm^3.
    compartments, vesicles : ndarray of int, optional
        If both are given (same shape as ``active_zone``), the active zone
        is restricted to the membrane of the compartment holding most
        vesicle centres (see ``compartment_membrane``). Only available
        through this function, not through the recipe dispatcher.
    membrane_width_nm : float, optional
        Half-width of the membrane band (nm). Default 15 nm.

    Returns
    -------
    (Z, Y, X) or (Y, X) ndarray of uint32
        Active-zone labels 1..N, 0 = background.
    """
    shape = check_same_shape(active_zone=active_zone)
    voxel = as_voxel_size(voxel_size_nm, len(shape))
    probability = np.asarray(active_zone)
    if (compartments is None) != (vesicles is None):
        raise ValueError("`compartments` and `vesicles` must be given together")
    if compartments is not None:
        check_same_shape(active_zone=probability, compartments=compartments, vesicles=vesicles)
        band = compartment_membrane(compartments, vesicles, voxel, membrane_width_nm)
        probability = np.where(band, probability, 0)
    return threshold_components(probability, voxel, threshold, min_volume_nm3)
