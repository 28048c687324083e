"""Tile plans: which input regions the network sees and which output regions they fill.

Halo is only added between tiles: an axis covered by a single tile is fed
whole (padded to a valid size), exactly as a whole-volume pass would be, so
a volume that fits in memory costs no more than the bare model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence, Tuple

from postprocessing.blocks import Block, BlockGrid


def valid_size(n: int, min_size: int, step: int) -> int:
    """Smallest ``min_size + k * step`` (k >= 0) that is >= n."""
    if n <= min_size:
        return min_size
    return min_size + math.ceil((n - min_size) / step) * step if step else min_size


@dataclass(frozen=True)
class TilePlan:
    """How a volume is cut for the network.

    Attributes
    ----------
    inner : tuple of int
        Output region each tile fills, per model spatial axis (voxels).
    halo : tuple of int
        Context added on each side between tiles (0 on axes with one tile).
    tile : tuple of int
        Network input size per model spatial axis (valid ParameterizedSize).
    batch_size : int
        Tiles (or 2D sections) predicted together in one forward pass.
    """

    inner: Tuple[int, ...]
    halo: Tuple[int, ...]
    tile: Tuple[int, ...]
    batch_size: int

    @property
    def tile_voxels(self) -> int:
        return math.prod(self.tile)


def _plan_axis(extent: int, inner: int, halo: int, min_size: int, step: int) -> Tuple[int, int, int]:
    if inner >= extent:
        return extent, 0, valid_size(extent, min_size, step)
    tile = valid_size(inner + 2 * halo, min_size, step)
    return tile - 2 * halo, halo, tile


def plan_tiles(
    spatial_shape: Sequence[int],
    min_size: Sequence[int],
    step: Sequence[int],
    halo: Sequence[int],
    *,
    bytes_per_voxel: float,
    memory_budget_bytes: float,
    n_batch_items: int = 1,
    tile: Optional[Sequence[int]] = None,
    batch_size: Optional[int] = None,
) -> TilePlan:
    """Choose the largest tiles that fit the memory budget.

    Parameters
    ----------
    spatial_shape : sequence of int
        Extent of the model's spatial axes in the (rescaled) volume.
    min_size, step : sequence of int
        The model's ParameterizedSize per axis.
    halo : sequence of int
        Context needed on each side, in voxels, when an axis is split.
    bytes_per_voxel : float
        Forward-pass memory per input voxel.
    memory_budget_bytes : float
        Memory the forward pass may use.
    n_batch_items : int
        Independent items along non-model axes (e.g. z-sections for a 2D
        model); they are batched when tiles are small.
    tile : sequence of int, optional
        Force this input tile size (``--tile``).
    batch_size : int, optional
        Force the batch size (``--batch-size``).
    """
    nd = len(spatial_shape)
    max_voxels = max(memory_budget_bytes / max(bytes_per_voxel, 1.0), float(math.prod(min_size)))
    if tile is not None:
        axes = [_plan_axis(e, t - 2 * h, h, m, s) if e > t else (e, 0, valid_size(e, m, s))
                for e, t, h, m, s in zip(spatial_shape, tile, halo, min_size, step)]
    else:
        # grow inner sizes from the whole volume down, halving the largest axis
        inner = list(spatial_shape)
        while True:
            axes = [_plan_axis(e, i, h, m, s) for e, i, h, m, s in zip(spatial_shape, inner, halo, min_size, step)]
            if math.prod(a[2] for a in axes) <= max_voxels:
                break
            k = max(range(nd), key=lambda j: axes[j][2])
            if axes[k][2] <= min_size[k]:
                break
            inner[k] = max(1, min(inner[k], axes[k][0]) // 2)
    tile_shape = tuple(a[2] for a in axes)
    if batch_size is None:
        batch_size = int(max(1, min(n_batch_items, max_voxels // math.prod(tile_shape))))
    return TilePlan(inner=tuple(a[0] for a in axes), halo=tuple(a[1] for a in axes),
                    tile=tile_shape, batch_size=batch_size)


def tile_grid(volume_shape: Sequence[int], nd: int, plan: TilePlan) -> BlockGrid:
    """The plan as a `BlockGrid` over the whole (model-grid) volume.

    Model spatial axes (the last ``nd``) get blocks of ``plan.inner``, low
    context ``plan.halo`` and a fixed read size ``plan.tile`` (the network
    input); leading axes that the model does not see (z for a 2D model on a
    stack) are cut into single sections with no context. Write regions
    partition the volume; chunk outputs with ``grid.block_shape``.
    """
    lead = len(volume_shape) - nd
    block = (1,) * lead + tuple(plan.inner)
    context = ((0, 0),) * lead + tuple((h, 0) for h in plan.halo)
    return BlockGrid(volume_shape, block, context, read_shape=(1,) * lead + tuple(plan.tile))


def iter_tiles(spatial_shape: Sequence[int], plan: TilePlan) -> Iterator[Block]:
    """All tiles of a plan over the model's spatial axes, in C order (see `tile_grid`)."""
    yield from tile_grid(spatial_shape, len(spatial_shape), plan)
