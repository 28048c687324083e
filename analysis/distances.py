"""Boundary-to-boundary distances between objects, in nm, on anisotropic grids.

How a distance is measured
--------------------------
Objects are sets of voxels; voxel ``i`` along an axis has its centre at
``i * voxel_size_nm``. For two objects we find the pair of boundary voxels
with the smallest centre-to-centre distance (exactly, with a k-d tree on
boundary voxels only -- no full-volume distance transform). The reported
``distance_nm`` is that pair's distance with each axis component reduced by
half a voxel and floored at 0::

    distance_nm = sqrt(sum_k max(0, |p_k - q_k| - voxel_size_nm[k] / 2) ** 2)

i.e. each object's surface is placed a quarter voxel beyond its boundary
voxel centres. On digitised spheres at random positions and sizes this
estimator has no measurable bias and stays within one voxel diagonal of the
analytic gap ``|c1 - c2| - r1 - r2`` on isotropic and anisotropic grids,
whereas the centre-to-centre distance (SynapseNet's convention) is about a
third of a voxel diagonal too large on average. Objects in face contact get
``voxel_size_nm[k] / 2`` along the contact axis; overlapping objects get 0.

End points (``*_point_*_nm`` columns) are the centres of the two voxels of
the closest pair, in nm, so ``point / voxel_size_nm`` is the voxel index.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ._boundary import boundary_mask, object_boundaries
from ._checks import labels_2d_or_3d, same_shape, voxel_size_for

AXES = {2: ("y", "x"), 3: ("z", "y", "x")}


def surface_gap_nm(delta_nm: np.ndarray, voxel_size_nm: np.ndarray) -> np.ndarray:
    """Distance between two boundary voxels, see the module docstring.

    Parameters
    ----------
    delta_nm : (..., ndim) ndarray
        Centre differences in nm.
    voxel_size_nm : (ndim,) ndarray

    Returns
    -------
    (...) ndarray of float, nm
    """
    reduced = np.maximum(np.abs(delta_nm) - np.asarray(voxel_size_nm) / 2, 0.0)
    return np.sqrt(np.sum(reduced**2, axis=-1))


def segment_crosses(
    obstacles: np.ndarray,
    start_vox: np.ndarray,
    end_vox: np.ndarray,
    allowed: Sequence[int],
) -> bool:
    """Whether the straight segment between two voxels passes through another object.

    Parameters
    ----------
    obstacles : (Z, Y, X) or (Y, X) ndarray of int
        Label image of objects that block a line of sight (0 = free).
    start_vox, end_vox : (ndim,) ndarray
        Voxel indices of the segment's end points.
    allowed : sequence of int
        Labels that do not block (the two objects being measured).

    Returns
    -------
    bool
        True if any voxel sampled along the segment (at least two samples per
        voxel step) carries a label not in ``allowed`` and not 0.
    """
    start = np.asarray(start_vox, dtype=np.float64)
    end = np.asarray(end_vox, dtype=np.float64)
    n_samples = int(np.ceil(np.max(np.abs(end - start)) * 2)) + 1
    samples = np.round(start + np.linspace(0.0, 1.0, n_samples)[:, None] * (end - start)).astype(np.int64)
    values = obstacles[tuple(samples.T)]
    blocking = (values != 0) & ~np.isin(values, np.asarray(list(allowed)))
    return bool(np.any(blocking))


def _point_columns(prefix: str, points_nm: np.ndarray, ndim: int) -> dict[str, np.ndarray]:
    return {f"{prefix}_point_{axis}_nm": points_nm[:, k] for k, axis in enumerate(AXES[ndim])}


def distances_to_structure(
    labels: np.ndarray,
    structure: np.ndarray,
    voxel_size_nm: Sequence[float],
    exclude_crossing: bool = False,
    obstacles: np.ndarray | None = None,
) -> pd.DataFrame:
    """Distance from every object to a structure (active zone, membrane, ribbon, PSD).

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) ndarray of int
        Object labels (e.g. vesicles), 0 is background.
    structure : ndarray of bool or int, same shape as ``labels``
        Structure mask; any non-zero voxel belongs to the structure.
    voxel_size_nm : tuple of float
        Voxel size in nm, (z, y, x) or (y, x).
    exclude_crossing : bool
        If True, a distance whose straight line passes through another
        object of ``obstacles`` is discarded (NaN, ``crosses_object`` True).
    obstacles : ndarray of int, optional
        Objects that block lines of sight; defaults to ``labels`` (the
        measured object itself never blocks).

    Returns
    -------
    pandas.DataFrame
        One row per label, ascending: ``label``, ``distance_nm`` (see module
        docstring; NaN when the structure is empty), ``object_point_{z,y,x}_nm``,
        ``structure_point_{z,y,x}_nm``, and ``crosses_object`` (bool) when
        ``exclude_crossing``.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((1, 1, 10), int); labels[0, 0, 0] = 1
    >>> plate = np.zeros_like(labels, bool); plate[0, 0, 5] = True
    >>> float(distances_to_structure(labels, plate, (2.0, 2.0, 2.0))["distance_nm"][0])
    8.0
    """
    labels = labels_2d_or_3d(labels)
    same_shape(structure, "structure", labels, "labels")
    spacing = voxel_size_for(voxel_size_nm, labels.ndim)
    structure = np.asarray(structure) != 0
    object_labels, object_points = object_boundaries(labels)
    n = len(object_labels)
    distance = np.full(n, np.nan)
    obj_pt = np.full((n, labels.ndim), np.nan)
    struct_pt = np.full((n, labels.ndim), np.nan)
    structure_vox = np.argwhere(boundary_mask(structure))
    if n and len(structure_vox):
        tree = cKDTree(structure_vox * spacing)
        counts = np.array([len(p) for p in object_points])
        all_points = np.concatenate(object_points)
        d, idx = tree.query(all_points * spacing, workers=-1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        best = np.array([s + np.argmin(d[s : s + c]) for s, c in zip(starts, counts)])
        obj_vox = all_points[best]
        str_vox = structure_vox[idx[best]]
        distance = surface_gap_nm((obj_vox - str_vox) * spacing, spacing)
        # objects overlapping the structure (anywhere inside): distance 0 at an overlap voxel
        structure_all = np.argwhere(structure)
        owners = labels[tuple(structure_all.T)]
        hit_labels, first = np.unique(owners, return_index=True)
        row_of = {int(l): k for k, l in enumerate(object_labels)}
        for label, k in zip(hit_labels, first):
            if label != 0:
                row = row_of[int(label)]
                obj_vox[row] = str_vox[row] = structure_all[k]
                distance[row] = 0.0
        obj_pt, struct_pt = obj_vox * spacing, str_vox * spacing
    table = {"label": object_labels, "distance_nm": distance}
    table.update(_point_columns("object", obj_pt, labels.ndim))
    table.update(_point_columns("structure", struct_pt, labels.ndim))
    if exclude_crossing:
        obstacles = labels if obstacles is None else obstacles
        same_shape(obstacles, "obstacles", labels, "labels")
        crosses = np.zeros(n, dtype=bool)
        for k in range(n):
            if np.isfinite(distance[k]):
                crosses[k] = segment_crosses(
                    obstacles, obj_pt[k] / spacing, struct_pt[k] / spacing, (object_labels[k],)
                )
        table["distance_nm"] = np.where(crosses, np.nan, distance)
        table["crosses_object"] = crosses
    return pd.DataFrame(table)


class _Objects:
    """Boundary points (nm), reference centres and bounding radii of all objects."""

    def __init__(self, labels: np.ndarray, spacing: np.ndarray):
        self.labels, points = object_boundaries(labels)
        self.points_nm = [p * spacing for p in points]
        self.centers = np.array([p.mean(axis=0) for p in self.points_nm]).reshape(-1, labels.ndim)
        self.reach = np.array([np.sqrt(np.max(np.sum((p - c) ** 2, axis=1))) for p, c in zip(self.points_nm, self.centers)])

    def closest_pair(self, i: int, j: int) -> tuple[float, int, int]:
        """Exact closest boundary-centre pair of objects i and j: (centre distance, index in i, index in j)."""
        pi, pj = self.points_nm[i], self.points_nm[j]
        to_cj = np.sqrt(np.sum((pi - self.centers[j]) ** 2, axis=1))
        to_ci = np.sqrt(np.sum((pj - self.centers[i]) ** 2, axis=1))
        a, b = np.argmin(to_cj), np.argmin(to_ci)
        upper = np.sqrt(np.sum((pi[a] - pj[b]) ** 2))
        # the closest pair (p, q) has |p - c_j| <= |p - q| + |q - c_j| <= upper + reach_j
        sel_i = np.flatnonzero(to_cj <= upper + self.reach[j] + 1e-9)
        sel_j = np.flatnonzero(to_ci <= upper + self.reach[i] + 1e-9)
        diff = pi[sel_i, None, :] - pj[None, sel_j, :]
        d2 = np.sum(diff**2, axis=-1)
        k = np.argmin(d2)
        ki, kj = np.unravel_index(k, d2.shape)
        return float(np.sqrt(d2[ki, kj])), int(sel_i[ki]), int(sel_j[kj])


def nearest_neighbor_distances(
    labels: np.ndarray,
    voxel_size_nm: Sequence[float],
    exclude_crossing: bool = False,
) -> pd.DataFrame:
    """Distance from every object to its nearest other object, boundary to boundary.

    Exact for the voxel-centre closest pair (see module docstring), without a
    distance transform: candidates are visited in order of the lower bound
    ``|c_i - c_j| - reach_i - reach_j`` (reference centres ``c``, bounding
    radii ``reach``) and the search stops once no candidate can be closer.

    Parameters
    ----------
    labels : (Z, Y, X) or (Y, X) ndarray of int
        Object labels, 0 is background.
    voxel_size_nm : tuple of float
        Voxel size in nm, (z, y, x) or (y, x).
    exclude_crossing : bool
        If True, a neighbour whose connecting line passes through a third
        object is skipped; the nearest neighbour with a free line is reported
        (NaN if there is none).

    Returns
    -------
    pandas.DataFrame
        One row per label: ``label``, ``neighbor_label`` (-1 if none),
        ``distance_nm``, ``object_point_{z,y,x}_nm``, ``neighbor_point_{z,y,x}_nm``.
    """
    labels = labels_2d_or_3d(labels)
    spacing = voxel_size_for(voxel_size_nm, labels.ndim)
    objects = _Objects(labels, spacing)
    n = len(objects.labels)
    neighbor = np.full(n, -1, dtype=np.int64)
    distance = np.full(n, np.nan)
    obj_pt = np.full((n, labels.ndim), np.nan)
    nb_pt = np.full((n, labels.ndim), np.nan)
    cache: dict[tuple[int, int], tuple[float, int, int]] = {}
    if n > 1:
        tree = cKDTree(objects.centers)
        reach_max = objects.reach.max()
        for i in range(n):
            best = (np.inf, -1, -1, -1)  # gap, j, point in i, point in j
            k = min(n, 16)
            while True:
                d_c, js = tree.query(objects.centers[i], k=k)
                d_c, js = np.atleast_1d(d_c), np.atleast_1d(js)
                lower = d_c - objects.reach[i] - objects.reach[js]
                for lb, j in sorted(zip(lower, js)):
                    if j == i:
                        continue
                    if lb - np.linalg.norm(spacing) > best[0]:
                        break
                    key = (min(i, j), max(i, j))
                    if key not in cache:
                        cache[key] = objects.closest_pair(key[0], key[1])
                    d, a, b = cache[key]
                    pa, pb = (a, b) if i < j else (b, a)
                    p, q = objects.points_nm[i][pa], objects.points_nm[j][pb]
                    gap = float(surface_gap_nm(p - q, spacing))
                    if gap >= best[0]:
                        continue
                    if exclude_crossing and segment_crosses(
                        labels, p / spacing, q / spacing, (objects.labels[i], objects.labels[j])
                    ):
                        continue
                    best = (gap, j, pa, pb)
                exhausted = k >= n
                if exhausted or d_c[-1] - objects.reach[i] - reach_max - np.linalg.norm(spacing) > best[0]:
                    break
                k = min(n, 4 * k)
            if best[1] >= 0:
                j = best[1]
                neighbor[i] = objects.labels[j]
                distance[i] = best[0]
                obj_pt[i] = objects.points_nm[i][best[2]]
                nb_pt[i] = objects.points_nm[j][best[3]]
    table = {"label": objects.labels, "neighbor_label": neighbor, "distance_nm": distance}
    table.update(_point_columns("object", obj_pt, labels.ndim))
    table.update(_point_columns("neighbor", nb_pt, labels.ndim))
    return pd.DataFrame(table)
