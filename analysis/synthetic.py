"""Synthetic label volumes with known geometry, for tests and benchmarks.

The objects are digitised analytic shapes: a voxel belongs to a sphere when
its centre lies inside it. Centres and radii are in nm; voxel ``i`` along an
axis has its centre at ``i * voxel_size_nm`` along that axis.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ._checks import voxel_size_for


def draw_spheres(
    shape: Sequence[int],
    centers_nm: np.ndarray,
    radii_nm: Sequence[float],
    voxel_size_nm: Sequence[float],
    labels: np.ndarray | None = None,
    first_label: int = 1,
) -> np.ndarray:
    """Draw digitised spheres (or discs in 2D) into a label array.

    Parameters
    ----------
    shape : tuple of int
        Array shape, (z, y, x) or (y, x).
    centers_nm : (N, ndim) ndarray
        Sphere centres in nm, axis order as ``shape``.
    radii_nm : (N,) sequence of float
        Sphere radii in nm.
    voxel_size_nm : tuple of float
        Voxel size in nm per axis.
    labels : ndarray, optional
        Array to draw into (modified in place); a new uint32 array otherwise.
    first_label : int
        Label of the first sphere; sphere ``k`` gets ``first_label + k``.
        Voxels already labelled are not overwritten.

    Returns
    -------
    labels : ndarray of shape ``shape``
    """
    shape = tuple(int(s) for s in shape)
    spacing = voxel_size_for(voxel_size_nm, len(shape))
    if labels is None:
        labels = np.zeros(shape, dtype=np.uint32)
    centers_nm = np.atleast_2d(np.asarray(centers_nm, dtype=np.float64))
    for k, (center, radius) in enumerate(zip(centers_nm, radii_nm)):
        lo = np.maximum(np.floor((center - radius) / spacing).astype(int), 0)
        hi = np.minimum(np.ceil((center + radius) / spacing).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        dist2 = sum(((g * s - c) ** 2) for g, s, c in zip(grids, spacing, center))
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        view = labels[box]
        view[(dist2 <= radius**2) & (view == 0)] = first_label + k
    return labels


def random_sphere_centers(
    shape: Sequence[int],
    n_spheres: int,
    radius_range: tuple[float, float],
    rng: np.random.Generator,
    min_gap: float = 1.0,
    forbidden: np.ndarray | None = None,
    max_tries: int = 200_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Place non-overlapping spheres by random sequential addition (voxel units).

    Parameters
    ----------
    shape : tuple of int
        Volume shape (z, y, x); centres lie anywhere inside it.
    n_spheres : int
        Number of spheres wanted; fewer are returned if ``max_tries`` runs out.
    radius_range : (float, float)
        Radii are drawn uniformly from this range, in voxels.
    rng : numpy.random.Generator
    min_gap : float
        Minimum surface-to-surface gap between spheres in voxels.
    forbidden : ndarray of float, optional
        Distance map of ``shape`` (voxels) to a region spheres must avoid; a
        candidate is rejected when the map at its centre voxel is below
        ``radius + min_gap`` (see ``random_vesicle_volume``).
    max_tries : int
        Number of candidate centres tried at most.

    Returns
    -------
    centers : (N, 3) float ndarray, in voxels
    radii : (N,) float ndarray, in voxels
    """
    shape_arr = np.asarray(shape, dtype=np.float64)
    cell = 2 * radius_range[1] + min_gap
    grid: dict[tuple[int, ...], list[int]] = {}
    centers: list[np.ndarray] = []
    radii: list[float] = []
    batch = 4096
    tried = 0
    while len(centers) < n_spheres and tried < max_tries:
        cand = rng.random((batch, len(shape))) * (shape_arr - 1)
        cand_r = rng.uniform(radius_range[0], radius_range[1], batch)
        tried += batch
        for c, r in zip(cand, cand_r):
            if forbidden is not None and forbidden[tuple(np.round(c).astype(int))] < r + min_gap:
                continue
            key = tuple((c // cell).astype(int))
            ok = True
            for offset in np.ndindex(*(3,) * len(shape)):
                for j in grid.get(tuple(k + o - 1 for k, o in zip(key, offset)), ()):
                    if np.sum((centers[j] - c) ** 2) < (radii[j] + r + min_gap) ** 2:
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                grid.setdefault(key, []).append(len(centers))
                centers.append(c)
                radii.append(float(r))
                if len(centers) == n_spheres:
                    break
    return np.array(centers).reshape(-1, len(shape)), np.array(radii)


def random_vesicle_volume(
    shape: Sequence[int] = (128, 512, 512),
    n_vesicles: int = 2000,
    radius_range: tuple[float, float] = (9.0, 12.0),
    seed: int = 0,
    min_gap: float = 1.0,
) -> dict[str, np.ndarray]:
    """A vesicle label volume with a plate-like active zone (voxel units, isotropic).

    The active zone is a plate 4 voxels thick in y, spanning the central
    75 % of z and x, near ``y = 0.08 * shape[1]``.

    Returns
    -------
    dict with ``vesicles`` (uint32 labels 1..N), ``active_zone`` (bool),
    ``centers`` ((N, 3) voxels), ``radii`` ((N,) voxels).
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in shape)
    az = np.zeros(shape, dtype=bool)
    y0 = int(0.08 * shape[1])
    az[shape[0] // 8 : shape[0] - shape[0] // 8, y0 : y0 + 4, shape[2] // 8 : shape[2] - shape[2] // 8] = True
    # distance of every voxel to the plate, only near the plate matters
    near = np.zeros(shape, dtype=np.float32) + np.inf
    ylim = min(shape[1], y0 + 4 + int(2 * radius_range[1] + 2 * min_gap) + 2)
    sub = ndimage.distance_transform_edt(~az[:, :ylim])
    near[:, :ylim] = sub
    centers, radii = random_sphere_centers(shape, n_vesicles, radius_range, rng, min_gap, forbidden=near)
    vesicles = draw_spheres(shape, centers, radii, (1.0,) * len(shape))
    return {"vesicles": vesicles, "active_zone": az, "centers": centers, "radii": radii}
