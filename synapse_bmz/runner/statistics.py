"""Whole-volume intensity statistics, computed chunk by chunk, with input checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from postprocessing.blocks import BlockGrid

from ..errors import InputError


@dataclass(frozen=True, eq=False)
class VolumeStats:
    """Exact mean and standard deviation of all voxels, and a strided subsample
    (at most ~4 M voxels) for percentiles."""

    mean: float
    std: float
    subsample: np.ndarray

    def percentile(self, q: float) -> float:
        """Percentile ``q`` (0-100) of the volume, estimated on the subsample."""
        return float(np.percentile(self.subsample, q))


def volume_statistics(data, path: str, *, slab_voxels: int = 1 << 24) -> VolumeStats:
    """Statistics of a (possibly lazy) array, reading it in slabs along axis 0.

    Parameters
    ----------
    data : array-like, shape ([Z,] Y, X)
        Anything numpy-sliceable (memmap, zarr, h5py).
    path : str
        The input's name, for error messages.

    Raises
    ------
    InputError
        If any voxel is NaN or infinite, or the image is constant.
    """
    shape = data.shape
    per_row = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    rows = max(1, slab_voxels // max(per_row, 1))
    stride = max(1, int(round((np.prod(shape) / 4e6) ** (1 / len(shape)))))
    n, mean, m2 = 0, 0.0, 0.0
    vmin, vmax = np.inf, -np.inf
    sub = []
    for slab in BlockGrid(shape, (rows,) + tuple(shape[1:])):
        raw_block = np.asarray(data[slab.write])
        if raw_block.dtype in (np.uint8, np.uint16):
            # EM is mostly 8/16-bit: exact moments from the histogram, no float copy
            counts = np.bincount(raw_block.ravel())
            values = np.arange(counts.size, dtype=np.float64)
            nb = int(raw_block.size)
            mb = float(counts @ values) / nb
            m2b = float(counts @ np.square(values - mb))
            n, mean, m2 = _merge(n, mean, m2, nb, mb, m2b)
            nz = np.flatnonzero(counts)
            vmin, vmax = min(vmin, float(nz[0])), max(vmax, float(nz[-1]))
            sub.append(raw_block[(slice(None, None, stride),) * raw_block.ndim].ravel().astype(np.float32))
            continue
        block = raw_block.astype(np.float64)
        if not np.isfinite(block).all():
            bad = np.argwhere(~np.isfinite(block))[0]
            bad[0] += slab.write[0].start
            raise InputError(path, f"contains NaN or infinite voxels (first at index {tuple(int(b) for b in bad)})")
        nb, mb = block.size, float(block.mean())
        m2b = float(np.square(block - mb).sum())
        n, mean, m2 = _merge(n, mean, m2, nb, mb, m2b)
        vmin, vmax = min(vmin, float(block.min())), max(vmax, float(block.max()))
        sub.append(block[(slice(None, None, stride),) * block.ndim].ravel().astype(np.float32))
    if vmax == vmin:
        raise InputError(path, f"image is constant (every voxel is {vmin:g}); nothing to segment")
    return VolumeStats(mean=float(mean), std=float(np.sqrt(m2 / n)), subsample=np.concatenate(sub))


def _merge(n: int, mean: float, m2: float, nb: int, mb: float, m2b: float):
    """Chan et al.'s pairwise merge of (count, mean, sum of squared deviations):
    exact variance in one pass over slabs."""
    tot = n + nb
    delta = mb - mean
    return tot, mean + delta * nb / tot, m2 + m2b + delta * delta * n * nb / tot
