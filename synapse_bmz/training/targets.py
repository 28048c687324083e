"""Training targets from label images."""

from __future__ import annotations

from typing import Literal

import edt
import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

#: Network targets by name (``train.yaml`` ``target:``) and their channel counts.
#: ``mask`` is the thresholded foreground alone.
TARGET_CHANNELS = {"foreground_boundary": 2, "foreground_boundary_distance": 3, "mask": 1}
Target = Literal["foreground_boundary", "foreground_boundary_distance", "mask"]


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


def normalised_distance(instances: np.ndarray, *, in_plane: bool = False) -> np.ndarray:
    """Distance of each instance voxel to the instance's edge, divided by the instance's largest.

    The distance is Euclidean (in voxels) to the nearest voxel of another
    label or of the background, so touching instances each get their own
    peak; dividing by each instance's maximum makes every centre 1 whatever
    the object's size. This is the instance geometry a seeded watershed
    needs (seeds at the maxima, basins of ``-distance``), regressed in
    [0, 1] like the other channels.

    Parameters
    ----------
    instances : ndarray of int, shape ([Z,] Y, X)
        0 is background.
    in_plane : bool
        For (Z, Y, X) input: distances within each section only.

    Returns
    -------
    ndarray of float32, same shape as ``instances``
        0 on background, (0, 1] inside instances (1 at each instance's
        farthest-from-edge voxels; a one-voxel instance is 1).

    Examples
    --------
    >>> lab = np.zeros((1, 7), np.uint32); lab[0, :3] = 1; lab[0, 3:6] = 2
    >>> normalised_distance(lab).round(2).tolist()
    [[0.5, 1.0, 0.5, 0.5, 1.0, 0.5, 0.0]]
    """
    if in_plane and instances.ndim == 3:
        return np.stack([normalised_distance(s) for s in instances])
    lab = np.ascontiguousarray(instances, dtype=np.uint32)
    dist = edt.edt(lab, black_border=False).astype(np.float32)
    if not lab.any():
        return dist
    peak = ndi.maximum(dist, lab, index=np.arange(int(lab.max()) + 1)).astype(np.float32)
    peak[0] = 1.0
    peak[peak == 0] = 1.0
    return dist / peak[lab]


def training_targets(instances: np.ndarray, target: Target, *, in_plane: bool = False) -> np.ndarray:
    """The network target named ``target`` of an instance labelling, shape (C, [Z,] Y, X) float32.

    ``foreground_boundary``: `foreground_boundary_targets`;
    ``foreground_boundary_distance``: those two plus `normalised_distance`;
    ``mask``: the foreground alone.
    """
    if target == "mask":
        return (instances > 0)[None].astype(np.float32)
    fb = foreground_boundary_targets(instances, in_plane=in_plane)
    if target == "foreground_boundary":
        return fb
    if target == "foreground_boundary_distance":
        return np.concatenate([fb, normalised_distance(instances, in_plane=in_plane)[None]])
    raise ValueError(f"`target` must be one of {sorted(TARGET_CHANNELS)}, got {target!r}")


def label_mask(labels: np.ndarray, threshold: float) -> np.ndarray:
    """Foreground of a label image: boolean images as they are, others ``> threshold``."""
    return labels if labels.dtype == bool else labels > threshold
