"""Training targets from label images."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries


def instances_from_mask(mask: np.ndarray) -> np.ndarray:
    """Connected components of a boolean mask, per 2D slice for (Z, Y, X) stacks.

    Returns
    -------
    ndarray of uint32, same shape as ``mask``
    """
    if mask.ndim == 2:
        return ndi.label(mask)[0].astype(np.uint32)
    out = np.zeros(mask.shape, np.uint32)
    offset = 0
    for z in range(mask.shape[0]):
        lab, n = ndi.label(mask[z])
        out[z] = np.where(lab > 0, lab + offset, 0)
        offset += n
    return out


def foreground_boundary_targets(instances: np.ndarray) -> np.ndarray:
    """Foreground and boundary maps from an instance labelling.

    Parameters
    ----------
    instances : ndarray of int, shape (Y, X)
        0 is background.

    Returns
    -------
    ndarray of float32, shape (2, Y, X)
        Channel 0: foreground (instances > 0); channel 1: the two-voxel-wide
        ("thick") boundary of every instance, which separates touching objects.
    """
    fg = instances > 0
    bd = find_boundaries(instances, mode="thick")
    return np.stack([fg, bd]).astype(np.float32)
