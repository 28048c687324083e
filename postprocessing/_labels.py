"""Label-array utilities shared by the recipes."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["size_filter", "relabel_sequential", "full_structure", "face_components"]


def face_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Face-connected components (4 in 2D, 6 in 3D) of ``mask``, numbered as ``scipy.ndimage.label``.

    Parameters
    ----------
    mask : (Z, Y, X) or (Y, X) ndarray of bool (other shapes fall back to scipy)

    Returns
    -------
    labels : ndarray of uint32, same shape
        Components 1..N in raster order of their first voxel, 0 = background.
    n : int
        Number of components.

    Notes
    -----
    cc3d (connected-components-3d) labels faster than scipy; it numbers in
    memory order, so the mask is made C-contiguous first.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim not in (2, 3) or mask.size == 0:
        labels = np.zeros(mask.shape, dtype=np.uint32)
        return labels, int(ndimage.label(mask, output=labels))
    import cc3d

    labels, n = cc3d.connected_components(np.ascontiguousarray(mask), connectivity=2 * mask.ndim,
                                          return_N=True, out_dtype=np.uint32)
    return labels, int(n)


def full_structure(ndim: int) -> np.ndarray:
    """Full (8 / 26) connectivity structuring element for ``ndim`` axes."""
    return ndimage.generate_binary_structure(ndim, ndim)


def size_filter(labels: np.ndarray, min_size: float) -> np.ndarray:
    """Remove instances with fewer than ``min_size`` voxels, relabel 1..N.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) ndarray of int
        Instance labels, 0 = background. Not modified.
    min_size : float
        Minimum size in voxels; instances with ``size < min_size`` are removed.

    Returns
    -------
    (Z, Y, X) or (Y, X) ndarray of uint32
        Labels 1..N in order of the original label values.
    """
    labels = np.asarray(labels)
    if labels.size == 0:
        return labels.astype(np.uint32)
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_size
    keep[0] = False
    lut = np.zeros(sizes.size, dtype=np.uint32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    return lut[labels]


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Relabel to 1..N in order of first appearance (raster order), uint32."""
    labels = np.asarray(labels)
    flat = labels.ravel()
    nz = np.flatnonzero(flat)
    if nz.size == 0:
        return np.zeros(labels.shape, np.uint32)
    _, first = np.unique(flat[nz], return_index=True)
    order = np.argsort(first)
    values = flat[nz][first[order]]
    lut = np.zeros(int(flat.max()) + 1, dtype=np.uint32)
    lut[values] = np.arange(1, values.size + 1, dtype=np.uint32)
    return lut[labels]
