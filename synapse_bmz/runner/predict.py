"""Tile-by-tile prediction of a volume into a chunked array.

Memory is bounded by one batch of tiles: each tile is read from the (lazy)
input, predicted through the `ModelSession`, cropped and written straight
into the output array (a zarr array on disk).
"""

from __future__ import annotations

import math
import os
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .session import ModelSession
from .tiling import Tile, TilePlan, iter_tiles, plan_tiles

DEFAULT_BYTES_PER_VOXEL = 2048.0
# profiler peaks miss allocator slack and the pipeline's input/output copies
MEMORY_SAFETY_FACTOR = 1.5


def memory_budget_bytes(device: str) -> float:
    """Bytes the forward pass may use: 70 % of free GPU memory, or 40 % of available RAM."""
    if device.startswith("cuda"):
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return 0.7 * free
    try:
        import psutil

        return 0.4 * psutil.virtual_memory().available
    except ImportError:
        return 0.4 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def make_plan(session: ModelSession, volume_shape: Sequence[int], *, device: str,
              tile: Optional[Sequence[int]] = None, halo: Optional[Sequence[int]] = None,
              batch_size: Optional[int] = None, budget_bytes: Optional[float] = None) -> TilePlan:
    """Tile plan for ``volume_shape`` (model grid), sized to the device's free memory."""
    lay = session.layout
    nd = len(lay.spatial)
    spatial_shape = tuple(volume_shape[-nd:])
    n_items = int(np.prod(volume_shape[:-nd])) if len(volume_shape) > nd else 1
    cfg = session.model.config
    bpv = (cfg.activation_bytes_per_voxel if cfg and cfg.activation_bytes_per_voxel else DEFAULT_BYTES_PER_VOXEL)
    return plan_tiles(
        spatial_shape, lay.min_size, lay.step, tuple(halo) if halo else lay.halo,
        bytes_per_voxel=bpv * MEMORY_SAFETY_FACTOR,
        memory_budget_bytes=budget_bytes if budget_bytes is not None else memory_budget_bytes(device),
        n_batch_items=n_items, tile=tile, batch_size=batch_size,
    )


def _jobs(volume_shape: Sequence[int], nd: int, plan: TilePlan) -> Iterator[Tuple[Tuple[int, ...], Tile]]:
    lead = [range(n) for n in volume_shape[:-nd]]
    spatial_shape = tuple(volume_shape[-nd:])
    for tile in iter_tiles(spatial_shape, plan):
        for item in np.ndindex(*[len(r) for r in lead]) if lead else [()]:
            yield tuple(item), tile


def count_batches(volume_shape: Sequence[int], nd: int, plan: TilePlan) -> int:
    n_tiles = sum(1 for _ in iter_tiles(tuple(volume_shape[-nd:]), plan))
    n_items = int(np.prod(volume_shape[:-nd])) if len(volume_shape) > nd else 1
    return math.ceil(n_tiles * n_items / plan.batch_size)


def predict_into(session: ModelSession, data, out, plan: TilePlan, *, progress: bool = False) -> None:
    """Predict ``data`` tile by tile into ``out``.

    Parameters
    ----------
    session : ModelSession
        With statistics already pinned to this volume.
    data : array-like, shape ([Z,] Y, X)
        Input on the model grid (numpy-sliceable; may be lazy).
    out : array-like, shape (C, [Z,] Y, X)
        Writable output, e.g. a zarr array.
    plan : TilePlan
    progress : bool
        Show a tqdm bar over batches.
    """
    from tqdm import tqdm

    nd = len(session.layout.spatial)
    shape = tuple(data.shape)
    bar = tqdm(total=count_batches(shape, nd, plan), disable=not progress, desc="predict", unit="batch")
    pending: List[Tuple[Tuple[int, ...], Tile]] = []

    def flush():
        batch = np.stack([_read_tile(data, item, t) for item, t in pending])
        pred = session.predict(batch)
        for (item, t), p in zip(pending, pred):
            out[(slice(None),) + item + t.write] = p[(slice(None),) + t.crop]
        pending.clear()
        bar.update(1)

    for job in _jobs(shape, nd, plan):
        pending.append(job)
        if len(pending) == plan.batch_size:
            flush()
    if pending:
        flush()
    bar.close()


def _read_tile(data, item: Tuple[int, ...], tile: Tile) -> np.ndarray:
    block = np.asarray(data[item + tile.read], dtype=np.float32)
    if any(p != (0, 0) for p in tile.pad):
        # reflection keeps image statistics at the border; 'symmetric' copes with
        # pads wider than the block itself
        mode = "reflect" if all(max(p) < n for p, n in zip(tile.pad, block.shape)) else "symmetric"
        block = np.pad(block, tile.pad, mode=mode)
    return block
