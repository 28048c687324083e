"""Boundary voxels of labelled objects (private helper for distances)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def boundary_mask(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with at least one face neighbour outside it.

    Neighbours beyond the array edge count as inside, so objects cut by the
    volume border have no boundary there (nothing outside can be nearer).

    Parameters
    ----------
    mask : (..., ) ndarray of bool

    Returns
    -------
    ndarray of bool, same shape as ``mask``
    """
    inner = mask.copy()
    for axis in range(mask.ndim):
        upper = [slice(None)] * mask.ndim
        lower = [slice(None)] * mask.ndim
        upper[axis] = slice(1, None)
        lower[axis] = slice(None, -1)
        inner[tuple(upper)] &= mask[tuple(lower)]
        inner[tuple(lower)] &= mask[tuple(upper)]
    return mask & ~inner


def object_boundaries(labels: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Boundary voxel indices of every object, computed inside its bounding box.

    The nearest voxel of an object to anything outside it is always a
    boundary voxel (a step towards the outside point shortens the distance
    and stays in the object otherwise), so distances need only these.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) ndarray of int
        Label image, 0 is background.

    Returns
    -------
    object_labels : (N,) ndarray of int
        Labels present, ascending.
    points : list of N (M_i, ndim) int ndarrays
        Voxel indices of each object's boundary, in array axis order.
    """
    slices = ndimage.find_objects(labels)
    object_labels = []
    points = []
    for index, box in enumerate(slices):
        if box is None:
            continue
        label = index + 1
        # one voxel of margin so that the box edge is not mistaken for the volume edge
        box = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, labels.shape))
        mask = labels[box] == label
        offset = np.array([s.start for s in box])
        points.append(np.argwhere(boundary_mask(mask)) + offset)
        object_labels.append(label)
    return np.array(object_labels, dtype=np.int64), points
