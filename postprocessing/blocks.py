"""The one block model: deterministic block ids, write regions, read regions.

Every block-wise step of synapse-bmz (tiled prediction, block-wise
postprocessing, the distributed executors, resume) cuts a volume with a
`BlockGrid`. A block has

- an **id**: its raster index in the grid, so the same volume, block shape
  and context always give the same ids (done markers and retries rely on it);
- a **write** region: the voxels it owns. Write regions partition the
  volume and start on multiples of ``block_shape``, so when the output is
  chunked by ``block_shape`` no two blocks write to one chunk;
- a **read** region: the write region grown by ``context`` voxels on each
  side (``(low, high)`` per axis), clipped to the volume. What was clipped is
  ``pad`` (for a network that needs a fixed input size), and ``crop`` cuts
  the write region out of the read region (after padding).

Numpy only, so `postprocessing` can use it; `synapse_bmz` builds its tiling
and executors on it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["Block", "BlockGrid", "context_voxels"]

Slices = Tuple[slice, ...]
ContextLike = Union[int, Sequence[int], Sequence[Tuple[int, int]]]


@dataclass(frozen=True)
class Block:
    """One block of a `BlockGrid`; all regions in voxels of the volume, per axis.

    Attributes
    ----------
    id : int
        Raster index of the block in its grid (C order), 0-based.
    index : tuple of int
        Position of the block in the grid, per axis.
    write : tuple of slice
        Voxels this block owns (its output region).
    read : tuple of slice
        ``write`` grown by the grid's context, clipped to the volume.
    pad : tuple of (int, int)
        Voxels of context that fell outside the volume, (low, high) per axis.
    crop : tuple of slice
        ``write`` relative to the padded read region.
    """

    id: int
    index: Tuple[int, ...]
    write: Slices
    read: Slices
    pad: Tuple[Tuple[int, int], ...]
    crop: Slices

    @property
    def own(self) -> Slices:
        """``write`` relative to the (unpadded) read region."""
        return tuple(slice(w.start - r.start, w.stop - r.start) for w, r in zip(self.write, self.read))

    @property
    def corner(self) -> Tuple[int, ...]:
        """First voxel of the write region."""
        return tuple(s.start for s in self.write)

    def describe(self) -> str:
        """``block 12 [z 0:32, y 256:512, x 0:256]`` for messages."""
        axes = "zyx"[-len(self.write):] if len(self.write) <= 3 else [f"a{i}" for i in range(len(self.write))]
        regions = ", ".join(f"{a} {s.start}:{s.stop}" for a, s in zip(axes, self.write))
        return f"block {self.id} [{regions}]"


def _context_pairs(context: ContextLike, ndim: int) -> Tuple[Tuple[int, int], ...]:
    if np.isscalar(context):
        return tuple((int(context), int(context)) for _ in range(ndim))
    items = list(context)
    if len(items) != ndim:
        raise ValueError(f"context {context!r} must give one entry per axis ({ndim})")
    pairs = []
    for c in items:
        lo, hi = (int(c), int(c)) if np.isscalar(c) else (int(c[0]), int(c[1]))
        if lo < 0 or hi < 0:
            raise ValueError(f"context {context!r} must not be negative")
        pairs.append((lo, hi))
    return tuple(pairs)


class BlockGrid:
    """A volume cut into blocks of ``block_shape`` with ``context`` around each.

    Parameters
    ----------
    shape : sequence of int
        Volume shape in voxels, per axis.
    block_shape : sequence of int
        Write-region size per axis (the last block along an axis may be
        smaller). Chunk outputs with this shape so blocks never share a chunk.
    context : int, sequence of int, or sequence of (int, int)
        Extra voxels read on each side of a block: one number for all axes,
        one per axis (both sides), or ``(low, high)`` per axis.
    read_shape : sequence of int, optional
        Fixed read size per axis (a network's input tile): the read region
        starts ``context`` low before the block and always spans
        ``read_shape`` voxels (the high context then follows from it), so
        every block, the last included, gives the same padded input size.

    Examples
    --------
    >>> grid = BlockGrid((10, 10), (4, 4), 1)
    >>> len(grid), grid.grid_shape
    (9, (3, 3))
    >>> b = grid[4]
    >>> b.write, b.read
    ((slice(4, 8, None), slice(4, 8, None)), (slice(3, 9, None), slice(3, 9, None)))
    """

    def __init__(self, shape: Sequence[int], block_shape: Sequence[int], context: ContextLike = 0,
                 read_shape: Optional[Sequence[int]] = None):
        self.shape = tuple(int(s) for s in shape)
        self.block_shape = tuple(int(b) for b in np.broadcast_to(block_shape, (len(self.shape),)))
        if any(b < 1 for b in self.block_shape):
            raise ValueError(f"block_shape {tuple(block_shape)} must be positive on every axis")
        self.context = _context_pairs(context, len(self.shape))
        self.read_shape = None if read_shape is None else tuple(int(r) for r in read_shape)
        if self.read_shape is not None and any(
                r < b + lo for r, b, (lo, _) in zip(self.read_shape, self.block_shape, self.context)):
            raise ValueError(f"read_shape {self.read_shape} must hold block_shape {self.block_shape} plus the low context")
        self.grid_shape = tuple(max(1, math.ceil(s / b)) for s, b in zip(self.shape, self.block_shape))

    def __len__(self) -> int:
        return math.prod(self.grid_shape)

    def __iter__(self) -> Iterator[Block]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, block_id: int) -> Block:
        if not 0 <= int(block_id) < len(self):
            raise IndexError(f"block id {block_id} outside 0..{len(self) - 1}")
        index = tuple(int(i) for i in np.unravel_index(int(block_id), self.grid_shape))
        write, read, pad, crop = [], [], [], []
        read_shape = self.read_shape or (None,) * len(self.shape)
        for i, n, b, (lo, hi), rs in zip(index, self.shape, self.block_shape, self.context, read_shape):
            w0, w1 = i * b, min((i + 1) * b, n)
            r0 = w0 - lo
            r1 = w1 + hi if rs is None else r0 + rs
            c0, c1 = max(r0, 0), min(r1, n)
            write.append(slice(w0, w1))
            read.append(slice(c0, c1))
            pad.append((c0 - r0, r1 - c1))
            crop.append(slice(lo, lo + w1 - w0))
        return Block(int(block_id), index, tuple(write), tuple(read), tuple(pad), tuple(crop))

    def __repr__(self) -> str:
        return (f"BlockGrid(shape={self.shape}, block_shape={self.block_shape}, context={self.context}, "
                f"read_shape={self.read_shape})")


def context_voxels(context_nm: float | Sequence[float], voxel_size_nm: Sequence[float]) -> Tuple[int, ...]:
    """Context in nm -> whole voxels per axis (rounded up).

    Parameters
    ----------
    context_nm : float or sequence of float
        Distance in nm a block must see beyond its own voxels, one value for
        all axes or one per axis.
    voxel_size_nm : sequence of float
        Voxel size in nm per axis, (z, y, x) or (y, x).
    """
    vs = [float(v) for v in voxel_size_nm]
    ctx = np.broadcast_to(np.asarray(context_nm, dtype=float), (len(vs),))
    return tuple(int(math.ceil(c / v - 1e-9)) if c > 0 else 0 for c, v in zip(ctx, vs))
