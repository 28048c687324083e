"""Input validation shared by the analysis modules (private)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from postprocessing._units import check_voxel_size


def voxel_size_for(voxel_size_nm: Sequence[float], ndim: int, name: str = "voxel_size_nm") -> np.ndarray:
    """Return ``voxel_size_nm`` as a float64 array of length ``ndim`` (nm, ``(z, y, x)`` order).

    The check is `postprocessing._units.check_voxel_size`; analysis wants
    the sizes as an array (spacing for distance transforms).

    Parameters
    ----------
    voxel_size_nm : sequence of float
        nm per axis, ``(z, y, x)`` for 3D, ``(y, x)`` for 2D.
    ndim : int
        Number of spatial axes of the array.
    name : str
        Argument name for the error message.

    Returns
    -------
    (ndim,) ndarray of float64

    Raises
    ------
    ValueError
        If the length does not match ``ndim`` or a size is not a positive finite number.
    """
    return np.asarray(check_voxel_size(voxel_size_nm, ndim, name=name), dtype=np.float64)


def same_shape(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    """Raise ``ValueError`` naming both arguments if their shapes differ."""
    if a.shape != b.shape:
        raise ValueError(f"`{a_name}` (shape {a.shape}) must have the same shape as `{b_name}` (shape {b.shape})")


def is_label_dtype(dtype) -> bool:
    """True for the dtypes of a label image or mask: integers and bool."""
    dtype = np.dtype(dtype)
    return bool(np.issubdtype(dtype, np.integer) or dtype == bool)


def yaml_problem(err: Exception) -> str:
    """One line for a YAML parse error: the problem and where (1-based line, column)."""
    problem = getattr(err, "problem", None) or getattr(err, "context", None)
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(err).split())


def labels_2d_or_3d(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as an integer array, checking it is 2D or 3D."""
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"`{name}` must be 2D (y, x) or 3D (z, y, x), got shape {labels.shape}")
    if not is_label_dtype(labels.dtype):
        raise ValueError(f"`{name}` must hold integer labels, got dtype {labels.dtype}")
    return labels
