"""Validation of arrays and conversion of physical sizes (nm) to voxels.

Every recipe takes sizes in nanometres and a voxel size in nm per spatial
axis, in array axis order ((z, y, x) or (y, x)). This module is the one
place where nm become voxels.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["as_voxel_size", "check_same_shape", "ball_size_voxels"]


def as_voxel_size(voxel_size_nm: Sequence[float] | float, ndim: int) -> tuple[float, ...]:
    """Return the voxel size as a tuple of ``ndim`` positive floats (nm).

    Parameters
    ----------
    voxel_size_nm : float or sequence of float
        Voxel size in nm, one entry per spatial axis in array order
        ((z, y, x) for 3D, (y, x) for 2D). A scalar means isotropic.
    ndim : int
        Number of spatial axes (2 or 3).

    Raises
    ------
    ValueError
        If the number of entries differs from ``ndim`` or an entry is not
        a positive finite number.
    """
    if np.isscalar(voxel_size_nm):
        voxel = (float(voxel_size_nm),) * ndim
    else:
        voxel = tuple(float(v) for v in voxel_size_nm)
    if len(voxel) != ndim:
        raise ValueError(
            f"`voxel_size_nm` has {len(voxel)} entries {voxel} but the image has "
            f"{ndim} spatial axes; give one voxel size (nm) per axis in array order"
        )
    if not all(math.isfinite(v) and v > 0 for v in voxel):
        raise ValueError(f"`voxel_size_nm` entries must be positive and finite, got {voxel}")
    return voxel


def check_same_shape(**arrays: np.ndarray) -> tuple[int, ...]:
    """Raise ``ValueError`` naming the arguments if the arrays differ in shape.

    Returns the common shape.
    """
    names = list(arrays)
    shape = np.shape(arrays[names[0]])
    for name in names[1:]:
        other = np.shape(arrays[name])
        if other != shape:
            raise ValueError(
                f"`{name}` (shape {other}) must have the same shape as "
                f"`{names[0]}` (shape {shape})"
            )
    if len(shape) not in (2, 3):
        raise ValueError(f"`{names[0]}` must be 2D (Y, X) or 3D (Z, Y, X), got shape {shape}")
    return tuple(shape)


def ball_size_voxels(radius_nm: float, voxel_size_nm: Sequence[float]) -> float:
    """Number of voxels in a ball (3D) or disk (2D) of ``radius_nm``.

    Parameters
    ----------
    radius_nm : float
        Radius in nm.
    voxel_size_nm : sequence of float
        Voxel size in nm per axis; its length (2 or 3) selects disk or ball.

    Returns
    -------
    float
        Area (2D) or volume (3D) of the disk/ball in voxels.
    """
    ndim = len(voxel_size_nm)
    voxel_volume = float(np.prod(voxel_size_nm))
    if ndim == 2:
        return math.pi * radius_nm**2 / voxel_volume
    return 4.0 / 3.0 * math.pi * radius_nm**3 / voxel_volume
