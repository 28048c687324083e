"""Lazy resampling between the input grid and the model's training voxel size.

Both directions work region by region, so memory stays bounded by the
region requested, never the volume. Voxel centres are aligned: model voxel
``i`` sits at input coordinate ``(i + 0.5) / f - 0.5`` with
``f = input_voxel_nm / model_voxel_nm``.
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
from scipy import ndimage as ndi


def resampled_shape(shape: Sequence[int], factors: Sequence[float]) -> Tuple[int, ...]:
    """Shape of a volume after scaling each axis by ``factors``."""
    return tuple(max(1, int(round(n * f))) for n, f in zip(shape, factors))


def _interp_axis(block: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``block`` along ``axis`` at fractional ``coords``."""
    n = block.shape[axis]
    c = np.clip(coords, 0, n - 1)
    i0 = np.floor(c).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    w = (c - i0).astype(np.float32)
    shape = [1] * block.ndim
    shape[axis] = -1
    w = w.reshape(shape)
    return np.take(block, i0, axis=axis) * (1 - w) + np.take(block, i1, axis=axis) * w


class ResampledView:
    """A numpy-sliceable view of ``data`` on a grid scaled by ``factors``.

    Parameters
    ----------
    data : array-like, shape (N0, N1, ...)
        Lazy source (memmap, zarr, h5py).
    factors : sequence of float
        Output voxels per input voxel along each axis (>1 upsamples).

    Notes
    -----
    Linear interpolation; when downsampling, a Gaussian of sigma
    ``(1/f - 1) / 2`` input voxels is applied first against aliasing.
    """

    def __init__(self, data, factors: Sequence[float]):
        self.data = data
        self.factors = tuple(float(f) for f in factors)
        self.shape = resampled_shape(data.shape, self.factors)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.float32)
        self.sigma = tuple(max(0.0, (1.0 / f - 1.0) / 2.0) for f in self.factors)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        src_slices, coords, dropped = [], [], []
        for ax, (k, f, n_src, n_out, s) in enumerate(zip(key, self.factors, self.data.shape, self.shape, self.sigma)):
            if isinstance(k, (int, np.integer)):
                # an integer index drops its axis, as in numpy
                dropped.append(ax)
                k = slice(int(k), int(k) + 1)
            a, b, _ = k.indices(n_out)
            c = (np.arange(a, b) + 0.5) / f - 0.5
            margin = int(math.ceil(3 * s)) + 1
            lo = max(0, int(math.floor(c.min() if c.size else 0)) - margin)
            hi = min(n_src, int(math.ceil(c.max() if c.size else 0)) + 2 + margin)
            src_slices.append(slice(lo, hi))
            coords.append(c - lo)
        block = np.asarray(self.data[tuple(src_slices)], dtype=np.float32)
        if any(self.sigma):
            block = ndi.gaussian_filter(block, self.sigma, mode="nearest")
        for ax, c in enumerate(coords):
            if self.factors[ax] != 1.0 or block.shape[ax] != c.size:
                block = _interp_axis(block, ax, c)
        return block.reshape([n for ax, n in enumerate(block.shape) if ax not in dropped]) if dropped else block


def nearest_indices(n_out: int, factor: float, n_src: int) -> np.ndarray:
    """Index into a grid scaled by ``factor`` for each of ``n_out`` original voxels."""
    c = (np.arange(n_out) + 0.5) * factor - 0.5
    return np.clip(np.rint(c).astype(np.int64), 0, n_src - 1)


def labels_to_grid(labels: np.ndarray, shape: Sequence[int], factors: Sequence[float]) -> np.ndarray:
    """Nearest-neighbour map of labels from the model grid back to the input ``shape``.

    ``factors`` are the model-grid voxels per input voxel used for the forward map.
    """
    out = labels
    for ax, (n, f) in enumerate(zip(shape, factors)):
        if out.shape[ax] != n or f != 1.0:
            out = np.take(out, nearest_indices(n, f, out.shape[ax]), axis=ax)
    return out
