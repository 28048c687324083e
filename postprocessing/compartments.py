"""Synaptic compartments from a boundary (membrane) probability map.

Each z-slice is segmented on its own by a distance-seeded watershed of the
membrane-free area; 2D segments in consecutive slices are joined into 3D
objects when they overlap, and objects spanning fewer than ``min_slices``
slices are removed. Membrane voxels stay background.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ._seeded import distance_seeded_instances
from ._labels import relabel_sequential
from ._units import as_voxel_size, check_same_shape

__all__ = ["segment_compartments", "link_slices"]


def link_slices(slices: np.ndarray, min_overlap: float, min_slices: int) -> np.ndarray:
    """Join per-slice 2D labels into 3D objects by overlap.

    Parameters
    ----------
    slices : (Z, Y, X) ndarray of int
        Labels of each z-slice, unique over the whole volume, 0 = background.
    min_overlap : float
        Segments ``a`` (slice z) and ``b`` (slice z+1) are joined when their
        overlap exceeds ``min_overlap * max(area(a), area(b))``, so a segment
        that merges two compartments in one slice joins neither.
    min_slices : int
        3D objects present in fewer slices are removed.

    Returns
    -------
    (Z, Y, X) ndarray of uint32
        3D labels 1..N in raster order, 0 = background.
    """
    n = int(slices.max()) + 1
    areas = np.bincount(slices.ravel(), minlength=n)
    a = slices[:-1].ravel().astype(np.int64)
    b = slices[1:].ravel().astype(np.int64)
    both = (a > 0) & (b > 0)
    pairs, counts = np.unique(a[both] * n + b[both], return_counts=True)
    a, b = pairs // n, pairs % n
    linked = counts > min_overlap * np.maximum(areas[a], areas[b])
    graph = coo_matrix((np.ones(int(linked.sum())), (a[linked], b[linked])), shape=(n, n))
    _, root = connected_components(graph, directed=False)
    root = root.astype(np.int64) + 1
    root[0] = 0
    joined = root[slices]
    span = np.zeros(int(root.max()) + 1, dtype=np.int64)
    for plane in joined:
        span[np.unique(plane)] += 1
    keep = span >= min_slices
    keep[0] = False
    joined[~keep[joined]] = 0
    return relabel_sequential(joined)


def segment_compartments(
    boundary: np.ndarray,
    voxel_size_nm: Sequence[float] | float,
    *,
    boundary_threshold: float = 0.5,
    seed_distance_nm: float = 40.0,
    min_area_nm2: float = 20_000.0,
    min_slices: int = 5,
    min_overlap: float = 0.5,
) -> np.ndarray:
    """Segment compartments slice by slice and join them in 3D.

    Parameters
    ----------
    boundary : (Z, Y, X) or (Y, X) ndarray of float
        Compartment membrane probability in [0, 1] (channel 0).
    voxel_size_nm : float or sequence of float
        Voxel size in nm per axis, array order.
    boundary_threshold : float, optional
        Voxels with ``boundary < boundary_threshold`` are compartment area.
    seed_distance_nm : float, optional
        Per-slice seeds are area pixels farther than this (nm) from the
        membrane; this splits compartments joined by small membrane gaps.
        Default 40 nm.
    min_area_nm2 : float, optional
        2D segments of smaller area (nm^2) are removed. Default 20,000 nm^2.
    min_slices : int, optional
        3D objects spanning fewer z-slices are removed (3D input only).
        Default 5.
    min_overlap : float, optional
        Overlap fraction (of the larger segment) that joins two segments in
        consecutive slices. Default 0.5.

    Returns
    -------
    (Z, Y, X) or (Y, X) ndarray of uint32
        Compartment labels 1..N, 0 = membrane / background.
    """
    shape = check_same_shape(boundary=boundary)
    voxel = as_voxel_size(voxel_size_nm, len(shape))
    boundary = np.asarray(boundary)
    plane_voxel = voxel[-2:]
    min_size = min_area_nm2 / float(np.prod(plane_voxel))

    def segment_plane(plane):
        area = plane < boundary_threshold
        return distance_seeded_instances(area, area, plane_voxel, seed_distance_nm, min_size)

    if boundary.ndim == 2:
        return segment_plane(boundary)
    slices = np.zeros(shape, dtype=np.int64)
    offset = 0
    for z in range(shape[0]):
        labels = segment_plane(boundary[z]).astype(np.int64)
        slices[z] = np.where(labels > 0, labels + offset, 0)
        offset += int(labels.max())
    return link_slices(slices, min_overlap, min_slices)
