"""Hole filling of every instance of a label volume."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["fill_instance_holes"]


def fill_instance_holes(labels: np.ndarray) -> np.ndarray:
    """Fill background holes enclosed by a single instance.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) ndarray of int
        Instance labels, 0 = background.

    Returns
    -------
    ndarray
        Copy of ``labels`` where background voxels fully enclosed by an
        instance (face connectivity) carry that instance's label.
        Other instances inside a hole are kept.
    """
    out = np.array(labels, copy=True)
    for index, box in enumerate(ndimage.find_objects(out), start=1):
        if box is None:
            continue
        crop = out[box]
        obj = crop == index
        holes = ndimage.binary_fill_holes(obj) & (crop == 0)
        crop[holes] = index
    return out
