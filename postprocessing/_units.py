"""Validation of arrays and conversion of physical sizes (nm) to voxels.

Every recipe takes sizes in nanometres and a voxel size in nm per spatial
axis, in array axis order ((z, y, x) or (y, x)). This module is the one
place where nm become voxels.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["check_voxel_size", "as_voxel_size", "check_same_shape", "ball_size_voxels"]


def check_voxel_size(
    voxel_size_nm: Sequence[float], ndim: int, *, name: str = "voxel_size_nm"
) -> tuple[float, ...]:
    """Validate a voxel size: ``ndim`` finite, positive sizes in nm, ``(z, y, x)`` order.

    The one voxel-size check of the code base; the other layers call it and
    turn its ``ValueError`` into their own error (`synapse_bmz.io` raises
    ``InputError`` naming the file, `analysis` keeps ``ValueError``).

    Parameters
    ----------
    voxel_size_nm : sequence of float
        Size of a voxel in nm along each spatial axis, in array axis order:
        ``(z, y, x)`` for 3D, ``(y, x)`` for 2D. Anything ``numpy.ravel``
        turns into ``ndim`` numbers (list, tuple, 1D array).
    ndim : int
        Number of spatial axes of the data (2 or 3).
    name : str, optional
        Argument name used in the error message.

    Returns
    -------
    tuple of float
        The ``ndim`` sizes in nm, in the order given.

    Raises
    ------
    ValueError
        If the entries are not numbers, their number differs from ``ndim``,
        or an entry is not finite and > 0.
    """
    axes = ", ".join("zyx"[-ndim:]) if 0 < ndim <= 3 else f"{ndim} axes"
    try:
        voxel = tuple(float(v) for v in np.ravel(np.asarray(voxel_size_nm, dtype=object)))
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a sequence of {ndim} numbers (nm per axis, ({axes})), "
            f"got {voxel_size_nm!r}"
        ) from None
    if len(voxel) != ndim:
        raise ValueError(
            f"`{name}` has {len(voxel)} entries {voxel}, but the data has {ndim} axes "
            f"({axes}); give one size in nm per axis in that order"
        )
    if not all(math.isfinite(v) and v > 0 for v in voxel):
        raise ValueError(f"`{name}` must be finite and > 0 nm on every axis, got {voxel}")
    return voxel


def as_voxel_size(voxel_size_nm: Sequence[float] | float, ndim: int) -> tuple[float, ...]:
    """Return the voxel size as a tuple of ``ndim`` positive floats (nm).

    :func:`check_voxel_size`, plus the recipes' convenience that a scalar
    means isotropic.

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
        voxel_size_nm = (voxel_size_nm,) * ndim
    return check_voxel_size(voxel_size_nm, ndim)


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
