"""Voxel size from HDF5 / plain-zarr attributes."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from synapse_bmz.io._units import is_valid_size

#: Attribute name -> nanometres per stored unit, tried in this order.
#: ``voxel_size_nm`` is what we write; ``resolution`` is the CREMI/Synful
#: convention (nm, z y x); ``element_size_um`` is ilastik's and the Fiji
#: HDF5 plugin's (micrometre, z y x).
VOXEL_ATTRIBUTES: tuple[tuple[str, float], ...] = (
    ("voxel_size_nm", 1.0),
    ("resolution", 1.0),
    ("element_size_um", 1000.0),
)


def voxel_size_from_attrs(attrs: Mapping, ndim: int) -> tuple[float, ...] | None:
    """Return the voxel size (nm, array axis order) from `attrs`, or None.

    A value with the wrong number of entries, or non-positive entries, is
    ignored (the next attribute is tried).
    """
    for name, factor in VOXEL_ATTRIBUTES:
        if name not in attrs:
            continue
        try:
            values = np.asarray(attrs[name], dtype=float).ravel()
        except (TypeError, ValueError):
            continue
        sizes = tuple(float(v) * factor for v in values)
        if is_valid_size(sizes, ndim):
            return sizes
    return None
