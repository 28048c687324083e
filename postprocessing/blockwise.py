"""Block-wise recipes for arrays larger than memory, stitched by anchors.

Approach
--------
The spatial volume is cut into blocks of ``block_shape``. Each block is
read with ``halo`` extra voxels on every side (clipped at the volume
border), the recipe runs on that padded block, and only the block's own
voxels are written. An instance's id is its *anchor*: one plus the global
raster index of its first voxel (in raster order) in the padded block. Every
block that sees an instance completely computes the same anchor, so an
instance cut by block faces receives one id on both sides without any
merging step. A second pass renumbers the anchors to 1..N in raster order of
their first voxel.

Assumption
----------
The result equals the whole-volume result (up to relabelling) when every
object *and the region that decides it* extends at most ``halo`` voxels
beyond any block it touches, e.g. each connected component of the vesicle
mask (foreground + boundary > 0.5) is smaller than ``halo`` in every axis.
Objects larger than that may be split or cut at block faces. Compartments
are only exact when they fit in the halo.

``ribbon`` selects one structure in the whole volume and runs as a
multi-pass algorithm (``_ribbon_blockwise``): exact global connected
components of the ribbon and PD channels stitched across block faces (any
size), the largest ribbon and the closest PD chosen from streamed
per-component statistics, then the distance-limited steps block by block.
It needs ``halo[i] * voxel[i] >= contact_distance_nm + membrane_distance_nm``
and the chosen PD within the halo of the ribbon (both checked, ValueError
otherwise), and does not accept ``vesicles``. Its output is the whole-volume
labels themselves (1 = ribbon, 2 = PD, 3 = membrane), not renumbered.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

import numpy as np

from .recipes import RECIPES, apply_recipe

__all__ = ["apply_recipe_blockwise", "iter_blocks", "NOT_BLOCKWISE"]

#: Recipes that cannot run block-wise (none: ``ribbon`` has its own passes).
NOT_BLOCKWISE: frozenset[str] = frozenset()

# Ids are written to uint32; anchors must stay below this.
_MAX_ID = np.iinfo(np.uint32).max


def iter_blocks(shape: Sequence[int], block_shape: Sequence[int], halo: Sequence[int]):
    """Yield ``(inner, outer)`` slice tuples of all blocks in raster order.

    ``inner`` are the block's own voxels, ``outer`` the block grown by
    ``halo`` and clipped to ``shape``.
    """
    starts = [range(0, s, b) for s, b in zip(shape, block_shape)]
    for corner in itertools.product(*starts):
        inner = tuple(slice(c, min(c + b, s)) for c, b, s in zip(corner, block_shape, shape))
        outer = tuple(
            slice(max(sl.start - h, 0), min(sl.stop + h, s)) for sl, h, s in zip(inner, halo, shape)
        )
        yield inner, outer


def _anchor_ids(labels: np.ndarray, outer: tuple[slice, ...], shape: Sequence[int]) -> np.ndarray:
    """Look-up table local label -> global anchor id (0 for background)."""
    flat = labels.ravel()
    nonzero = np.flatnonzero(flat)
    size = int(flat.max(initial=0)) + 1
    first = np.full(size, flat.size, dtype=np.int64)
    np.minimum.at(first, flat[nonzero], nonzero)
    lut = np.zeros(size, dtype=np.int64)
    present = first < flat.size
    present[0] = False
    local = np.unravel_index(first[present], labels.shape)
    global_coords = tuple(c + sl.start for c, sl in zip(local, outer))
    lut[present] = np.ravel_multi_index(global_coords, tuple(shape)) + 1
    return lut


def _process_block(name, prediction, voxel_size_nm, params, out, inner, outer, shape):
    block = np.asarray(prediction[(slice(None),) + outer], dtype=np.float32)
    labels = apply_recipe(name, block, voxel_size_nm, params)
    lut = _anchor_ids(labels, outer, shape)
    own = tuple(slice(i.start - o.start, i.stop - o.start) for i, o in zip(inner, outer))
    ids = lut[labels[own]]
    out[inner] = ids.astype(np.uint32)
    return np.unique(ids[ids > 0])


def apply_recipe_blockwise(
    name: str,
    prediction,
    voxel_size_nm: Sequence[float],
    params: dict | None,
    out,
    block_shape: Sequence[int],
    halo: Sequence[int],
    *,
    n_workers: int = 1,
):
    """Run a recipe block by block and stitch instances across block faces.

    Parameters
    ----------
    name : str
        Recipe name (see ``recipes.RECIPES``); ``"ribbon"`` runs its own
        multi-pass algorithm (see module docstring).
    prediction : array-like, shape (C, Z, Y, X) or (C, Y, X)
        Channel-first probabilities supporting numpy slicing (numpy, zarr,
        dask, h5py). Only one padded block is in memory at a time.
    voxel_size_nm : sequence of float
        Voxel size in nm per spatial axis.
    params : dict or None
        Recipe parameters (sizes in nm).
    out : writable array-like, spatial shape, uint32
        Receives the labels 1..N (raster order of each instance's first
        voxel), 0 = background. With ``n_workers > 1`` the block shape
        should be a multiple of ``out``'s chunks so that writes do not
        share chunks.
    block_shape : sequence of int
        Block size in voxels per spatial axis.
    halo : sequence of int or int
        Extra context in voxels per spatial axis on each side of a block;
        must exceed the size of the objects (see module docstring).
    n_workers : int, optional
        Blocks processed concurrently by threads. Default 1 (serial).

    Returns
    -------
    out
        The same ``out`` object.

    Raises
    ------
    KeyError
        Unknown recipe.
    ValueError
        Non-block-wise recipe, shapes that do not match, or (ribbon) a
        halo too small for the distance-limited steps.
    """
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; available recipes: {', '.join(sorted(RECIPES))}")
    if name in NOT_BLOCKWISE:
        raise ValueError(f"recipe {name!r} selects structures in the whole volume; use apply_recipe")
    shape = tuple(prediction.shape[1:])
    ndim = len(shape)
    if tuple(out.shape) != shape:
        raise ValueError(f"`out` (shape {tuple(out.shape)}) must have the spatial shape of `prediction` {shape}")
    block_shape = tuple(int(b) for b in np.broadcast_to(block_shape, (ndim,)))
    halo = tuple(int(h) for h in np.broadcast_to(halo, (ndim,)))
    if np.prod(shape, dtype=np.float64) >= _MAX_ID:
        raise ValueError(f"volume of shape {shape} has too many voxels for uint32 anchor ids")
    if name == "ribbon":
        from ._ribbon_blockwise import segment_ribbon_blockwise

        return segment_ribbon_blockwise(
            prediction, voxel_size_nm, out, block_shape, halo, n_workers=n_workers, **(params or {})
        )
    blocks = list(iter_blocks(shape, block_shape, halo))

    def run(block):
        return _process_block(name, prediction, voxel_size_nm, params, out, *block, shape)

    if n_workers > 1:
        with ThreadPoolExecutor(n_workers) as pool:
            found = list(pool.map(run, blocks))
    else:
        found = [run(block) for block in blocks]
    anchors = np.unique(np.concatenate(found)) if found else np.zeros(0, np.int64)

    def renumber(block):
        inner = block[0]
        ids = np.asarray(out[inner]).astype(np.int64)
        new = np.searchsorted(anchors, ids) + 1
        out[inner] = np.where(ids > 0, new, 0).astype(np.uint32)

    if n_workers > 1:
        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(renumber, blocks))
    else:
        for block in blocks:
            renumber(block)
    return out
