"""Tile plans sized to the device, and the prediction block job.

Memory is bounded by one batch of tiles: each tile (a block of
`tiling.tile_grid`) is read from the (lazy) input, predicted through the
`ModelSession`, cropped and written straight into the output array (a zarr
array on disk, chunked like the tiles' write regions), then marked done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

import numpy as np

from ..errors import OptionError
from .flips import flip_averaged
from .session import ModelSession
from .statistics import VolumeStats
from .tiling import TilePlan, plan_tiles, tile_grid

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
    tile, halo = check_tile_options(session, tile, halo, batch_size)
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


def pooling_grid(session: ModelSession) -> tuple:
    """Multiples tile starts must keep per model spatial axis: the U-Net's pooling product,
    or the input's size step for other architectures."""
    from ..packaging.halo import architecture_kwargs, unet_context

    kwargs = architecture_kwargs(session.model.descr)
    if kwargs is not None:
        return tuple(int(d) for d in unet_context(kwargs).divisibility)
    return tuple(st if st else 1 for st in session.layout.step)


def check_tile_options(session: ModelSession, tile, halo, batch_size):
    """Validate ``--tile``/``--halo``/``--batch-size`` against the model; one-line errors.

    The package's halo (``config.synapse_bmz.halo``) is the smallest context
    for which tiled prediction equals untiled prediction; smaller halos, and
    tiles that leave no room inside that halo, are refused rather than
    silently giving a different result.
    """
    lay = session.layout
    nd = len(lay.spatial)
    axes = ",".join(lay.spatial)
    if batch_size is not None and int(batch_size) < 1:
        raise OptionError("--batch-size", f"{batch_size} must be a positive integer")
    if halo is not None:
        halo = tuple(int(h) for h in halo)
        if len(halo) != nd:
            raise OptionError("--halo", f"{','.join(map(str, halo))} needs {nd} values ({axes}) for model {session.model.name}")
        if any(h < m for h, m in zip(halo, lay.halo)):
            raise OptionError("--halo", f"{','.join(map(str, halo))} is below model {session.model.name}'s minimum "
                                        f"{','.join(map(str, lay.halo))} ({axes}); tiles would differ from the untiled result")
        grid = pooling_grid(session)
        if any(h % g for h, g in zip(halo, grid)):
            raise OptionError("--halo", f"{','.join(map(str, halo))} must be a multiple of {','.join(map(str, grid))} "
                                        f"({axes}), the network's pooling grid: tiles off it never reproduce "
                                        "the untiled result")
    use_halo = halo if halo is not None else lay.halo
    if tile is not None:
        tile = tuple(int(t) for t in tile)
        if len(tile) != nd:
            raise OptionError("--tile", f"{','.join(map(str, tile))} needs {nd} values ({axes}) for model {session.model.name}")
        if any(t < 1 for t in tile):
            raise OptionError("--tile", f"{','.join(map(str, tile))}: tile sizes must be positive")
        smallest = tuple(max(m, 2 * h + max(s, 1)) for m, h, s in zip(lay.min_size, use_halo, lay.step))
        if any(t < s for t, s in zip(tile, smallest)):
            raise OptionError("--tile", f"{','.join(map(str, tile))} is too small for model {session.model.name}: "
                                        f"each tile needs its halo {','.join(map(str, use_halo))} on both sides; "
                                        f"use at least {','.join(map(str, smallest))} ({axes})")
    return tile, halo


@dataclass
class PredictJob:
    """Predict groups of tiles of one volume into one output array (a block job,
    see `synapse_bmz.distributed.executors`).

    Attributes
    ----------
    key : str
        Unique job name (``predict-<digest>``).
    model_rdf : str
        RDF path, reloaded (and hash-checked) by each worker.
    device, weight_format : str
    stats : VolumeStats
        Whole-volume statistics the normalisation is pinned to.
    plan : TilePlan
    shape : tuple of int
        Input shape on the model grid, ``([Z,] Y, X)``.
    source : object
        The input on the model grid: a numpy-sliceable array, or a
        `synapse_bmz.api.FileInput` (opened once per worker).
    out : array-like, shape (C, [Z,] Y, X)
        Output (zarr for workers in other processes).
    markers : DoneMarkers or None
    threads : int or None
        Torch threads per worker process.
    session : ModelSession or None
        An already loaded session to reuse in this process (not pickled).
    test_time_augmentation : str
        ``"none"`` or ``"flips"`` (`synapse_bmz.runner.flips.flip_averaged` around each batch).
    """

    key: str
    model_rdf: str
    device: str
    weight_format: Optional[str]
    stats: VolumeStats
    plan: TilePlan
    shape: tuple
    source: Any
    out: Any
    markers: Any = None
    threads: Optional[int] = None
    session: Optional[ModelSession] = field(default=None, repr=False)
    test_time_augmentation: str = "none"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["session"] = None
        return state

    @property
    def grid(self):
        nd = len(self.plan.tile)
        return tile_grid(self.shape, nd, self.plan)

    def setup(self):
        if self.threads:
            from ..distributed.executors import limit_threads

            limit_threads(int(self.threads))
        session = self.session
        if session is None:
            from ..zoo.registry import load_model

            session = ModelSession(load_model(self.model_rdf), self.device, self.weight_format)
        session.set_statistics(self.stats)
        from ..api import FileInput

        data = self.source.open() if isinstance(self.source, FileInput) else self.source
        return session, data, self.grid

    def run(self, state, block_ids: Sequence[int]) -> List[int]:
        session, data, grid = state
        blocks = [grid[i] for i in block_ids]
        batch = np.stack([_read_padded(data, b, len(self.plan.tile)) for b in blocks])
        pred = flip_averaged(session.predict, batch, len(self.plan.tile), self.test_time_augmentation)
        for b, p in zip(blocks, pred):
            lead = len(b.write) - len(self.plan.tile)
            self.out[(slice(None),) + b.write] = p[(slice(None),) + b.crop[lead:]].reshape(
                (p.shape[0],) + tuple(s.stop - s.start for s in b.write))
            if self.markers is not None:
                self.markers.mark(b.id)
        return list(block_ids)

    def describe(self, block_ids: Sequence[int]) -> str:
        grid = self.grid
        text = grid[block_ids[0]].describe()
        return text + (f" (+{len(block_ids) - 1} more in its batch)" if len(block_ids) > 1 else "")


def _read_padded(data, block, nd: int) -> np.ndarray:
    """The block's read region as float32 of the network's tile shape (reflection-padded)."""
    arr = np.asarray(data[block.read], dtype=np.float32)
    lead = arr.ndim - nd
    arr = arr.reshape(arr.shape[lead:])
    pad = block.pad[lead:]
    if any(p != (0, 0) for p in pad):
        # reflection keeps image statistics at the border; 'symmetric' copes with
        # pads wider than the block itself
        mode = "reflect" if all(max(p) < n for p, n in zip(pad, arr.shape)) else "symmetric"
        arr = np.pad(arr, pad, mode=mode)
    return arr


def batch_groups(grid, batch_size: int, skip=()) -> List[List[int]]:
    """Block ids in raster order, in groups of ``batch_size``, leaving out finished ones."""
    skip = set(skip)
    todo = [b for b in range(len(grid)) if b not in skip]
    return [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
