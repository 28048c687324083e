"""Training targets from label images."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries


def instances_from_mask(mask: np.ndarray, *, volumetric: bool = False) -> np.ndarray:
    """Connected components of a boolean mask.

    Parameters
    ----------
    mask : ndarray of bool, shape ([Z,] Y, X)
    volumetric : bool
        For (Z, Y, X) input: label in 3D (face connectivity) instead of per
        2D slice.

    Returns
    -------
    ndarray of uint32, same shape as ``mask``
    """
    if mask.ndim == 2 or volumetric:
        return ndi.label(mask)[0].astype(np.uint32)
    out = np.zeros(mask.shape, np.uint32)
    offset = 0
    for z in range(mask.shape[0]):
        lab, n = ndi.label(mask[z])
        out[z] = np.where(lab > 0, lab + offset, 0)
        offset += n
    return out


def foreground_boundary_targets(instances: np.ndarray, *, in_plane: bool = False) -> np.ndarray:
    """Foreground and boundary maps from an instance labelling.

    Parameters
    ----------
    instances : ndarray of int, shape ([Z,] Y, X)
        0 is background.
    in_plane : bool
        For (Z, Y, X) input: boundaries within each section only (anisotropic
        ssTEM, where a z-boundary would cover a whole 40-50 nm section).

    Returns
    -------
    ndarray of float32, shape (2, [Z,] Y, X)
        Channel 0: foreground (instances > 0); channel 1: the two-voxel-wide
        ("thick") boundary of every instance, which separates touching objects.
    """
    fg = instances > 0
    if in_plane and instances.ndim == 3:
        bd = np.stack([find_boundaries(s, mode="thick") for s in instances])
    else:
        bd = find_boundaries(instances, mode="thick")
    return np.stack([fg, bd]).astype(np.float32)


def label_mask(labels: np.ndarray, threshold: float) -> np.ndarray:
    """Foreground of a label image: boolean images as they are, others ``> threshold``."""
    return labels if labels.dtype == bool else labels > threshold
